// A loaded llama-family transformer (architectures llama/mistral and qwen2)
// whose weights are views into a memory-mapped GgufFile, and Session, one
// sequence's KV cache and scratch buffers.
// Called by engine.cpp, the benchmark and tests. Thread-safety: a Model is
// immutable after load() and shared by any number of Sessions on any threads;
// a Session belongs to one thread at a time. Sessions that share a ThreadPool
// take turns on it, one parallel loop at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "engine/gguf.h"
#include "engine/kernels.h"
#include "engine/huge_buffer.h"
#include "engine/matmul.h"
#include "engine/thread_pool.h"

namespace aifn::engine {

enum class RopeType { kNorm, kNeox };  // adjacent pairs (llama) / halves (qwen2, NeoX)

struct ModelConfig {
  std::string arch;
  std::string name;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_rot = 0;
  int n_ff = 0;
  float rope_theta = 10000.f;
  float rms_eps = 1e-5f;
  RopeType rope = RopeType::kNorm;
  uint32_t weight_type = 0;  // type of attn_q in layer 0, for display
};

class Model {
 public:
  static tl::expected<std::shared_ptr<const Model>, std::string> load(std::shared_ptr<const GgufFile> file);

  const ModelConfig& config() const { return config_; }
  const GgufFile& gguf() const { return *file_; }
  // Bytes of weights one decode step reads (all matrices except the embedding table).
  uint64_t weight_bytes_per_token() const { return weight_bytes_; }

 private:
  friend class Session;
  struct Layer {
    std::vector<float> attn_norm, ffn_norm, bq, bk, bv;  // biases empty when absent
    WeightMatrix wq, wk, wv, wo, gate, up, down;
  };
  Model() = default;
  // Moves every weight matrix out of the file mapping into memory the model
  // owns, backed by huge pages (HugeBuffer), Q4_0, Q8_0, Q4_K, Q5_K and Q6_K ones with a
  // multiple of 8 rows rearranged as repack.h says. Token generation streams all weights
  // per token: measured, this is what lets it approach the memory bandwidth.
  // The file's pages are released from this process (they stay in the page
  // cache); token embeddings are still read from the file.
  void copy_weights_to_huge_pages();

  std::shared_ptr<const GgufFile> file_;
  ModelConfig config_;
  const TensorInfo* tok_embd_ = nullptr;
  std::vector<float> output_norm_;
  WeightMatrix output_;
  std::vector<Layer> layers_;
  uint64_t weight_bytes_ = 0;
  HugeBuffer weights_{0};  // owns what the matrices point at
};

// kHidden: instead of logits, the final hidden state (after output_norm) of
// every token, n_embd floats per token (embeddings, Engine::embed).
enum class Logits { kLast, kAll, kHidden };

// What the KV cache holds. F16 (llama.cpp's default too) halves its memory and
// what attention reads per token; F32 keeps keys and values exact, which the
// tests against llama.cpp's F32-cache reference vectors use.
enum class KvCache { kF16, kF32 };

class Session {
 public:
  // n_ctx <= 0 means the model's training context (capped at 4096). kernels
  // defaults to best_kernels() (tests pass scalar_kernels()).
  Session(std::shared_ptr<const Model> model, ThreadPool& pool, int n_ctx = 0, const KernelTable* kernels = nullptr,
          KvCache kv = KvCache::kF16);

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  // Forgets the cached positions from n onwards (0 clears the sequence).
  void truncate(int n);

  // Feeds tokens at positions n_past()..n_past()+size-1 (as one batch), adds them
  // to the KV cache and writes logits: one row of n_vocab for the last token, or
  // one per token (kHidden: n_embd hidden-state floats per token). Errors: empty input, a token outside the vocabulary, or more
  // positions than the context.
  tl::expected<void, std::string> eval(std::span<const int32_t> tokens, Logits which, std::vector<float>* logits);

 private:
  void eval_batch(const int32_t* tokens, int n, bool all_logits, float* logits_out, bool hidden = false);
  void attention(int layer, int n);
  void matmul_from(const float* x, int n, const std::vector<MatmulOut>& outs);

  std::shared_ptr<const Model> model_;
  ThreadPool& pool_;
  const KernelTable& kernels_;
  int n_ctx_;
  int n_past_ = 0;
  int kv_dim_, n_heads_kv_, head_dim_;
  // [layer][kv head][pos][head_dim]: a KV head's keys are one contiguous run,
  // which attention streams (with positions interleaved, [pos][kv_dim], each
  // head read 256-byte pieces 1 KiB apart and ran at a fraction of the bandwidth).
  // One pair is in use, as kv_ says.
  KvCache kv_;
  std::vector<float> k_cache_, v_cache_;
  std::vector<uint16_t> k_half_, v_half_;
  size_t kv_slot(int layer, int kv_head, int pos) const {
    return ((size_t(layer) * size_t(n_heads_kv_) + size_t(kv_head)) * size_t(n_ctx_) + size_t(pos)) * size_t(head_dim_);
  }
  // Scratch, sized for the largest batch seen.
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_, rope_cos_, rope_sin_;
  std::vector<uint8_t> act_;                      // a batch's prepared activations
  std::vector<std::vector<uint8_t>> thread_act_;  // one token's, per pool thread (matvec)
  std::vector<std::vector<float>> scores_;  // per pool thread: attend() scratch, 8 * n_ctx
};

}  // namespace aifn::engine
