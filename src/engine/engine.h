// aifn::engine::Engine — the built-in GGUF inference engine as the rest of aifn
// sees it: load a model file once, read its metadata, tokenize and detokenize
// with the model's own vocabulary, and generate text token by token with
// sampling, stop strings and cancellation.
// Called by the gguf model provider (serving) and the `aifn models run|bench`
// CLI. Thread-safety: after load() every method may be called from any number
// of threads; each generate() call has its own KV cache, and concurrent calls
// share the engine's thread pool one parallel loop at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/text_stream.h"
#include "engine/thread_pool.h"
#include "engine/tokenizer.h"

namespace aifn::engine {

struct EngineOptions {
  int threads = 0;  // <= 0: hardware_concurrency
  int n_ctx = 0;    // per request; <= 0: the model's context_length, capped at 4096
};

struct GenerateResult {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  FinishReason finish = FinishReason::kNone;  // kNone: cancelled through the stop flag
  double prompt_seconds = 0;                  // time to the first generated token's logits
  double generate_seconds = 0;
};

class Engine {
 public:
  static tl::expected<std::unique_ptr<Engine>, std::string> load(const std::string& path,
                                                                 const EngineOptions& options = {});
  static tl::expected<std::unique_ptr<Engine>, std::string> load(const std::string& path, int threads) {
    return load(path, EngineOptions{threads, 0});
  }

  // general.name, else the file name without .gguf.
  const std::string& name() const { return name_; }
  const ModelConfig& config() const { return model_->config(); }
  int context_length() const { return n_ctx_; }
  int n_vocab() const { return model_->config().n_vocab; }
  int threads() const { return pool_->size(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::shared_ptr<const Model>& model() const { return model_; }
  ThreadPool& pool() const { return *pool_; }

  // add_special: BOS/EOS as the model's metadata says.
  std::vector<TokenId> tokenize(std::string_view text, bool add_special = true) const;
  std::string detokenize(std::span<const TokenId> tokens) const;

  // Receives each piece of text as it becomes safe to show (complete UTF-8, not
  // part of a stop string); return false to stop generating.
  using TextCallback = std::function<bool(std::string_view text)>;

  // Evaluates the prompt as one batch, then samples up to limits.max_tokens
  // tokens. Stops early on an end-of-generation token, a stop string, the
  // callback returning false, *stop becoming true, or the context filling up
  // (finish = kLength). Errors: empty prompt, prompt longer than the context,
  // invalid sampling parameters.
  tl::expected<GenerateResult, std::string> generate(std::span<const TokenId> prompt, const SamplingParams& sampling,
                                                     const GenerationLimits& limits, const TextCallback& on_text,
                                                     const std::atomic<bool>* stop = nullptr) const;

  // A sentence embedding of `tokens` (for /v1/embeddings): the final hidden
  // state (after the output norm) of every token, mean-pooled over the tokens
  // and L2-normalised, n_embd floats. Errors: no tokens, more than the context.
  tl::expected<std::vector<float>, std::string> embed(std::span<const TokenId> tokens) const;

 private:
  Engine() = default;
  std::string name_;
  int n_ctx_ = 0;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace aifn::engine
