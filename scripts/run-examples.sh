#!/usr/bin/env bash
# `make run`: serves the example functions on the embedded defaults (SQLite
# store in .aifn/, the built-in test model) and prints lines to try.
set -euo pipefail
build=${1:-build}
port=${2:-8080}
root="$(cd "$(dirname "$0")/.." && pwd)"
url="http://127.0.0.1:${port}"
cat <<MSG

aifn is starting on ${url} with the functions in examples/. Try, in another terminal:

  curl -s ${url}/fn/hello-node -d '{"name":"Ada"}'
  curl -s ${url}/fn/hello-python -d '{"name":"Ada"}'
  curl -s ${url}/fn/hello-cpp -d '{"name":"Ada"}'
  curl -sN ${url}/fn/stream-node -d '{}'          # tokens as they are produced (SSE)
  curl -sN ${url}/fn/stream-python -d '{}'        # a Python generator, streamed
  curl -sN ${url}/fn/chat -d '{"message":"Hello"}' # the openai SDK in a function, tokens streamed
  curl -sN ${url}/fn/summarize -d '{"text":"aifn runs AI functions on your own machines."}'  # a prompt function, no code
  curl -s ${url}/v1/models                        # the OpenAI-compatible model gateway
  curl -s ${url}/v1/chat/completions -d '{"model":"default","messages":[{"role":"user","content":"Hi"}],"max_tokens":16}'
  curl -s -i ${url}/fn/slow -d '{"ms": 3000}'     # passes its 1s timeout: 504
  curl -s -i ${url}/fn/hello-cpp/jobs -d '{"name":"Ada"}'  # a background job: 202 + Location
  curl -s ${url}/jobs                             # the jobs and their results
  curl -s ${url}/admin/functions
  curl -s ${url}/admin/usage
  curl -s ${url}/metrics
  ${build}/aifn invoke hello-node -d '{"name":"Ada"}' --server ${url}
  ${build}/aifn logs hello-node --server ${url}
  ${build}/aifn invoke hello-python -d '{"name":"Ada"}' --job --wait --server ${url}

Stop with Ctrl-C.

MSG
exec "${root}/${build}/aifn" serve --functions "${root}/examples" --listen "127.0.0.1:${port}" --data "${root}/.aifn"
