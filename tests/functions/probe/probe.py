"""A test function whose behaviour the event chooses."""
import os
import time


def handler(event, context):
    if event.get("sleep_ms"):
        time.sleep(event["sleep_ms"] / 1000)
    if event.get("throw"):
        raise ValueError(event["throw"])
    return {"pid": os.getpid(), "event": event}


def stream(event, context):
    if event.get("throw"):
        raise ValueError(event["throw"])  # before anything was yielded
    for i in range(event.get("chunks", 5)):
        if event.get("fail_at") == i:
            raise ValueError("failed mid-stream")
        yield f"chunk{i}\n"
        time.sleep(event.get("gap_ms", 200) / 1000)
