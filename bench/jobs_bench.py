#!/usr/bin/env python3
"""Background-job benchmarks for aifn (DESIGN.md §7), against the C++ exec
hello (examples/hello-cpp), with durable commits (SQLite WAL,
synchronous=FULL: every acknowledged enqueue is fsynced, in group commits):

  enqueue     N jobs POSTed by wrk (c=64) to /fn/hello-cpp/jobs: enqueues/s
              (each answered 202 after its commit).
  completion  the same N jobs, from the first enqueue to the last committed
              result: completions/s (read from the jobs table's timestamps).
  latency     enqueue -> result as a client sees it (POST the job, then read
              GET /jobs/{id}/events until it is final), one job at a time: p50.
  baseline    the same function called synchronously (wrk c=16, and c=1 p50)
              in the same run, as the ratio's denominator.

Prints one machine-readable line per figure: `bench <name> <value> <unit>`.
Standard library only; needs wrk (scripts/bootstrap.sh installs it).
"""
import argparse
import http.client
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Aifn, emit, wrk  # noqa: E402


def hello_functions(max_instances):
    """A functions folder with hello-cpp (its built binary) and a raised max_instances."""
    src = os.path.join(ROOT, "examples", "hello-cpp")
    if not os.path.exists(os.path.join(src, "hello")):
        raise SystemExit("examples/hello-cpp/hello is not built (cmake --build BUILD --target hello-cpp)")
    d = tempfile.mkdtemp(prefix="aifn-jobs-bench-fns-")
    dst = os.path.join(d, "hello-cpp")
    os.makedirs(dst)
    shutil.copy2(os.path.join(src, "hello"), dst)
    with open(os.path.join(src, "function.toml")) as f:
        toml = f.read()
    with open(os.path.join(dst, "function.toml"), "w") as f:
        f.write(toml.rstrip() + f"\nmax_instances = {max_instances}\n")
    return d


def job_counts(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = dict(con.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
        span = con.execute("SELECT MIN(created_ms), MAX(created_ms), MAX(finished_ms) FROM jobs").fetchone()
    finally:
        con.close()
    return rows, span


def enqueue_rate(a, conns, seconds):
    """Acknowledged enqueues/s as wrk's clients see them (every 202 is after its commit)."""
    out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "-s",
                          os.path.join(ROOT, "bench", "post.lua"), a.url + "/fn/hello-cpp/jobs"],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        print("# wrk saw non-2xx answers:\n" + out, file=sys.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def bench_throughput(a, jobs, conns, wrk_seconds):
    per_thread = jobs // 2
    env = dict(os.environ, JOBS_PER_THREAD=str(per_thread))
    # wrk runs for its whole -d even after every thread stopped: the
    # enqueue rate comes from the jobs' own commit-side timestamps.
    out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{wrk_seconds}s", "-s",
                          os.path.join(ROOT, "bench", "jobs_enqueue.lua"), a.url + "/fn/hello-cpp/jobs"],
                         capture_output=True, text=True, env=env, check=True).stdout
    db = os.path.join(a.data, "aifn.db")
    rows, (first_created, last_created, _) = job_counts(db)
    enqueued = sum(rows.values())
    enqueue_s = max(last_created - first_created, 1) / 1000.0
    if "Non-2xx" in out:
        print("# wrk saw non-2xx answers:\n" + out, file=sys.stderr)
    emit("jobs.enqueued", enqueued, "jobs")
    emit("jobs.enqueue_rate_commit_span", enqueued / enqueue_s, "jobs/s")
    deadline = time.time() + 600
    while time.time() < deadline:
        rows, span = job_counts(db)
        if rows.get("succeeded", 0) + rows.get("failed", 0) >= enqueued:
            break
        time.sleep(0.2)
    first_created, _, last_finished = span
    emit("jobs.succeeded", rows.get("succeeded", 0), "jobs")
    emit("jobs.completion_rate", rows.get("succeeded", 0) / ((last_finished - first_created) / 1000.0),
         "jobs/s(target>=1500)")
    return rows.get("succeeded", 0) / ((last_finished - first_created) / 1000.0)


def job_latency(a, samples):
    host, port = "127.0.0.1", a.port
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("POST", "/fn/hello-cpp/jobs", body=b'{"name":"Ada"}', headers={"Content-Type": "application/json"})
        r = c.getresponse()
        loc = r.getheader("Location")
        r.read()
        c.request("GET", loc + "/events")
        r = c.getresponse()
        buf = b""
        while b'"status":"succeeded"' not in buf and b'"status":"failed"' not in buf:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
        lat.append(time.perf_counter() - t0)
        c.close()
    return statistics.median(lat) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--max-instances", type=int, default=3)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--wrk-seconds", type=int, default=8, help="long enough for every enqueue")
    args = ap.parse_args()
    fns = hello_functions(args.max_instances)
    try:
        a = Aifn(args.build, fns)
        try:
            sync_rps, _ = wrk(a.url + "/fn/hello-cpp", 16, args.seconds)
            _, sync_lat = wrk(a.url + "/fn/hello-cpp", 1, args.seconds, threads=1)
            emit("jobs.baseline_sync_rps", sync_rps, "req/s")
            completions = bench_throughput(a, args.jobs, args.conns, args.wrk_seconds)
            emit("jobs.completion_vs_sync", completions / sync_rps, "ratio")
        finally:
            a.stop()
        a = Aifn(args.build, fns)  # a fresh queue for each phase
        try:
            emit("jobs.enqueue_rate", enqueue_rate(a, args.conns, args.seconds), "jobs/s(target>=5000)")
        finally:
            a.stop()
        a = Aifn(args.build, fns)
        try:
            p50 = job_latency(a, args.samples)
            emit("jobs.latency_p50", p50, "ms")
            emit("jobs.baseline_sync_p50", sync_lat[50] / 1000, "ms")
        finally:
            a.stop()
    finally:
        shutil.rmtree(fns, ignore_errors=True)


if __name__ == "__main__":
    main()
