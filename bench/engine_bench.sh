#!/usr/bin/env bash
# Engine benchmark: generates TinyLlama-shaped models (n_embd 2048, 22 layers,
# 32 heads, 4 KV heads, n_ff 5632, vocab 32000) in Q4_0, Q8_0, Q4_K and Q5_K, measures
# STREAM-triad memory bandwidth in the same run, and prints prompt-processing
# and generation tokens/s plus generation as a fraction of the bandwidth bound
# (bandwidth / bytes of weights read per token). First, each decode kernel's
# speed on one thread (aifn-kernel-bench).
#   bench/engine_bench.sh [BUILD_DIR] [extra aifn-engine-bench flags]
# Models are cached in ${AIFN_BENCH_DIR:-/tmp} (about 3.2 GB for all four).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
bin="$build/aifn-engine-bench"
if [ ! -x "$bin" ] || [ ! -x "$build/aifn-kernel-bench" ]; then
  cmake --build "$build" --target aifn-engine-bench aifn-kernel-bench -j2 >/dev/null
fi
# Each decode kernel alone, one thread: from L2 (its arithmetic) and from memory.
"$build/aifn-kernel-bench"
"$bin" --threads "${AIFN_BENCH_THREADS:-2}" --types q4_0,q8_0,q4_k,q5_k --prompt 128 --gen 32 --reps 3 \
  --dir "${AIFN_BENCH_DIR:-/tmp}" --keep "$@"
