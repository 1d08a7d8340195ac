#!/usr/bin/env python3
"""Instances under SCHED_BATCH (aifn's default, `[instances] scheduling`)
against the same binary under the normal policy, with the machine otherwise
idle and with one CPU-bound process beside it (docs/OPERATIONS.md).

One aifn serves two copies of the exec hello: `hello-cpp` as aifn starts it,
and `hello-normal`, whose handler is `chrt -o 0 ./hello`. For each load and
round, alternating: wrk c=16 (req/s, p99), then c=1 (p50, p99). Prints
`bench NAME VALUE UNIT` lines, medians of --rounds.
Usage: python3 bench/sched_ab.py [--build build] [--rounds 6]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from platform_bench import ROOT, Aifn, emit, post, wrk  # noqa: E402


def functions_dir():
    d = tempfile.mkdtemp(prefix="aifn-sched-")
    src = os.path.join(ROOT, "examples", "hello-cpp")
    shutil.copytree(src, os.path.join(d, "hello-cpp"))
    normal = os.path.join(d, "hello-normal")
    shutil.copytree(src, normal)
    manifest = os.path.join(normal, "function.toml")
    with open(manifest) as f:
        text = f.read().replace('name = "hello-cpp"', 'name = "hello-normal"')
    with open(manifest, "w") as f:
        f.write(re.sub(r'handler = "\./hello".*', 'handler = "./run.sh"', text))
    with open(os.path.join(normal, "run.sh"), "w") as f:
        f.write("#!/bin/sh\nexec chrt -o 0 ./hello\n")
    os.chmod(os.path.join(normal, "run.sh"), 0o755)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    fdir = functions_dir()
    a = Aifn(args.build, fdir)
    fns = {"batch": "hello-cpp", "normal": "hello-normal"}
    res = {}
    try:
        for fn in fns.values():
            post(f"{a.url}/fn/{fn}")
        for load in ("idle", "hog"):
            hog = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if load == "hog" else None
            try:
                for _ in range(args.rounds):
                    for policy, fn in fns.items():
                        rps, lat = wrk(f"{a.url}/fn/{fn}", 16, 4)
                        _, lat1 = wrk(f"{a.url}/fn/{fn}", 1, 3, threads=1)
                        for name, v in (("c16_rps", rps), ("c16_p99_us", lat[99]), ("c1_p50_us", lat1[50]),
                                        ("c1_p99_us", lat1[99])):
                            res.setdefault((load, policy, name), []).append(v)
            finally:
                if hog:
                    hog.kill()
                    hog.wait()
    finally:
        a.stop()
        shutil.rmtree(fdir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    for (load, policy, name), v in sorted(med.items()):
        emit(f"sched.{load}.{policy}.{name}", v, "req/s" if name.endswith("rps") else "us")
    for load in ("idle", "hog"):
        emit(f"sched.{load}.batch_vs_normal_rps", med[(load, "batch", "c16_rps")] / med[(load, "normal", "c16_rps")],
             "ratio")


if __name__ == "__main__":
    main()
