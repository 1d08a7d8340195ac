#!/usr/bin/env python3
"""Model gateway benchmark (issue: model gateway): generation tokens/s streamed
through aifn's /v1/chat/completions against `aifn models bench`'s figure for
the same generated model in the same run (the engine alone, no HTTP, no
server). Target: the gateway keeps >= 0.95x of the engine's speed.

  gateway_tg_tps   tokens/s between the first and the last streamed content
                   chunk (decode only, as the engine bench's tg figure), median
                   of --reps streams of --gen tokens.
  engine_tg_tps    `aifn models bench --json` tg_tps with the same threads
                   and `--depth` = the streams' prompt tokens (both decode
                   at the same KV-cache positions), runs alternating with the
                   gateway's (medians).
  ratio            median over the pairs of gateway / engine (each pair run
                   back to back).
  first_token_ms   time to the first content chunk (prompt + HTTP), median.
  cache_hit_ms     a deterministic (temperature 0) chat answered from the
                   exact-match cache: p50 latency of --reps*20 repeats, next to
                   the first (generated) call's latency.

The generation runs use a server with the model cache off ([limits]
model_cache_ttl = "0s"): their repeated temperature-0 requests would hit it.

Prints `bench <name> <value> <unit>` lines. Standard library only.
"""
import argparse
import http.client
import json
import os
import sys
import statistics
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_http  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stream_once(port, gen):
    """One streamed chat completion; returns (tokens, first_chunk_s, decode_s, prompt_tokens)."""
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "Write a long story."}],
                       "max_tokens": gen, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise SystemExit(f"gateway answered {res.status}: {res.read()[:300]}")
    first = last = None
    tokens = prompt_tokens = 0
    # Cheap on the client's side (it shares the CPUs): only the usage chunk is parsed.
    for raw in res:
        if b'"content":"' in raw and b'"role"' not in raw:
            now = time.perf_counter()
            first = first or now
            last = now
        elif raw.startswith(b"data: {") and b'"usage":{' in raw:
            usage = json.loads(raw[6:])["usage"]
            tokens, prompt_tokens = usage["completion_tokens"], usage["prompt_tokens"]
    conn.close()
    return tokens, first - t0, last - first, prompt_tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    # Engine threads (both runs): leave a core for the server's io thread and
    # the client, which the engine-alone run does not need.
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    aifn = os.path.join(args.build, "aifn")
    work = tempfile.mkdtemp(prefix="aifn-models-bench-")
    model = os.path.join(work, "bench.gguf")
    # Big enough that decode time dominates per-token overheads, small enough
    # to generate in a second: ~27M parameters, Q8_0.
    subprocess.run([os.path.join(args.build, "aifn-gen-model"), "--out", model, "--type", "q8_0", "--seed", "1",
                    "--n-embd", "512", "--layers", "8", "--heads", "8", "--kv-heads", "8", "--ff", "1536",
                    "--ctx", "4096"], check=True, stdout=subprocess.DEVNULL)

    with open(os.path.join(work, "aifn.toml"), "w") as f:
        f.write(f'[limits]\nmodel_cache_ttl = "0s"\n\n'
                f'[[providers]]\nname = "local"\nkind = "gguf"\npath = "{model}"\nthreads = {args.threads}\n\n'
                f'[[models]]\nname = "default"\nroute = ["local/bench"]\n')
    port = free_port()
    proc = subprocess.Popen([aifn, "serve", "--listen", f"127.0.0.1:{port}", "--data", os.path.join(work, "data"),
                             "--functions", work, "--config", os.path.join(work, "aifn.toml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, AIFN_LOG_LEVEL="warn"))
    try:
        if not wait_http(f"http://127.0.0.1:{port}/healthz"):
            raise SystemExit("aifn did not start")
        # The model loads in the background: wait for it outside the timing.
        # The engine-alone runs then decode at the same KV-cache depth as the
        # streams (after the chat prompt), since attention grows with it.
        depth = stream_once(port, 8)[3]
        rates, engines, firsts = [], [], []
        # Alternate engine-alone and gateway runs so that load from elsewhere
        # on the machine hits both alike; the server idles (no CPU) meanwhile.
        for _ in range(args.reps):
            out = subprocess.run([aifn, "models", "bench", model, "--threads", str(args.threads), "--prompt", "32",
                                  "--gen", str(args.gen), "--reps", "1", "--depth", str(depth), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            engines.append(json.loads(out.strip().splitlines()[-1])["tg_tps"])
            tokens, first_s, decode_s, _ = stream_once(port, args.gen)
            if tokens < 16:
                raise SystemExit(f"the stream ended after {tokens} tokens")
            # Text chunks after the first: tokens - 1 decode steps (a chunk may
            # hold more than one token; the usage count is exact).
            rates.append((tokens - 1) / decode_s)
            firsts.append(first_s * 1000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    gateway = statistics.median(rates)
    engine = statistics.median(engines)
    print(f"bench models_engine_tg_tps {engine:.1f} tokens/s")
    print(f"bench models_gateway_tg_tps {gateway:.1f} tokens/s")
    # Each gateway run against the engine run just before it, then the median.
    ratio = statistics.median(g / e for g, e in zip(rates, engines))
    print(f"bench models_gateway_vs_engine {ratio:.3f} ratio")
    print(f"bench models_gateway_first_token {statistics.median(firsts):.1f} ms")
    cache_hit(aifn, model, work, args)


def cache_hit(aifn, model, work, args):
    """Latency of an exact-match cache hit vs the same request generated."""
    conf = os.path.join(work, "cached.toml")
    with open(conf, "w") as f:
        f.write(f'[[providers]]\nname = "local"\nkind = "gguf"\npath = "{model}"\nthreads = {args.threads}\n\n'
                f'[[models]]\nname = "default"\nroute = ["local/bench"]\n')
    port = free_port()
    proc = subprocess.Popen([aifn, "serve", "--listen", f"127.0.0.1:{port}", "--data", os.path.join(work, "data2"),
                             "--functions", work, "--config", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, AIFN_LOG_LEVEL="warn"))
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "Cache me."}],
                       "max_tokens": 64, "temperature": 0})
    conn = None
    try:
        if not wait_http(f"http://127.0.0.1:{port}/healthz"):
            raise SystemExit("aifn did not start")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

        def once():
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            return (time.perf_counter() - t0) * 1000, res.getheader("X-Aifn-Cache")

        once()  # the model loads in the background: wait for it outside the timing
        conn.request("POST", "/v1/chat/completions", body.replace("Cache me.", "Warm up."),
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
        # A fresh request generates (miss), then repeats come from the cache.
        body = body.replace("Cache me.", "Cache me, please.")
        miss_ms, state = once()
        assert state == "miss", state
        hits = []
        for _ in range(args.reps * 20):
            ms, state = once()
            assert state == "hit", state
            hits.append(ms)
        hits.sort()
        print(f"bench models_cache_miss {miss_ms:.2f} ms")
        print(f"bench models_cache_hit_p50 {statistics.median(hits) * 1000:.0f} us")
        print(f"bench models_cache_hit_p99 {hits[int(len(hits) * 0.99) - 1] * 1000:.0f} us")
        print(f"bench models_cache_hit_vs_miss {statistics.median(hits) / miss_ms:.4f} ratio")
    finally:
        if conn:
            conn.close()
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
