// Sampler: picks the next token from a row of logits. Greedy when the
// temperature is 0; otherwise llama.cpp's default chain: repetition /
// presence / frequency penalties over the last N tokens, top-k, top-p,
// min-p, temperature, then a draw from the resulting distribution with a
// seeded 64-bit Mersenne Twister (same seed, same logits, same history ->
// same token, on every platform: the draw does not use std:: distributions).
// Called by the engine once per generated token. One Sampler per request; not
// thread-safe (it holds the RNG state and the token history).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <tl/expected.hpp>

#include "engine/tokenizer.h"

namespace aifn::engine {

struct SamplingParams {
  float temperature = 0.8f;       // <= 0: greedy (argmax, first index on ties)
  int32_t top_k = 40;             // <= 0: off
  float top_p = 0.95f;            // >= 1: off
  float min_p = 0.05f;            // <= 0: off
  float repeat_penalty = 1.0f;    // 1: off; > 1 discourages tokens in the window
  float presence_penalty = 0.0f;  // subtracted once from tokens in the window
  float frequency_penalty = 0.0f; // subtracted per occurrence in the window
  int32_t penalty_last_n = 64;    // window of accepted tokens; 0: no penalties
  std::optional<uint64_t> seed;   // absent: a random seed (see Sampler::seed())
};

class Sampler {
 public:
  // Rejects NaN and out-of-range values (top_p > 0, min_p in [0, 1],
  // repeat_penalty > 0, penalty_last_n >= 0).
  static tl::expected<Sampler, std::string> create(const SamplingParams& params);

  // Picks a token. Does not record it: call accept() with what was used.
  // Errors on an empty row or when no logit is finite.
  tl::expected<TokenId, std::string> sample(std::span<const float> logits);

  // Records a token for the penalties (generated ones; prompt tokens too if
  // the prompt should count, as llama-server does).
  void accept(TokenId id);

  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  explicit Sampler(const SamplingParams& params);
  double uniform01();

  SamplingParams params_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::deque<TokenId> window_;                  // last penalty_last_n accepted tokens
  std::unordered_map<TokenId, int32_t> counts_; // occurrences within window_
};

}  // namespace aifn::engine
