#!/usr/bin/env bash
# `make fuzz`: builds every libFuzzer target with clang (ASan + UBSan) and
# runs each for FUZZ_SECONDS (default 60) from the committed seed corpus in
# fuzz/corpus/<target>/. New inputs go to fuzz-out/<target>/ (not committed);
# a crash ends that target's run and leaves its input in fuzz-out/<target>/
# (crash-*) to fix and add as a regression test; make fuzz then fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs=${FUZZ_SECONDS:-60}
build="$root/build-fuzz"
cd "$root"
# Configured every time (quick once done), so new targets are known.
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIFN_FUZZ=ON > /dev/null
all=(http_request_fuzz json_schema_fuzz toml_fuzz aifn_archive_fuzz gguf_fuzz model_fuzz tokenizer_fuzz
     runtime_api_fuzz openai_request_fuzz upstream_sse_fuzz)
# FUZZ_TARGETS="a b" runs only those.
read -r -a targets <<< "${FUZZ_TARGETS:-${all[*]}}"
cmake --build "$build" --target "${targets[@]}" aifn-gen-model -j"$(nproc)"

# Seeds that are made rather than committed: a small GGUF and a tar.gz.
mkdir -p fuzz-out/seeds/gguf_fuzz fuzz-out/seeds/model_fuzz fuzz-out/seeds/aifn_archive_fuzz
[ -f fuzz-out/seeds/gguf_fuzz/tiny.gguf ] || \
  "$build/aifn-gen-model" --out fuzz-out/seeds/gguf_fuzz/tiny.gguf --type q4_0 --n-embd 32 --layers 1 --vocab 512
# Models for model_fuzz: one per block size, small enough to mutate quickly.
[ -f fuzz-out/seeds/model_fuzz/q4_0.gguf ] || \
  "$build/aifn-gen-model" --out fuzz-out/seeds/model_fuzz/q4_0.gguf --type q4_0 --n-embd 32 --layers 1 --vocab 400
[ -f fuzz-out/seeds/model_fuzz/q5_k.gguf ] || \
  "$build/aifn-gen-model" --out fuzz-out/seeds/model_fuzz/q5_k.gguf --type q5_k --n-embd 256 --ff 256 \
    --heads 2 --kv-heads 1 --layers 1 --vocab 400
[ -f fuzz-out/seeds/aifn_archive_fuzz/hello.tar.gz ] || \
  tar -C examples -czf fuzz-out/seeds/aifn_archive_fuzz/hello.tar.gz hello-node

failed=()
for t in "${targets[@]}"; do
  bin=$(find "$build" -type f -name "$t" -perm -u+x | head -1)
  corpus="fuzz/corpus/${t}"
  [ -d "$corpus" ] || corpus="fuzz/corpus/${t#aifn_}"
  mkdir -p "fuzz-out/$t"
  seeds=("$corpus")
  [ -d "fuzz-out/seeds/$t" ] && seeds+=("fuzz-out/seeds/$t")
  echo "== $t for ${secs}s"
  rc=0
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="fuzz-out/$t/" "fuzz-out/$t" "${seeds[@]}" \
    > "fuzz-out/$t.log" 2>&1 || rc=$?
  grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Done" "fuzz-out/$t.log" || true
  [ "$rc" -eq 0 ] || failed+=("$t")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs and logs in fuzz-out/)"
  exit 1
fi
