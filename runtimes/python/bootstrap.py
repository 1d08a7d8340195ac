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
NEXT_PATH = BASE + "/invocation/next"
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


class _Connection:
    """A persistent HTTP/1.1 connection, just enough for the Runtime API.

    Written on the socket rather than with http.client: that parses every
    answer's headers with the email package, which was most of this
    bootstrap's per-call CPU. Not thread-safe: one per loop.
    """

    def __init__(self, host, port):
        self._address = (host, port)
        self._host_header = f"Host: {host}:{port}\r\n".encode("ascii")
        self._sock = None
        self._buf = bytearray()

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def is_open(self):
        return self._sock is not None

    def send(self, data):
        if self._sock is None:
            self._sock = socket.create_connection(self._address)
            # Small streamed chunks must leave at once, not wait for an ACK.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(data)

    def head(self, method, path, headers):
        """The request line and headers; `headers` is preformatted "Name: value\r\n" text."""
        return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (
            method.encode("ascii"), path.encode("ascii"), self._host_header, headers.encode("latin-1"))

    def _fill(self):
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionResetError("the Runtime API closed the connection")
        self._buf += data

    def _take(self, n):
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _line(self):
        while (end := self._buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def read_response(self):
        """Returns (status, headers with lower-case names, body bytes)."""
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = self._buf[:end].decode("latin-1").split("\r\n")
        del self._buf[:end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while (size := int(self._line().split(b";", 1)[0], 16)) > 0:
                parts.append(self._take(size))
                self._take(2)
            while self._line():
                pass  # trailers: none expected from the Runtime API
            body = b"".join(parts)
        elif status in (204, 304) or status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                self._buf += data
            body = bytes(self._buf)
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body


class RuntimeClient:
    """One persistent connection to the Runtime API; one per thread."""

    def __init__(self, host, port):
        self._conn = _Connection(host, port)
        self._next_sent = False  # the last request also asked for the next call

    def _exchange(self, method, path, body=b"", headers="", then_next=False):
        """Sends one request and returns its answer. With then_next, a GET /next
        follows in the same send (HTTP/1.1 pipelining): one send and one
        wake-up per call; next() then only reads its answer."""
        conn = self._conn
        request = conn.head(method, path, headers) + body
        if then_next:
            request += conn.head("GET", NEXT_PATH, "")
        # A keep-alive socket the server closed shows up only on reuse: retry once.
        for attempt in (0, 1):
            try:
                conn.send(request)
                answer = conn.read_response()
                self._next_sent = then_next and conn.is_open()
                return answer
            except (BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        self._conn.close()
        self._next_sent = False

    def _next_answer(self):
        if self._next_sent:
            self._next_sent = False
            try:
                return self._conn.read_response()
            except (BrokenPipeError, ConnectionResetError):
                self._conn.close()  # the pipelined GET went with its socket: ask again
        return self._exchange("GET", NEXT_PATH)

    def next(self):
        """Long-polls for the next call: (request id, headers, event bytes)."""
        status, headers, body = self._next_answer()
        request_id = headers.get("lambda-runtime-aws-request-id")
        if status != 200 or not request_id:
            raise RuntimeError(f"/next answered {status} without a request id")
        return request_id, headers, body

    def post_json(self, path, payload, extra_headers="", then_next=False):
        data = payload.encode("utf-8")
        self._exchange("POST", path, data,
                       f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra_headers}",
                       then_next)

    def post_error(self, path, exc, then_next=False):
        body = error_body(exc)
        self.post_json(path, json.dumps(body), f"{TRAILER_TYPE}: {_header_safe(body['errorType'])}\r\n",
                       then_next)

    def stream(self, request_id, chunks, content_type_of):
        """Sends each item of `chunks` as one HTTP chunk as soon as it is yielded.

        Headers go out with the first item, so the handler may still pick the
        content type before it yields. Raises HandlerFailed if the generator
        failed before yielding anything (then nothing was sent), OSError if
        the connection failed.
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
                    raise HandlerFailed(exc) from exc
                body = error_body(exc)
                trailers = (f"{TRAILER_TYPE}: {_header_safe(body['errorType'])}\r\n"
                            f"{TRAILER_BODY}: {_b64(json.dumps(body))}\r\n")
                self._end_stream(b"0\r\n" + trailers.encode("ascii") + b"\r\n")
                return
            if not data:
                continue  # a zero-length chunk would end the body
            chunk = b"%x\r\n%b\r\n" % (len(data), data)
            if not started:
                chunk = self._stream_head(path, content_type_of(item)) + chunk
                started = True
            conn.send(chunk)
        last = b"0\r\n\r\n"
        self._end_stream(last if started else self._stream_head(path, content_type_of(None)) + last)

    def _end_stream(self, tail):
        """Sends a stream's last chunk with the next GET /next (pipelined, as
        post_json's then_next does) and reads the stream's answer."""
        conn = self._conn
        conn.send(tail + conn.head("GET", NEXT_PATH, ""))
        conn.read_response()
        self._next_sent = conn.is_open()

    def _stream_head(self, path, content_type):
        return self._conn.head("POST", path, (
            "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            "Transfer-Encoding: chunked\r\n"
            f"Content-Type: {_header_safe(content_type)}\r\n"
            f"Trailer: {TRAILER_TYPE}, {TRAILER_BODY}\r\n"))


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


class HandlerFailed(Exception):
    """The handler's own error, told apart from the Runtime API connection's."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


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
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self.trace_id = headers.get("lambda-runtime-trace-id")
        self.identity = _json_or_none(headers.get("lambda-runtime-cognito-identity"))
        self.client_context = _json_or_none(headers.get("lambda-runtime-client-context"))
        # Lambda Runtime API: the deadline header is epoch milliseconds.
        self._deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
        self.aifn = AifnContext(headers.get("aifn-invocation-token"), env.get("AIFN_MODELS_URL"))
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


def invoke(client, handler, request_id, headers, body):
    base = f"{BASE}/invocation/{request_id}"
    try:
        event = json.loads(body) if body else None
    except ValueError as exc:
        exc.error_type = "Runtime.UnmarshalError"
        client.post_error(base + "/error", exc, then_next=True)
        return
    context = LambdaContext(request_id, headers)
    try:
        result = handler(event, context)
        streamed = inspect.isgenerator(result)
        if not streamed:
            payload = json.dumps(result, default=_json_default)
    except Exception as exc:  # noqa: BLE001 - any handler error is the call's error
        if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
            exc.error_type = "Runtime.MarshalError"
        client.post_error(base + "/error", exc, then_next=True)
        return
    if not streamed:
        client.post_json(base + "/response", payload, then_next=True)
        return
    # Outside the try above: a failed send is the connection's error, not the handler's.
    try:
        client.stream(request_id, result, lambda item: context.content_type or _default_content_type(item))
    except HandlerFailed as failed:
        client.post_error(base + "/error", failed.error, then_next=True)


def loop(host, port, handler):
    client = RuntimeClient(host, port)
    while True:
        request_id, headers, body = client.next()
        try:
            invoke(client, handler, request_id, headers, body)
        except (OSError, ValueError) as exc:
            # Posting the result failed: aifn dropped the call (it timed out, or
            # the caller left) and closed the connection. The process is still
            # good; a fresh connection serves the next call. Only /next failing is fatal.
            print(f"aifn bootstrap: could not deliver the result of {request_id}: {exc}", file=sys.stderr)
            client.close()


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
