#!/usr/bin/env bash
# Runs the bootstraps and examples against the fake Runtime API (no aifn server).
# Usage: tests/runtime_api_fake/run.sh [--bench N] [--only SUBSTRING]
# Builds examples/hello-cpp/hello first if it is missing or stale: with CMake
# when AIFN_BUILD_DIR names a configured build folder, else with g++ directly.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$root/examples/hello-cpp/hello.cpp"
bin="$root/examples/hello-cpp/hello"

if [[ ! -x "$bin" || "$src" -nt "$bin" ]]; then
  if [[ -n "${AIFN_BUILD_DIR:-}" ]]; then
    cmake --build "$AIFN_BUILD_DIR" --target hello-cpp -j"$(nproc)"
  else
    g++ -std=c++20 -O2 -Wall -Wextra -Wpedantic -Werror -Wno-unused-parameter \
      -DBOOST_ASIO_NO_DEPRECATED "$src" -o "$bin" -lboost_json -pthread
  fi
fi

exec node "$here/run_tests.js" "$@"
