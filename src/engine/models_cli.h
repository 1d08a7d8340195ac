// `aifn models run` and `aifn models bench` (DESIGN.md §10): local engine verbs
// that need no server. The CLI (src/cli) parses arguments and calls these.
// models_run writes only the generated text to stdout, streamed (a partial UTF-8
// sequence held back until it completes or generation ends), diagnostics to
// stderr. models_bench prints tokens/s, or one JSON line with --json.
// Each call loads the model itself; not meant to be called concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace aifn::engine {

struct ModelsRunOptions {
  std::string path;
  std::string prompt;
  int n_predict = 128;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  std::optional<uint64_t> seed;
  int threads = 0;  // <= 0: hardware_concurrency
};

struct ModelsBenchOptions {
  std::string path;
  int threads = 0;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  int reps = 3;
  int depth = 0;  // tokens in the KV cache before each measured run
  bool json = false;
};

// Both return a process exit status: 0 on success, 1 on an error (reported on stderr).
int models_run(const ModelsRunOptions& options);
int models_bench(const ModelsBenchOptions& options);

}  // namespace aifn::engine
