#!/usr/bin/env -S python3 -u
"""aifn's Python bootstrap: a stdlib-only AWS Lambda Runtime API client.

aifn starts it as `python3 -u bootstrap.py` in the function's folder with
AWS_LAMBDA_RUNTIME_API, _HANDLER (module.function) and LAMBDA_TASK_ROOT set
(DESIGN.md §5). It imports the handler once, then runs AIFN_CONCURRENCY
loops (threads, each with its own keep-alive connection) of
next -> invoke -> response|error. `def handler(event, context)` answers with
its JSON-encoded return value; a generator handler streams what it yields.
"""

import base64
import decimal
import http.client
import importlib
import inspect
import io
import json
import os
import socket
import sys
import threading
import time
import traceback

BASE = "/2018-06-01/runtime"
TRAILER_TYPE = "Lambda-Runtime-Function-Error-Type"
TRAILER_BODY = "Lambda-Runtime-Function-Error-Body"


def _unbuffered_stdio():
    # aifn captures stdout/stderr per call: a line must not sit in a buffer
    # until the next call (or forever, if the instance is killed).
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        raw = io.FileIO(fd, "w", closefd=False)
        setattr(sys, name, io.TextIOWrapper(raw, encoding=stream.encoding or "utf-8",
                                            errors="backslashreplace", write_through=True))


class _Connection(http.client.HTTPConnection):
    # While a list, send() collects instead of sending: http.client writes a
    # request's headers and body separately, and two packets cost the server
    # an extra wake-up per call.
    corked = None

    def send(self, data):
        if self.corked is not None:
            self.corked.append(data)
        else:
            super().send(data)

    def connect(self):
        super().connect()
        # Small streamed chunks must leave at once, not wait for an ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RuntimeClient:
    """One persistent HTTP/1.1 connection to the Runtime API; one per thread."""

    def __init__(self, host, port):
        self._conn = _Connection(host, port)

    def _exchange(self, method, path, body=None, headers=None):
        # A keep-alive socket the server closed shows up only on reuse: retry once.
        for attempt in (0, 1):
            conn = self._conn
            try:
                conn.corked = []
                try:
                    conn.request(method, path, body=body, headers=headers or {})
                finally:
                    data, conn.corked = b"".join(conn.corked), None
                conn.send(data)
                resp = conn.getresponse()
                return resp, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def next(self):
        resp, body = self._exchange("GET", BASE + "/invocation/next")
        request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
        if resp.status != 200 or not request_id:
            raise RuntimeError(f"/next answered {resp.status} without a request id")
        return request_id, resp, body

    def post_json(self, path, payload, headers=None):
        data = payload.encode("utf-8")
        all_headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        if headers:
            all_headers.update(headers)
        self._exchange("POST", path, data, all_headers)

    def post_error(self, path, exc):
        body = error_body(exc)
        self.post_json(path, json.dumps(body), {TRAILER_TYPE: _header_safe(body["errorType"])})

    def stream(self, request_id, chunks, content_type_of):
        """Sends each item of `chunks` as one HTTP chunk as soon as it is yielded.

        Headers go out with the first item, so the handler may still pick the
        content type before it yields. Returns normally, or raises what the
        generator raised before yielding anything (then nothing was sent).
        """
        conn = self._conn
        path = f"{BASE}/invocation/{request_id}/response"
        started = False
        items = iter(chunks)
        while True:
            try:
                item = next(items)
                data = _encode_chunk(item)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - any handler error is the call's error
                if not started:
                    raise
                body = error_body(exc)
                trailers = (f"{TRAILER_TYPE}: {_header_safe(body['errorType'])}\r\n"
                            f"{TRAILER_BODY}: {_b64(json.dumps(body))}\r\n")
                conn.send(b"0\r\n" + trailers.encode("ascii") + b"\r\n")
                conn.getresponse().read()
                return
            if not data:
                continue  # a zero-length chunk would end the body
            if not started:
                self._start_stream(path, content_type_of(item))
                started = True
            conn.send(b"%x\r\n%b\r\n" % (len(data), data))
        if not started:
            self._start_stream(path, content_type_of(None))
        conn.send(b"0\r\n\r\n")
        conn.getresponse().read()

    def _start_stream(self, path, content_type):
        conn = self._conn
        conn.putrequest("POST", path, skip_accept_encoding=True)
        conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("Content-Type", content_type)
        conn.putheader("Trailer", f"{TRAILER_TYPE}, {TRAILER_BODY}")
        conn.endheaders()


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _header_safe(text):
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))[:256]


