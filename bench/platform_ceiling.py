#!/usr/bin/env python3
"""Where the exec hello's throughput ceiling comes from (issue: platform core,
the 0.35x nginx target). Two measurements, each against baselines taken in
the same run:

  cpu     first the host's price of a syscall and a context switch
          (aifn-bench-kernel); then wrk c=16 for --seconds against nginx,
          nginx relaying to nginx, a featureless Runtime API server serving
          the exec hello's binary (aifn-bench-floor: the least any server
          can do per call through an instance) and the exec hello through
          aifn, alternating: the whole machine's CPU from /proc/stat (idle,
          softirq, steal), and each party's CPU and context switches per
          call - wrk (its own rusage), the server's threads, the instances
          or nginx workers - so the sum shows whether the machine or one
          thread is the limit, and floor / nginx what any server could reach.
  shards  one aifn (wrk -t2 -c16) against two separate aifn processes, each
          driven by its own wrk -t1 -c8 at the same time, alternating with
          nginx. Two processes share nothing, so this is the most a second
          I/O thread could give: if two shards do no better than one, the
          limit is the machine's CPU, not the server's single I/O thread.

Prints `bench NAME VALUE UNIT` lines. Standard library only; needs wrk and
nginx. Usage: python3 bench/platform_ceiling.py [--build build] [--only cpu,shards]
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import LoopbackServer  # noqa: E402
from platform_bench import ROOT, Aifn, Nginx, emit, post, wrk_cmd  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def requests_made(out):
    """Completed requests from wrk's report; errors make the figure meaningless."""
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        print("# warning: non-2xx answers", file=sys.stderr)
    return int(re.search(r"(\d+) requests in", out).group(1))


def machine_ticks():
    """(busy, softirq, steal, idle) jiffies summed over all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return user + nice + system + irq + softirq + steal, softirq, steal, idle + iowait


def task_counts(pid):
    """{tid: (utime+stime jiffies, context switches)} for every thread of
    `pid` ({} if it is gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
            out[int(tid)] = (int(fields[11]) + int(fields[12]), switches)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def descendants(pid):
    """Every live process below `pid` (a function's instances, nginx's workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (FileNotFoundError, ProcessLookupError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def snapshot(pids):
    """The first server's own threads {tid: (jiffies, switches)}, and the
    (jiffies, switches) of every process below any of `pids` (instances,
    nginx workers)."""
    below = [v for p in pids for c in descendants(p) for v in task_counts(c).values()]
    return task_counts(pids[0]), (sum(v[0] for v in below), sum(v[1] for v in below))


def cpu_run(url, pids, seconds):
    """One wrk c=16 run with the CPU of every party over the same window.
    Returns shares of the machine (idle, softirq, steal) and, per call, the
    µs of CPU and the context switches of wrk, the server's own threads (all
    and the busiest) and the processes below the server."""
    m0, s0 = machine_ticks(), snapshot(pids)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(wrk_cmd(url, 16, seconds), capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m1, s1 = machine_ticks(), snapshot(pids)
    calls = requests_made(out)
    total = m1[0] - m0[0] + m1[3] - m0[3]
    us = lambda jiffies: jiffies / TICK * 1e6 / calls
    threads = {t: (v[0] - s0[0].get(t, (0, 0))[0], v[1] - s0[0].get(t, (0, 0))[1]) for t, v in s1[0].items()}
    busiest = max(threads.values(), default=(0, 0))
    return {
        "rps": calls / wall,
        "idle": (m1[3] - m0[3]) / total,
        "softirq": (m1[1] - m0[1]) / total,
        "steal": (m1[2] - m0[2]) / total,
        # wrk is our child: its CPU is exact, from its rusage once it has exited.
        "wrk_us": (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e6 / calls,
        "wrk_switches": (r1.ru_nvcsw + r1.ru_nivcsw - r0.ru_nvcsw - r0.ru_nivcsw) / calls,
        "server_us": us(sum(v[0] for v in threads.values())),
        "server_switches": sum(v[1] for v in threads.values()) / calls,
        "busiest_us": us(busiest[0]),
        "below_us": us(s1[1][0] - s0[1][0]),
        "below_switches": (s1[1][1] - s0[1][1]) / calls,
    }


def floor_server(build):
    """bench/runtime_floor.cpp serving the exec hello's binary through 10
    instances (aifn's default max_instances, all of which c=16 keeps busy)."""
    hello = os.path.join(ROOT, "examples", "hello-cpp", "hello")
    return LoopbackServer("aifn-bench-floor",
                          lambda port: [os.path.join(build, "aifn-bench-floor"), str(port), "10", hello])


def kernel_costs(build):
    """The host's syscall and context-switch prices (bench/kernel_costs.cpp)."""
    out = subprocess.run([os.path.join(build, "aifn-bench-kernel")], capture_output=True, text=True,
                         check=True).stdout
    print(out, end="", flush=True)
    return {m[0]: float(m[1]) for m in re.findall(r"^bench kernel\.(\w+) ([\d.]+)", out, re.M)}


def bench_cpu(build, rounds, seconds):
    costs = kernel_costs(build)
    a = Aifn(build, os.path.join(ROOT, "examples"))
    ngx = Nginx()
    relay = Nginx(upstream=ngx)
    floor = floor_server(build)
    targets = {"nginx": (ngx.url + "/", [ngx.proc.pid]),
               "nginx_relay": (relay.url + "/", [relay.proc.pid, ngx.proc.pid]),
               "floor": (floor.url + "/", [floor.proc.pid]),
               "exec": (a.url + "/fn/hello-cpp", [a.proc.pid])}
    post(a.url + "/fn/hello-cpp")
    runs = {k: [] for k in targets}
    try:
        for _ in range(rounds):
            for k, (url, pids) in targets.items():
                runs[k].append(cpu_run(url, pids, seconds))
    finally:
        floor.stop()
        relay.stop()
        ngx.stop()
        a.stop()
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in runs.items()}
    # nginx's master sleeps and its workers are its children (for the relay:
    # front and back); aifn's threads are its own and its instances its children.
    parties = {"nginx": ("wrk", "below"), "nginx_relay": ("wrk", "below"), "floor": ("wrk", "server", "below"),
               "exec": ("wrk", "server", "below")}
    for k, m in med.items():
        emit(f"ceiling.{k}_rps", m["rps"], "req/s")
        emit(f"ceiling.{k}_machine_idle", m["idle"], "share")
        emit(f"ceiling.{k}_machine_softirq", m["softirq"], "share")
        emit(f"ceiling.{k}_machine_steal", m["steal"], "share")
        for party in parties[k]:
            name = {"below": "workers" if k.startswith("nginx") else "instances"}.get(party, party)
            emit(f"ceiling.{k}_{name}_us_per_call", m[f"{party}_us"], "us")
            emit(f"ceiling.{k}_{name}_switches_per_call", m[f"{party}_switches"], "switches")
        total = sum(m[f"{party}_us"] for party in parties[k])
        emit(f"ceiling.{k}_total_us_per_call", total, "us(every party's CPU)")
        switches = sum(m[f"{party}_switches"] for party in parties[k])
        emit(f"ceiling.{k}_switch_cost_us_per_call", switches * costs["context_switch_us"],
             "us(switches x this host's price)")
    e = med["exec"]
    emit("ceiling.exec_aifn_busiest_thread_share", e["busiest_us"] * e["rps"] / 1e6, "share of one vCPU")
    emit("ceiling.exec_vs_nginx", e["rps"] / med["nginx"]["rps"], "ratio(target>=0.35)")
    emit("ceiling.floor_vs_nginx", med["floor"]["rps"] / med["nginx"]["rps"],
         "ratio(a featureless server, same instances)")
    emit("ceiling.exec_vs_floor", e["rps"] / med["floor"]["rps"], "ratio")
    # What one call may cost, every party together, for 0.35x nginx with no idle CPU.
    emit("ceiling.budget_at_target_us_per_call", os.cpu_count() * 1e6 / (0.35 * med["nginx"]["rps"]), "us")


