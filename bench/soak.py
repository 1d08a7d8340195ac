#!/usr/bin/env python3
"""Soak run (`make soak`): one aifn serving the examples under mixed load for
--seconds, checking that it stays up, answers every probe as documented, does
not grow, and stops cleanly.

Load, all at once:
  wrk        short wrk -c16 rounds over the hello functions (exec, Node,
             Python). Each round ends with calls in flight, so every round
             also cancels calls (on_disconnect = "cancel" kills their
             instances) while others wait for an instance.
  bystander  calls, one after another, to the function wrk is loading; they
             wait behind wrk's and must all succeed when its round ends.
  probes     one call after another, each with a known answer: a whole SSE
             stream, a slow call inside and one past its timeout (504), bad
             JSON (400), an unknown function (404), a client that leaves
             mid-call, a background job polled to its end.

Checks (any failure: exit 1):
  - /healthz answers every few seconds and the process is alive;
  - wrk saw no non-2xx answers, and every probe got its documented answer;
  - RSS at the end is within --rss-growth-mib of RSS after the first quarter
    (the warm-up: allocator caches, SQLite's page cache, instances' buffers);
  - once every function has scaled to zero (the copy of the examples it serves
    has idle_timeout = 2s), open file descriptors are back near the count at
    start;
  - SIGTERM: exit status 0 and no instance process left.

Prints `soak NAME VALUE UNIT` lines. Standard library only; needs wrk.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Aifn, wrk  # noqa: E402

HELLOS = ("hello-cpp", "hello-node", "hello-python")


def call(url, body=None, method=None, timeout=30):
    """(status, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def error_type(body):
    try:
        return json.loads(body)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None


def leave_mid_call(port, fn, event, stay_s):
    """Sends a call and closes the connection before the answer."""
    body = json.dumps(event).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"POST /fn/{fn} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(stay_s)


class Soak:
    def __init__(self, aifn, seconds):
        self.a = aifn
        self.end = time.time() + seconds
        self.failures = []
        self.counts = {"wrk_rounds": 0, "wrk_calls": 0, "probes": 0}
        self.lock = threading.Lock()
        self.loaded = HELLOS[0]  # the function wrk is calling now

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            print(f"# FAIL {what}", file=sys.stderr, flush=True)

    def running(self):
        return time.time() < self.end and self.a.proc.poll() is None

    def wrk_load(self):
        i = 0
        while self.running():
            fn = HELLOS[i % len(HELLOS)]
            self.loaded = fn
            i += 1
            try:
                rps, _, non2xx = wrk(f"{self.a.url}/fn/{fn}", 16, 3, with_errors=True)
            except AttributeError:  # no "Requests/sec": wrk could not connect
                self.fail(f"wrk on {fn}: no answers")
                continue
            with self.lock:
                self.counts["wrk_rounds"] += 1
                self.counts["wrk_calls"] += int(rps * 3)
            if non2xx:
                self.fail(f"wrk on {fn}: {non2xx} non-2xx answers")

    def bystander(self):
        """Calls the function wrk is loading: its calls wait behind wrk's, and
        those are cancelled when each round ends. Each must still succeed."""
        n = 0
        while self.running():
            fn = self.loaded
            n += 1
            st, body = call(f"{self.a.url}/fn/{fn}", json.dumps({"name": f"b{n}"}).encode())
            self.expect(f"{fn} during wrk", st, body, 200)
            if st == 200 and json.loads(body).get("message") != f"hello, b{n}":
                self.fail(f"{fn} during wrk: answer {body[:200]!r}")

    def expect(self, name, got_status, body, status, etype=None):
        with self.lock:
            self.counts["probes"] += 1
        if got_status != status or (etype and error_type(body) != etype):
            self.fail(f"{name}: {got_status} {body[:200]!r}, expected {status} {etype or ''}")

    def probes(self):
        u = self.a.url
        while self.running():
            st, body = call(u + "/fn/stream-python", b"{}")
            want = b"".join(f"data: chunk {i}\n\n".encode() for i in range(10)) + b"data: [DONE]\n\n"
            self.expect("stream-python", st, body, 200)
            if st == 200 and body != want:
                self.fail(f"stream-python: body {body[:120]!r} is not the ten chunks and [DONE]")
            st, body = call(u + "/fn/slow", b'{"ms":20}')
            self.expect("slow within its timeout", st, body, 200)
            st, body = call(u + "/fn/slow", b"{}")
            self.expect("slow past its timeout", st, body, 504, "timeout")
            st, body = call(u + "/fn/hello-python", b'{"name":')
            self.expect("bad JSON", st, body, 400, "invalid_json")
            st, body = call(u + "/fn/no-such-function", b"{}")
            self.expect("unknown function", st, body, 404, "not_found")
            leave_mid_call(self.a.port, "slow", {"ms": 3000}, 0.2)
            st, body = call(u + "/fn/hello-node/jobs", b'{"name":"job"}')
            self.expect("job enqueue", st, body, 202)
            if st == 202:
                self.follow_job(json.loads(body)["id"])

    def follow_job(self, job_id):
        until = time.time() + 60
        while time.time() < until:
            st, body = call(f"{self.a.url}/jobs/{job_id}")
            job = json.loads(body) if st == 200 else {}
            if job.get("status") == "succeeded":
                if job.get("result", {}).get("message") != "hello, job":
                    self.fail(f"job {job_id}: result {job.get('result')!r}")
                return
            if st != 200 or job.get("status") in ("failed", "cancelled"):
                self.fail(f"job {job_id}: {st} {body[:200]!r}")
                return
            time.sleep(0.05)
        self.fail(f"job {job_id}: not done within 60 s")


def short_idle_copy_of_examples():
    """The examples with idle_timeout = 2s: between their wrk rounds the hello
    functions scale to zero, so the run keeps starting and reaping instances."""
    dest = tempfile.mkdtemp(prefix="aifn-soak-functions-")
    for name in os.listdir(os.path.join(ROOT, "examples")):
        src = os.path.join(ROOT, "examples", name)
        manifest = os.path.join(src, "function.toml")
        if not os.path.isfile(manifest):
            continue
        shutil.copytree(src, os.path.join(dest, name), symlinks=True)
        with open(manifest) as f:
            text = f.read()
        with open(os.path.join(dest, name, "function.toml"), "w") as f:
            f.write('idle_timeout = "2s"\n' + text)  # before any [table]
    return dest


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--rss-growth-mib", type=float, default=8.0)
    args = ap.parse_args()

    log = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"aifn-soak-{os.getpid()}.log")
    functions = short_idle_copy_of_examples()
    a = Aifn(args.build, functions, log=log)
    pid = a.proc.pid
    fds_start = fd_count(pid)
    soak = Soak(a, args.seconds)
    workers = [threading.Thread(target=t) for t in (soak.wrk_load, soak.probes, soak.bystander)]
    for w in workers:
        w.start()
    started = time.time()
    rss_warm = None
    rss_peak = 0
    while soak.running():
        time.sleep(2)
        if a.proc.poll() is not None:
            break
        rss = a.rss_kib()
        rss_peak = max(rss_peak, rss)
        if rss_warm is None and time.time() - started >= args.seconds / 4:
            rss_warm = rss
        st, _ = call(a.url + "/healthz", timeout=10)
        if st != 200:
            soak.fail(f"/healthz answered {st}")
    for w in workers:
        w.join()

    alive = a.proc.poll() is None
    if not alive:
        soak.fail(f"aifn exited with status {a.proc.returncode} during the run (log: {log})")
    else:
        rss_end = a.rss_kib()
        growth = (rss_end - (rss_warm or rss_end)) / 1024
        print(f"soak rss_after_warmup {(rss_warm or rss_end) / 1024:.1f} MiB")
        print(f"soak rss_end {rss_end / 1024:.1f} MiB")
        print(f"soak rss_peak {rss_peak / 1024:.1f} MiB")
        if growth > args.rss_growth_mib:
            soak.fail(f"RSS grew by {growth:.1f} MiB after the warm-up")
        # Once every function has scaled to zero (idle_timeout), the server
        # should hold about the descriptors it held at start.
        kids = children(pid)
        deadline = time.time() + 20
        while children(pid) and time.time() < deadline:
            time.sleep(0.2)
        fds_end = fd_count(pid)
        print(f"soak fds_start {fds_start} count")
        print(f"soak fds_end_no_instances {fds_end} count (instances left: {len(children(pid))})")
        if not children(pid) and fds_end > fds_start + 4:
            soak.fail(f"{fds_end - fds_start} more open descriptors than at start, with no instance running")
        a.proc.send_signal(signal.SIGTERM)
        status = a.proc.wait(30)
        if status != 0:
            soak.fail(f"SIGTERM: exit status {status}")
        left = [k for k in kids + children(pid) if os.path.exists(f"/proc/{k}")]
        if left:
            soak.fail(f"instance processes left after SIGTERM: {left}")
    a.stop()
    shutil.rmtree(functions, ignore_errors=True)
    for k, v in soak.counts.items():
        print(f"soak {k} {v} count")
    print(f"soak failures {len(soak.failures)} count")
    if soak.failures:
        print(f"# server log: {log}", file=sys.stderr)
        sys.exit(1)
    os.unlink(log)


if __name__ == "__main__":
    main()
