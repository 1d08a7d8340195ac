#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

namespace aifn::engine {

using Error = tl::unexpected<std::string>;

tl::expected<std::unique_ptr<Engine>, std::string> Engine::load(const std::string& path,
                                                                const EngineOptions& options) {
  auto file = GgufFile::open(path);
  if (!file) return Error(file.error());
  std::shared_ptr<const GgufFile> shared(std::move(*file));
  auto model = Model::load(shared);
  if (!model) return Error(path + ": " + model.error());
  auto tok = Tokenizer::from_gguf(*shared);
  if (!tok) return Error(path + ": tokenizer: " + tok.error());
  if (int((*tok)->n_vocab()) != (*model)->config().n_vocab)
    return Error(path + ": the vocabulary has " + std::to_string((*tok)->n_vocab()) + " tokens but token_embd has " +
                 std::to_string((*model)->config().n_vocab) + " rows");
  std::unique_ptr<Engine> e(new Engine());
  e->model_ = std::move(*model);
  e->tokenizer_ = std::move(*tok);
  e->pool_ = std::make_unique<ThreadPool>(options.threads);
  e->n_ctx_ = options.n_ctx > 0 ? options.n_ctx : std::min(e->model_->config().n_ctx_train, 4096);
  e->name_ = e->model_->config().name;
  if (e->name_.empty()) e->name_ = std::filesystem::path(path).stem().string();
  return e;
}

std::vector<TokenId> Engine::tokenize(std::string_view text, bool add_special) const {
  return tokenizer_->tokenize(text, add_special);
}

std::string Engine::detokenize(std::span<const TokenId> tokens) const {
  auto s = tokenizer_->detokenize(tokens);
  return s ? *s : std::string();
}

tl::expected<GenerateResult, std::string> Engine::generate(std::span<const TokenId> prompt,
                                                           const SamplingParams& sampling,
                                                           const GenerationLimits& limits,
                                                           const TextCallback& on_text,
                                                           const std::atomic<bool>* stop) const {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) return Error("the prompt has no tokens");
  if (int(prompt.size()) >= n_ctx_)
    return Error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " +
                 std::to_string(n_ctx_) + " tokens");
  auto sampler = Sampler::create(sampling);
  if (!sampler) return Error(sampler.error());
  // Size the KV cache for this request only.
  const int want = int(prompt.size()) + std::max(0, limits.max_tokens);
  Session session(model_, *pool_, std::min(n_ctx_, std::max(want, 1)));
  GenerationStream stream(*tokenizer_, limits);
  GenerateResult res;
  res.prompt_tokens = int(prompt.size());
  const auto t0 = Clock::now();
  std::vector<float> logits;
  if (auto r = session.eval(prompt, Logits::kLast, &logits); !r) return Error(r.error());
  const auto t1 = Clock::now();
  res.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  bool keep_going = true;
  while (keep_going && !stream.done()) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
    auto id = sampler->sample(logits);
    if (!id) return Error(id.error());
    sampler->accept(*id);
    auto text = stream.push(*id);
    if (!text) return Error(text.error());
    ++res.completion_tokens;
    if (!text->empty() && on_text && !on_text(*text)) keep_going = false;
    if (stream.done() || !keep_going) break;
    if (session.n_past() >= session.n_ctx()) {
      res.finish = FinishReason::kLength;
      break;
    }
    const TokenId next = *id;
    if (auto r = session.eval(std::span<const TokenId>(&next, 1), Logits::kLast, &logits); !r) return Error(r.error());
  }
  if (stream.done()) {
    res.finish = stream.finish_reason();
  } else {
    std::string rest = stream.finish();
    if (!rest.empty() && on_text) on_text(rest);
    if (stream.done()) res.finish = stream.finish_reason();
  }
  res.generate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return res;
}

tl::expected<std::vector<float>, std::string> Engine::embed(std::span<const TokenId> tokens) const {
  if (tokens.empty()) return Error("the input has no tokens");
  if (int(tokens.size()) > n_ctx_)
    return Error("input of " + std::to_string(tokens.size()) + " tokens does not fit the context of " +
                 std::to_string(n_ctx_) + " tokens");
  Session session(model_, *pool_, int(tokens.size()));
  std::vector<float> hidden;
  if (auto r = session.eval(tokens, Logits::kHidden, &hidden); !r) return Error(r.error());
  const size_t E = size_t(model_->config().n_embd);
  std::vector<float> out(E, 0.f);
  for (size_t t = 0; t < tokens.size(); ++t)
    for (size_t i = 0; i < E; ++i) out[i] += hidden[t * E + i];
  double norm = 0;
  for (float& v : out) {
    v /= float(tokens.size());
    norm += double(v) * v;
  }
  norm = std::sqrt(norm);
  if (norm > 0)
    for (float& v : out) v = float(v / norm);
  return out;
}

}  // namespace aifn::engine
