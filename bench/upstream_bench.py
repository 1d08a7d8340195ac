#!/usr/bin/env python3
"""Model gateway relay overhead (issue: openai provider / upstream client).

An OpenAI-compatible upstream that costs nothing (nginx answering a fixed chat
completion, and a fixed SSE stream) is called directly and through the whole
aifn gateway (`/v1/chat/completions` -> router -> `openai` provider ->
pooled keep-alive upstream client -> nginx), over plain http and over TLS
(a CA made here with the `openssl` CLI, verified by aifn through `ca_file`).
Same run, same client (http.client, one keep-alive connection, sequential
requests), calls interleaved in rounds so drift hits both sides alike.

  relay_{http,https}_p50/p99   latency through aifn minus direct (added by aifn)
  stream_ttfb_{http,https}     streamed time to first body byte, through aifn minus direct

Prints `bench <name> <value> <unit>` lines. Standard library only; needs nginx
and openssl (scripts/bootstrap.sh installs them).
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ANSWER = json.dumps({
    "id": "c1", "object": "chat.completion", "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
SSE = "".join("data: " + json.dumps(e) + "\\n\\n" for e in [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"choices": [{"index": 0, "delta": {"content": "lo!"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}]) + "data: [DONE]\\n\\n"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}).encode()
STREAM_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                          "stream": True, "stream_options": {"include_usage": True}}).encode()


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=aifn bench CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/san.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san.ext", "-out", f"{d}/server.pem")


def start_nginx(d, http_port, https_port):
    # Streamed answers live under /stream/v1 (nginx cannot look into a body it did not read).
    locations = (f"    location = /v1/chat/completions {{ return 200 '{ANSWER}'; }}\n"
                 f"    location = /stream/v1/chat/completions {{\n"
                 f"      default_type text/event-stream;\n      return 200 '{SSE}';\n    }}\n")
    conf = f"""daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  default_type application/json;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{http_port};
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
{locations}  }}
}}
"""
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d + "/", "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(http_port) or not wait_port(https_port):
        p.kill()
        sys.exit("nginx did not start: " + open(f"{d}/error.log").read())
    return p


def start_aifn(build, d, http_port, https_port):
    port = free_port()
    conf = f"""[[providers]]
name = "plain"
kind = "openai"
base_url = "http://127.0.0.1:{http_port}/v1"

[[providers]]
name = "tls"
kind = "openai"
base_url = "https://localhost:{https_port}/v1"
ca_file = "{d}/ca.pem"

[[providers]]
name = "plain_stream"
kind = "openai"
base_url = "http://127.0.0.1:{http_port}/stream/v1"

[[providers]]
name = "tls_stream"
kind = "openai"
base_url = "https://localhost:{https_port}/stream/v1"
ca_file = "{d}/ca.pem"
"""
    with open(f"{d}/aifn.toml", "w") as f:
        f.write(conf)
    os.makedirs(f"{d}/functions", exist_ok=True)
    log = open(f"{d}/aifn.log", "w")
    p = subprocess.Popen([f"{build}/aifn", "serve", "--listen", f"127.0.0.1:{port}", "--functions", f"{d}/functions",
                          "--data", f"{d}/data", "--config", f"{d}/aifn.toml"],
                         stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port):
        p.kill()
        sys.exit("aifn did not start: " + open(f"{d}/aifn.log").read())
    return p, port


class Client:
    """One keep-alive connection; returns seconds to the whole answer or to the first body byte."""

    def __init__(self, port, tls_ctx=None):
        if tls_ctx:
            self.c = http.client.HTTPSConnection("localhost", port, context=tls_ctx)
        else:
            self.c = http.client.HTTPConnection("127.0.0.1", port)

    def call(self, body, model, first_byte=False, path="/v1/chat/completions"):
        data = body.replace(b'"m"', json.dumps(model).encode(), 1)
        t0 = time.perf_counter()
        self.c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        if first_byte:
            first = r.read1(65536)
            t = time.perf_counter() - t0
            rest = r.read()
            out = first + rest
        else:
            out = r.read()
            t = time.perf_counter() - t0
        if r.status != 200 or b"Hel" not in out:
            sys.exit(f"bad answer {r.status}: {out[:300]!r}")
        return t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def emit(name, value, unit):
    print(f"bench {name} {value:.6g} {unit}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--requests", type=int, default=2000, help="per side and scheme")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    for tool in ("nginx", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (scripts/bootstrap.sh)")
    d = tempfile.mkdtemp(prefix="aifn-upstream-bench-")
    make_certs(d)
    http_port, https_port = free_port(), free_port()
    ngx = start_nginx(d, http_port, https_port)
    aifn, aifn_port = start_aifn(a.build, d, http_port, https_port)
    try:
        ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
        per_round = max(1, a.requests // a.rounds)
        for scheme, direct_client, model in (("http", Client(http_port), "plain/m"),
                                             ("https", Client(https_port, ctx), "tls/m")):
            via = Client(aifn_port)
            for _ in range(50):  # warm-up: connections, TLS sessions, pool
                direct_client.call(BODY, "m")
                via.call(BODY, model)
            d_lat, v_lat, d_ttfb, v_ttfb = [], [], [], []
            for _ in range(a.rounds):
                d_lat += [direct_client.call(BODY, "m") for _ in range(per_round)]
                v_lat += [via.call(BODY, model) for _ in range(per_round)]
                d_ttfb += [direct_client.call(STREAM_BODY, "m", True, "/stream/v1/chat/completions")
                           for _ in range(per_round // 4 or 1)]
                v_ttfb += [via.call(STREAM_BODY, model.replace("/", "_stream/"), True) for _ in range(per_round // 4 or 1)]
            us = 1e6
            emit(f"upstream_direct_{scheme}_p50", statistics.median(d_lat) * us, "us")
            emit(f"upstream_via_aifn_{scheme}_p50", statistics.median(v_lat) * us, "us")
            emit(f"relay_added_{scheme}_p50", (statistics.median(v_lat) - statistics.median(d_lat)) * us, "us")
            emit(f"relay_added_{scheme}_p99", (pct(v_lat, 0.99) - pct(d_lat, 0.99)) * us, "us")
            emit(f"stream_ttfb_direct_{scheme}_p50", statistics.median(d_ttfb) * us, "us")
            emit(f"stream_ttfb_added_{scheme}_p50", (statistics.median(v_ttfb) - statistics.median(d_ttfb)) * us, "us")
    finally:
        aifn.terminate()
        aifn.wait()
        ngx.terminate()
        ngx.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