def bench_shards(build, rounds, seconds):
    one = Aifn(build, os.path.join(ROOT, "examples"))
    two = [Aifn(build, os.path.join(ROOT, "examples")) for _ in range(2)]
    ngx = Nginx()
    for a in (one, *two):
        post(a.url + "/fn/hello-cpp")
    res = {"nginx": [], "one": [], "two": []}
    try:
        for _ in range(rounds):
            out = subprocess.run(wrk_cmd(ngx.url + "/", 16, seconds), capture_output=True, text=True).stdout
            res["nginx"].append(requests_made(out) / seconds)
            out = subprocess.run(wrk_cmd(one.url + "/fn/hello-cpp", 16, seconds), capture_output=True,
                                 text=True).stdout
            res["one"].append(requests_made(out) / seconds)
            procs = [subprocess.Popen(wrk_cmd(a.url + "/fn/hello-cpp", 8, seconds, threads=1),
                                      stdout=subprocess.PIPE, text=True) for a in two]
            res["two"].append(sum(requests_made(p.communicate()[0]) for p in procs) / seconds)
    finally:
        ngx.stop()
        for a in (one, *two):
            a.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    emit("shards.nginx_rps", med["nginx"], "req/s")
    emit("shards.one_server_rps", med["one"], "req/s")
    emit("shards.two_servers_rps", med["two"], "req/s")
    emit("shards.one_server_vs_nginx", med["one"] / med["nginx"], "ratio")
    emit("shards.two_servers_vs_nginx", med["two"] / med["nginx"], "ratio")
    emit("shards.two_vs_one", med["two"] / med["one"], "ratio(>1: the single I/O thread is the limit)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--only", default="cpu,shards")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if "cpu" in only:
        bench_cpu(args.build, args.rounds, args.seconds)
    if "shards" in only:
        bench_shards(args.build, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
