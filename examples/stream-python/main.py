"""Streams ten chunks 50 ms apart: a generator handler's yields go out as they happen."""

import time


def handler(event, context):
    context.set_content_type("text/event-stream")
    for i in range(10):
        yield f"data: chunk {i}\n\n"
        time.sleep(0.05)
    yield "data: [DONE]\n\n"
