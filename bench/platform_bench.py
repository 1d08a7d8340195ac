#!/usr/bin/env python3
"""Platform benchmarks for aifn (issue: platform core), each a ratio against a
baseline measured in the same run:

  throughput  wrk c=16 against aifn's C++ exec hello and Node hello, alternating
              with nginx answering a fixed JSON, nginx relaying to that nginx
              (proxy_pass, keep-alive upstream) and a plain Node http server
              answering the hello; medians of --rounds runs.
  latency     wrk c=1 p50/p99 for exec, Node and Python hello vs nginx.
  cold        cold start p50 per runtime, split into the runtime's own boot
              (aifn's init: spawn -> first /next) and aifn's overhead (the rest
              of the cold call minus the warm call), plus a bare interpreter start.
  rss         server RSS with 20 functions deployed and scaled to zero.

Prints one machine-readable line per figure: `bench <name> <value> <unit>`.
Standard library only; needs wrk and nginx (scripts/bootstrap.sh installs them).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import LoopbackServer, free_port, wait_http  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def post(url, body=b'{"name":"Ada"}'):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        headers = dict(r.headers)
    return time.perf_counter() - t0, data, headers


class Aifn:
    def __init__(self, build, functions, extra=(), env_extra=None, log=None):
        """`log`: a file for the server's output (default: discarded)."""
        self.data = tempfile.mkdtemp(prefix="aifn-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AIFN_LOG_LEVEL="warn", **(env_extra or {}))
        out = open(log, "w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [os.path.join(build, "aifn"), "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
             "--functions", functions, *extra],
            stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL, env=env)
        if log:
            out.close()
        if not wait_http(self.url + "/healthz"):
            raise SystemExit("aifn did not start")

    def instances(self, fn):
        with urllib.request.urlopen(f"{self.url}/admin/functions/{fn}/instances") as r:
            return len(json.load(r)["instances"])

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data, ignore_errors=True)


class Nginx:
    """nginx answering a fixed JSON; or, with `upstream` (another Nginx), a
    relay passing each request to it over keep-alive loopback connections:
    the same two HTTP exchanges and three processes per call as aifn calling
    an instance, done by the most optimised relay at hand."""

    def __init__(self, upstream=None):
        self.dir = tempfile.mkdtemp(prefix="aifn-nginx-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if upstream:
            upstream_block = f"upstream fn {{ server 127.0.0.1:{upstream.port}; keepalive 32; }}"
            location = 'proxy_pass http://fn; proxy_http_version 1.1; proxy_set_header Connection "";'
        else:
            upstream_block = ""
            location = """default_type application/json; return 200 '{"message":"hello, Ada"}';"""
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto; daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {self.dir}; proxy_temp_path {self.dir};
  fastcgi_temp_path {self.dir}; uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};
  {upstream_block}
  server {{ listen 127.0.0.1:{self.port}; location / {{ {location} }} }} }}
""")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_http(self.url + "/"):
            raise SystemExit("nginx did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def node_http():
    """bench/node_http_hello.js: a plain Node http server, the issue's other baseline."""
    return LoopbackServer("the node http baseline",
                          lambda port: ["node", os.path.join(ROOT, "bench", "node_http_hello.js"), str(port)])


def wrk_cmd(url, conns, seconds, threads=None, headers=()):
    """wrk POSTing bench/post.lua's event to `url`, reporting latency percentiles."""
    cmd = ["wrk", "-t", str(threads or min(conns, 2)), "-c", str(conns), "-d", f"{seconds}s", "--latency", "-s",
           os.path.join(ROOT, "bench", "post.lua")]
    for h in headers:
        cmd += ["-H", h]
    return cmd + [url]


