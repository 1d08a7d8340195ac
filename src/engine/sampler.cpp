#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aifn::engine {

namespace {

struct Candidate {
  TokenId id;
  float logit;
  float p = 0.0f;
};

// Higher logit first; equal logits keep the lower id first, so the order
// (and hence every cut and draw) is deterministic.
bool before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Fills p with the softmax of the logits (candidates sorted, best first).
void softmax(std::vector<Candidate>& c) {
  const float max = c.front().logit;
  double sum = 0.0;
  for (Candidate& x : c) {
    x.p = std::exp(x.logit - max);
    sum += x.p;
  }
  for (Candidate& x : c) x.p = static_cast<float>(x.p / sum);
}

}  // namespace

tl::expected<Sampler, std::string> Sampler::create(const SamplingParams& params) {
  auto bad = [](const char* what) {
    return tl::unexpected(std::string("sampling parameter ") + what);
  };
  if (std::isnan(params.temperature)) return bad("temperature is NaN");
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f) && !(params.top_p > 1.0f)) {
    return bad("top_p must be in (0, 1]");
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) return bad("min_p must be in [0, 1]");
  if (!(params.repeat_penalty > 0.0f) || std::isinf(params.repeat_penalty)) {
    return bad("repeat_penalty must be a positive number");
  }
  if (!std::isfinite(params.presence_penalty) || !std::isfinite(params.frequency_penalty)) {
    return bad("presence_penalty and frequency_penalty must be finite");
  }
  if (params.penalty_last_n < 0) return bad("penalty_last_n must be >= 0");
  return Sampler(params);
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  seed_ = params.seed ? *params.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^
                                           std::random_device{}();
  rng_.seed(seed_);
}

double Sampler::uniform01() {
  // 53 random bits -> [0, 1); the same on every standard library.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::accept(TokenId id) {
  if (params_.penalty_last_n <= 0) return;
  window_.push_back(id);
  ++counts_[id];
  if (window_.size() > static_cast<size_t>(params_.penalty_last_n)) {
    const TokenId old = window_.front();
    window_.pop_front();
    if (--counts_[old] == 0) counts_.erase(old);
  }
}

tl::expected<TokenId, std::string> Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) return tl::unexpected(std::string("sampler got an empty logits row"));
  if (logits.size() > static_cast<size_t>(std::numeric_limits<TokenId>::max())) {
    return tl::unexpected(std::string("sampler got too many logits"));
  }
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::vector<Candidate> cand;
  cand.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    // NaN or -inf never wins; +inf is clamped so softmax stays finite.
    if (std::isnan(l) || l == kNegInf) continue;
    cand.push_back({static_cast<TokenId>(i), std::min(l, std::numeric_limits<float>::max())});
  }
  if (cand.empty()) return tl::unexpected(std::string("no token has a finite logit"));

  // Penalties (llama.cpp's llama_sampler_penalties): dividing a positive
  // logit and multiplying a negative one both make the token less likely.
  if (!counts_.empty()) {
    for (Candidate& c : cand) {
      auto it = counts_.find(c.id);
      if (it == counts_.end()) continue;
      if (c.logit <= 0) c.logit *= params_.repeat_penalty;
      else c.logit /= params_.repeat_penalty;
      c.logit -= static_cast<float>(it->second) * params_.frequency_penalty + params_.presence_penalty;
    }
  }

  if (params_.temperature <= 0.0f) {
    // Greedy: the first maximum, as llama.cpp's argmax.
    const Candidate* best = &cand.front();
    for (const Candidate& c : cand) {
      if (c.logit > best->logit) best = &c;
    }
    return best->id;
  }

  // top-k
  size_t keep = cand.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(keep), cand.end(), before);
    cand.resize(keep);
  } else {
    std::sort(cand.begin(), cand.end(), before);
  }

  // top-p: the smallest prefix whose probability reaches top_p.
  if (params_.top_p < 1.0f) {
    softmax(cand);
    double cum = 0.0;
    size_t n = cand.size();
    for (size_t i = 0; i < cand.size(); ++i) {
      cum += cand[i].p;
      if (cum >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
    cand.resize(n);
  }

  // min-p: drop tokens less likely than min_p times the best one.
  if (params_.min_p > 0.0f) {
    const float floor = cand.front().logit + std::log(params_.min_p);
    size_t n = 1;
    while (n < cand.size() && cand[n].logit >= floor) ++n;
    cand.resize(n);
  }

  for (Candidate& c : cand) c.logit /= params_.temperature;
  softmax(cand);
  const double u = uniform01();
  double cum = 0.0;
  for (const Candidate& c : cand) {
    cum += c.p;
    if (u < cum) return c.id;
  }
  return cand.back().id;  // rounding left u just above the total
}

}  // namespace aifn::engine
