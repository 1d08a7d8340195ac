#!/usr/bin/env bash
# `make bench`: every benchmark, each printing `bench NAME VALUE UNIT` lines
# with ratios against baselines measured in the same run.
set -euo pipefail
build=${1:-build}
root="$(cd "$(dirname "$0")/.." && pwd)"
echo "# platform (wrk, nginx baseline)"
python3 "$root/bench/platform_bench.py" --build "$root/$build"
echo "# platform ceiling (every party's CPU per call; a featureless Runtime API server; two shards)"
python3 "$root/bench/platform_ceiling.py" --build "$root/$build"
echo "# instances under SCHED_BATCH against the normal policy, idle and beside a CPU-bound process"
python3 "$root/bench/sched_ab.py" --build "$root/$build"
if [ -x "$root/bench/engine_bench.sh" ]; then
  echo "# engine"
  bash "$root/bench/engine_bench.sh" "$root/$build"
fi
echo "# model gateway (streamed /v1 tokens/s vs the engine alone)"
python3 "$root/bench/models_bench.py" --build "$root/$build"
echo "# upstream relay (openai provider: latency aifn adds over calling the upstream directly)"
python3 "$root/bench/upstream_bench.py" --build "$root/$build"
echo "# background jobs (10,000 jobs of the exec hello, durable commits)"
python3 "$root/bench/jobs_bench.py" --build "$root/$build"
