#!/usr/bin/env bash
# Installs every Debian and npm package that aifn's build, tests, examples and
# benchmarks need. Idempotent and quick when everything is already present.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl
  clang libclang-rt-14-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsqlite3-dev sqlite3 libpq-dev libsodium-dev
  libtomlplusplus-dev libvalijson-dev libcli11-dev libspdlog-dev libfmt-dev
  libexpected-dev libarchive-dev zlib1g-dev libgoogle-perftools-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm python3
  wrk nginx-light
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian (e.g. NodeSource); accept what is on PATH.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if command -v python3 >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == python3 ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages used by the integration tests (real clients no one here wrote),
# listed in tests/node/package.json: openai, aws-lambda-ric, @aws-sdk/client-lambda.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/tests/node/node_modules/.aifn-installed" ] || \
   [ "$root/tests/node/package.json" -nt "$root/tests/node/node_modules/.aifn-installed" ]; then
  echo "bootstrap: npm install in tests/node"
  (cd "$root/tests/node" && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.aifn-installed) || \
    echo "bootstrap: WARNING npm install failed; tests needing npm clients will be skipped" >&2
fi
# Example functions with npm dependencies (examples/chat uses the openai SDK);
# installed into the function folder so `require` finds them there.
for fn in chat; do
  dir="$root/examples/$fn"
  if [ ! -f "$dir/node_modules/.aifn-installed" ] || [ "$dir/package.json" -nt "$dir/node_modules/.aifn-installed" ]; then
    echo "bootstrap: npm install in examples/$fn"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.aifn-installed) || \
      echo "bootstrap: WARNING npm install failed in examples/$fn; that example will not start" >&2
  fi
done
