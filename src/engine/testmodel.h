// Deterministic generator of small random-weight llama GGUF files: a real
// architecture and a working SentencePiece-style vocabulary (byte tokens plus
// pieces), so every part of the engine runs on it; its output text is noise.
// Used by tests, benchmarks (TinyLlama-shaped files) and `make run`'s default
// model. The same config always gives the same bytes. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include <tl/expected.hpp>

#include "engine/quant.h"

namespace aifn::engine {

struct TestModelConfig {
  std::string name = "aifn-tiny";
  int n_embd = 64;
  int n_layer = 2;
  int n_head = 4;
  int n_head_kv = 4;
  int n_ff = 192;
  int n_vocab = 512;  // at least 259 + 100 (specials, bytes, pieces)
  int n_ctx = 2048;
  GgmlType type = GgmlType::F32;  // of the 2-D weights; norms are F32
  bool tied = false;              // omit output.weight (use token_embd)
  uint64_t seed = 1;
  float rope_theta = 10000.f;
  float rms_eps = 1e-5f;
};

// Writes the model to path. Errors: shapes the type cannot hold (row length not a
// multiple of its block size), heads that do not divide, I/O failures.
tl::expected<void, std::string> write_test_model(const TestModelConfig& config, const std::string& path);

// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k" (any case).
tl::expected<GgmlType, std::string> parse_type_name(std::string_view name);

}  // namespace aifn::engine