def _encode_chunk(item):
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    # Objects become one JSON line each, so the stream reads as NDJSON.
    return (json.dumps(item, default=_json_default) + "\n").encode("utf-8")


def _default_content_type(item):
    if isinstance(item, str):
        return "text/plain; charset=utf-8"
    if isinstance(item, (bytes, bytearray, memoryview)) or item is None:
        return "application/octet-stream"
    return "application/x-ndjson"


def _json_default(obj):
    # Lambda's Python runtime encodes Decimal (DynamoDB's number type) as a number.
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def error_body(exc):
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    trace = [line.rstrip("\n") for line in frames]
    name = getattr(exc, "error_type", None) or type(exc).__name__
    # "trace" is what the server reads; "stackTrace" is Lambda Python's name for it.
    return {"errorType": name, "errorMessage": str(exc), "trace": trace, "stackTrace": trace}


class InitError(Exception):
    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


class AifnContext:
    __slots__ = ("token", "models_url")

    def __init__(self, token, models_url):
        self.token = token
        self.models_url = models_url


class LambdaContext:
    """What Lambda's Python runtime passes as `context`, plus `aifn`."""

    def __init__(self, request_id, headers):
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.trace_id = headers.get("Lambda-Runtime-Trace-Id")
        self.identity = _json_or_none(headers.get("Lambda-Runtime-Cognito-Identity"))
        self.client_context = _json_or_none(headers.get("Lambda-Runtime-Client-Context"))
        # Lambda Runtime API: the deadline header is epoch milliseconds.
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.aifn = AifnContext(headers.get("Aifn-Invocation-Token"), env.get("AIFN_MODELS_URL"))
        self.content_type = None

    def get_remaining_time_in_millis(self):
        if not self._deadline_ms:
            return 0
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def set_content_type(self, content_type):
        """For a streaming (generator) handler: call before the first yield."""
        self.content_type = content_type


def _json_or_none(text):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def load_handler():
    spec = os.environ.get("_HANDLER", "")
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise InitError("Runtime.MalformedHandlerName", f"bad handler '{spec}': expected module.function")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise InitError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
        raise
    except SyntaxError as exc:
        raise InitError("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}")
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise InitError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


def invoke(client, handler, request_id, resp, body):
    base = f"{BASE}/invocation/{request_id}"
    try:
        event = json.loads(body) if body else None
    except ValueError as exc:
        exc.error_type = "Runtime.UnmarshalError"
        client.post_error(base + "/error", exc)
        return
    context = LambdaContext(request_id, resp.headers)
    try:
        result = handler(event, context)
        if inspect.isgenerator(result):
            client.stream(request_id, result,
                          lambda item: context.content_type or _default_content_type(item))
            return
        payload = json.dumps(result, default=_json_default)
    except Exception as exc:  # noqa: BLE001 - any handler error is the call's error
        if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
            exc.error_type = "Runtime.MarshalError"
        client.post_error(base + "/error", exc)
        return
    client.post_json(base + "/response", payload)


def loop(host, port, handler):
    client = RuntimeClient(host, port)
    while True:
        request_id, resp, body = client.next()
        invoke(client, handler, request_id, resp, body)


def main():
    _unbuffered_stdio()
    host, _, port = os.environ.get("AWS_LAMBDA_RUNTIME_API", "").rpartition(":")
    port = int(port or 80)
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    sys.path.insert(0, task_root)
    try:
        handler = load_handler()
    except Exception as exc:  # noqa: BLE001 - any import failure is an init error
        traceback.print_exc()
        try:
            RuntimeClient(host, port).post_error(BASE + "/init/error", exc)
        except OSError:
            pass  # the endpoint is gone: nothing to tell
        sys.exit(1)

    concurrency = max(1, int(os.environ.get("AIFN_CONCURRENCY") or 1))
    if concurrency == 1:
        loop(host, port, handler)
        return

    def run():
        try:
            loop(host, port, handler)
        except BaseException:  # noqa: BLE001 - a dead loop ends the process
            traceback.print_exc()
            os._exit(1)

    threads = [threading.Thread(target=run, name=f"aifn-loop-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
