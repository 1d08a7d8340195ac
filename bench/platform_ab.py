#!/usr/bin/env python3
"""Two aifn builds side by side: warm throughput of the exec, Node and Python
hellos at 16 connections, wrk alternating between the two servers (and nginx)
round by round, so both see the same machine. Each build serves the examples
and runtimes of its own checkout (the folder above the build directory).

  git worktree add /tmp/aifn-old <commit> && cmake -S /tmp/aifn-old -B /tmp/aifn-old/build \\
      && cmake --build /tmp/aifn-old/build -j2 --target aifn hello-cpp
  python3 bench/platform_ab.py --old /tmp/aifn-old/build --new build

Prints `bench ab.<function>.<old|new>_rps` lines and `ab.<function>.new_vs_old`,
and each build's p99 at 16 connections and p50 and p99 at one connection (medians).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import Aifn, Nginx, emit, post, wrk  # noqa: E402

FUNCTIONS = ["hello-cpp", "hello-node", "hello-python"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="build directory of the baseline")
    ap.add_argument("--new", required=True, help="build directory to compare")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=4)
    a = ap.parse_args()
    builds = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}
    servers = {k: Aifn(b, os.path.join(os.path.dirname(b), "examples")) for k, b in builds.items()}
    ngx = Nginx()
    try:
        for s in servers.values():
            for f in FUNCTIONS:
                post(f"{s.url}/fn/{f}")  # cold starts out of the way
        rps, p99, p50, p99_c1 = {}, {}, {}, {}
        for _ in range(a.rounds):
            rps.setdefault("nginx", []).append(wrk(ngx.url + "/", 16, a.seconds)[0])
            for f in FUNCTIONS:
                for k, s in servers.items():
                    r, lat = wrk(f"{s.url}/fn/{f}", 16, a.seconds)
                    rps.setdefault((f, k), []).append(r)
                    p99.setdefault((f, k), []).append(lat[99])
            # One connection after all the loaded runs, each after a second's
            # rest: what a 16-connection run leaves behind (usage records still
            # being written, instances its cancelled calls stopped) settles first.
            for f in FUNCTIONS:
                for k, s in servers.items():
                    time.sleep(1)
                    lat1 = wrk(f"{s.url}/fn/{f}", 1, a.seconds)[1]
                    p50.setdefault((f, k), []).append(lat1[50])
                    p99_c1.setdefault((f, k), []).append(lat1[99])
        nginx = statistics.median(rps["nginx"])
        emit("ab.nginx_rps", nginx, "req/s")
        for f in FUNCTIONS:
            old, new = statistics.median(rps[(f, "old")]), statistics.median(rps[(f, "new")])
            emit(f"ab.{f}.old_rps", old, "req/s")
            emit(f"ab.{f}.new_rps", new, "req/s")
            emit(f"ab.{f}.new_vs_old", new / old, "ratio")
            emit(f"ab.{f}.new_vs_nginx", new / nginx, "ratio")
            for k in builds:
                emit(f"ab.{f}.{k}_p99_c16_us", statistics.median(p99[(f, k)]), "us")
                emit(f"ab.{f}.{k}_p50_c1_us", statistics.median(p50[(f, k)]), "us")
                emit(f"ab.{f}.{k}_p99_c1_us", statistics.median(p99_c1[(f, k)]), "us")
    finally:
        for s in servers.values():
            s.stop()
        ngx.stop()


if __name__ == "__main__":
    main()