def wrk(url, conns, seconds, threads=None, headers=(), with_errors=False):
    """(req/s, {percentile: µs}), plus the count of non-2xx answers if `with_errors`."""
    out = subprocess.run(wrk_cmd(url, conns, seconds, threads, headers), capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[int(pct)] = float(val) * {"us": 1, "ms": 1000, "s": 1e6}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(errors.group(1)) if errors else 0
    if with_errors:
        return rps, lat, non2xx
    if non2xx:
        print(f"# warning: {non2xx} non-2xx answers from {url}", file=sys.stderr)
    return rps, lat


def emit(name, value, unit):
    print(f"bench {name} {value:.6g} {unit}", flush=True)


def bench_throughput(a, ngx, rounds, seconds):
    for fn in ("hello-cpp", "hello-node", "hello-python"):
        post(f"{a.url}/fn/{fn}")  # warm
    plain_node = node_http()
    relay = Nginx(upstream=ngx)
    res = {"nginx": [], "nginx-relay": [], "node-http": [], "hello-cpp": [], "hello-node": []}
    try:
        for _ in range(rounds):
            res["nginx"].append(wrk(ngx.url + "/", 16, seconds)[0])
            res["nginx-relay"].append(wrk(relay.url + "/", 16, seconds)[0])
            res["node-http"].append(wrk(plain_node.url + "/", 16, seconds)[0])
            res["hello-cpp"].append(wrk(a.url + "/fn/hello-cpp", 16, seconds)[0])
            res["hello-node"].append(wrk(a.url + "/fn/hello-node", 16, seconds)[0])
    finally:
        plain_node.stop()
        relay.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    emit("throughput.nginx_rps", med["nginx"], "req/s")
    emit("throughput.node_http_rps", med["node-http"], "req/s")
    emit("throughput.exec_hello_rps", med["hello-cpp"], "req/s")
    emit("throughput.node_hello_rps", med["hello-node"], "req/s")
    emit("throughput.exec_vs_nginx", med["hello-cpp"] / med["nginx"], "ratio(target>=0.35)")
    # The reference machine: plain Node http 19,500 = 0.44x its nginx.
    emit("throughput.node_http_vs_nginx", med["node-http"] / med["nginx"], "ratio(issue's machine: 0.44)")
    emit("throughput.exec_vs_node_http", med["hello-cpp"] / med["node-http"], "ratio")
    # The same hop done by nginx proxying to nginx: what two loopback HTTP
    # exchanges per call leave of nginx's own rate on this machine.
    emit("throughput.nginx_relay_rps", med["nginx-relay"], "req/s")
    emit("throughput.nginx_relay_vs_nginx", med["nginx-relay"] / med["nginx"], "ratio")
    emit("throughput.exec_vs_nginx_relay", med["hello-cpp"] / med["nginx-relay"], "ratio")
    emit("throughput.node_vs_ric_1900", med["hello-node"] / 1900.0, "ratio(>1 beats aws-lambda-ric)")


def bench_latency(a, ngx, rounds, seconds):
    targets = {"nginx": ngx.url + "/", "exec": a.url + "/fn/hello-cpp", "node": a.url + "/fn/hello-node",
               "python": a.url + "/fn/hello-python"}
    p50 = {k: [] for k in targets}
    p99 = {k: [] for k in targets}
    for _ in range(rounds):
        for k, u in targets.items():
            _, lat = wrk(u, 1, seconds, threads=1)
            p50[k].append(lat[50])
            p99[k].append(lat[99])
    for k in targets:
        emit(f"latency.{k}_p50_us", statistics.median(p50[k]), "us")
        emit(f"latency.{k}_p99_us", statistics.median(p99[k]), "us")
    emit("latency.exec_p50_minus_nginx_p50_us", statistics.median(p50["exec"]) - statistics.median(p50["nginx"]),
         "us(target<=100)")


def bench_cold(build, samples):
    fdir = tempfile.mkdtemp(prefix="aifn-cold-")
    for fn in ("hello-node", "hello-python", "hello-cpp"):
        shutil.copytree(os.path.join(ROOT, "examples", fn), os.path.join(fdir, fn), symlinks=True)
        with open(os.path.join(fdir, fn, "function.toml"), "a") as f:
            f.write('\nidle_timeout = "50ms"\n')
    a = Aifn(build, fdir)
    try:
        bare = {"hello-node": ["node", "-e", "0"],
                "hello-python": [sys.executable if "pyenv" not in sys.executable else
                                 subprocess.run(["python3", "-c", "import sys;print(sys.executable)"],
                                                capture_output=True, text=True).stdout.strip(), "-c", "0"],
                "hello-cpp": ["/bin/true"]}
        for fn, label in (("hello-node", "node"), ("hello-python", "python"), ("hello-cpp", "exec")):
            totals, inits, overheads = [], [], []
            for _ in range(samples):
                deadline = time.time() + 5
                while a.instances(fn) and time.time() < deadline:
                    time.sleep(0.02)
                t, _, h = post(f"{a.url}/fn/{fn}")
                assert h.get("X-Aifn-Cold-Start") == "true", h
                timing = dict(re.findall(r"(\w+);dur=([\d.]+)", h["Server-Timing"]))
                init_ms = float(timing["init"])
                warm, _, _ = post(f"{a.url}/fn/{fn}")
                totals.append(t * 1000)
                inits.append(init_ms)
                overheads.append(t * 1000 - init_ms - warm * 1000)
            bare_ms = []
            for _ in range(samples):
                t0 = time.perf_counter()
                subprocess.run(bare[fn], check=True)
                bare_ms.append((time.perf_counter() - t0) * 1000)
            emit(f"cold.{label}_total_p50_ms", statistics.median(totals), "ms")
            emit(f"cold.{label}_runtime_boot_p50_ms", statistics.median(inits), "ms")
            emit(f"cold.{label}_bare_interpreter_p50_ms", statistics.median(bare_ms), "ms")
            emit(f"cold.{label}_aifn_overhead_p50_ms", statistics.median(overheads), "ms(target<=5)")
    finally:
        a.stop()
        shutil.rmtree(fdir, ignore_errors=True)


def bench_rss(build):
    fdir = tempfile.mkdtemp(prefix="aifn-rss-")
    for i in range(20):
        d = os.path.join(fdir, f"fn-{i:02d}")
        shutil.copytree(os.path.join(ROOT, "examples", "hello-node"), d)
        with open(os.path.join(d, "function.toml"), "w") as f:
            f.write(f'name = "fn-{i:02d}"\nruntime = "node"\nhandler = "index.handler"\n')
    a = Aifn(build, fdir)
    try:
        time.sleep(1.0)
        emit("rss.idle_20_functions_mib", a.rss_kib() / 1024, "MiB(target<=30)")
    finally:
        a.stop()
        shutil.rmtree(fdir, ignore_errors=True)


def bench_auth(build, rounds, seconds):
    """Warm exec hello at one connection: an open server vs one that checks an
    API key (scope, rate bucket) on every call, alternating round by round."""
    open_srv = Aifn(build, os.path.join(ROOT, "examples"))
    auth_srv = Aifn(build, os.path.join(ROOT, "examples"), env_extra={"AIFN_AUTH": "required", "AIFN_ADMIN_KEY": "bench-admin"})
    try:
        req = urllib.request.Request(auth_srv.url + "/admin/keys", method="POST",
                                     data=json.dumps({"name": "bench", "scopes": ["invoke:hello-cpp"],
                                                      "rate": "1000000/s"}).encode(),
                                     headers={"Authorization": "Bearer bench-admin",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            key = json.load(r)["key"]
        hdr = [f"Authorization: Bearer {key}"]
        post(open_srv.url + "/fn/hello-cpp")
        warm = urllib.request.Request(auth_srv.url + "/fn/hello-cpp", data=b"{}",
                                      headers={"Authorization": f"Bearer {key}"})
        urllib.request.urlopen(warm).read()
        p50 = {"open": [], "auth": []}
        for _ in range(rounds):
            p50["open"].append(wrk(open_srv.url + "/fn/hello-cpp", 1, seconds, threads=1)[1][50])
            p50["auth"].append(wrk(auth_srv.url + "/fn/hello-cpp", 1, seconds, threads=1, headers=hdr)[1][50])
        o, a = statistics.median(p50["open"]), statistics.median(p50["auth"])
        emit("auth.open_p50_us", o, "us")
        emit("auth.key_p50_us", a, "us")
        emit("auth.key_vs_open_p50", a / o, "ratio")
    finally:
        open_srv.stop()
        auth_srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--cold-samples", type=int, default=7)
    ap.add_argument("--only", default="throughput,latency,cold,rss,auth")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if only & {"throughput", "latency"}:
        a = Aifn(args.build, os.path.join(ROOT, "examples"))
        ngx = Nginx()
        try:
            if "throughput" in only:
                bench_throughput(a, ngx, args.rounds, args.seconds)
            if "latency" in only:
                bench_latency(a, ngx, args.rounds, args.seconds)
        finally:
            ngx.stop()
            a.stop()
    if "cold" in only:
        bench_cold(args.build, args.cold_samples)
    if "rss" in only:
        bench_rss(args.build)
    if "auth" in only:
        bench_auth(args.build, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
