#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant.h"
#include "engine/repack.h"

namespace aifn::engine {
namespace {

constexpr int kMaxBatch = 256;      // tokens per forward pass; longer prompts are split
constexpr int kDefaultCtxCap = 4096;

using Error = tl::unexpected<std::string>;

std::string shape_str(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Loads one tensor's view after checking existence, shape and type.
struct Loader {
  const GgufFile& f;

  tl::expected<const TensorInfo*, std::string> tensor(const std::string& name, std::vector<uint64_t> ne) const {
    const TensorInfo* t = f.find_tensor(name);
    if (t == nullptr) return Error("missing tensor '" + name + "'");
    if (t->ne != ne)
      return Error("tensor '" + name + "' has shape " + shape_str(t->ne) + "; expected " + shape_str(ne));
    const TypeTraits* tt = type_traits(t->type);
    if (tt == nullptr || !tt->compute)
      return Error("tensor '" + name + "' has type " + type_name(t->type) + ", which the engine cannot compute");
    return t;
  }

  tl::expected<WeightMatrix, std::string> matrix(const std::string& name, int64_t cols, int64_t rows) const {
    auto t = tensor(name, {uint64_t(cols), uint64_t(rows)});
    if (!t) return Error(t.error());
    return WeightMatrix{(*t)->type, rows, cols, (*t)->data, row_bytes((*t)->type, cols)};
  }

  tl::expected<std::vector<float>, std::string> vector(const std::string& name, int64_t n) const {
    auto t = tensor(name, {uint64_t(n)});
    if (!t) return Error(t.error());
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row((*t)->type, (*t)->data, v.data(), n);
    return v;
  }
};

}  // namespace

tl::expected<std::shared_ptr<const Model>, std::string> Model::load(std::shared_ptr<const GgufFile> file) {
  const GgufFile& f = *file;
  std::shared_ptr<Model> m(new Model());
  m->file_ = file;
  ModelConfig& c = m->config_;
  auto arch = f.get_string("general.architecture");
  if (!arch) return Error("general.architecture is missing");
  c.arch = *arch;
  if (c.arch == "qwen2") {
    c.rope = RopeType::kNeox;
  } else if (c.arch != "llama" && c.arch != "mistral") {
    return Error("unsupported architecture '" + c.arch + "' (supported: llama, mistral, qwen2)");
  }
  c.name = f.get_string("general.name").value_or("");
  const std::string p = c.arch + ".";
  auto need = [&](const std::string& key, int64_t lo, int64_t hi) -> tl::expected<int, std::string> {
    auto v = f.get_int(p + key);
    if (!v) return Error("metadata '" + p + key + "' is missing");
    if (*v < lo || *v > hi)
      return Error("metadata '" + p + key + "' = " + std::to_string(*v) + " is outside " + std::to_string(lo) +
                   ".." + std::to_string(hi));
    return int(*v);
  };
  auto n_embd = need("embedding_length", 1, 1 << 16);
  if (!n_embd) return Error(n_embd.error());
  auto n_layer = need("block_count", 1, 1024);
  if (!n_layer) return Error(n_layer.error());
  auto n_head = need("attention.head_count", 1, 1024);
  if (!n_head) return Error(n_head.error());
  auto n_ff = need("feed_forward_length", 1, 1 << 20);
  if (!n_ff) return Error(n_ff.error());
  c.n_embd = *n_embd;
  c.n_layer = *n_layer;
  c.n_head = *n_head;
  c.n_ff = *n_ff;
  c.n_head_kv = int(f.get_int(p + "attention.head_count_kv").value_or(c.n_head));
  if (c.n_head_kv < 1 || c.n_head % c.n_head_kv != 0)
    return Error("attention.head_count_kv " + std::to_string(c.n_head_kv) + " does not divide head_count " +
                 std::to_string(c.n_head));
  if (c.n_embd % c.n_head != 0) return Error("embedding_length is not a multiple of head_count");
  c.head_dim = c.n_embd / c.n_head;
  c.n_rot = int(f.get_int(p + "rope.dimension_count").value_or(c.head_dim));
  if (c.n_rot < 2 || c.n_rot > c.head_dim || c.n_rot % 2 != 0)
    return Error("rope.dimension_count " + std::to_string(c.n_rot) + " must be even and at most the head size " +
                 std::to_string(c.head_dim));
  c.n_ctx_train = int(std::clamp<int64_t>(f.get_int(p + "context_length").value_or(2048), 1, 1 << 20));
  c.rope_theta = float(f.get_float(p + "rope.freq_base").value_or(10000.0));
  c.rms_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  if (!(c.rope_theta > 0) || !(c.rms_eps >= 0)) return Error("invalid rope.freq_base or layer_norm_rms_epsilon");

  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (emb == nullptr) return Error("missing tensor 'token_embd.weight'");
  if (emb->ne.size() != 2 || emb->ne[0] != uint64_t(c.n_embd) || emb->ne[1] > (1u << 24))
    return Error("tensor 'token_embd.weight' has shape " + shape_str(emb->ne) + "; expected [" +
                 std::to_string(c.n_embd) + ", n_vocab]");
  c.n_vocab = int(emb->ne[1]);
  Loader ld{f};
  if (auto t = ld.tensor("token_embd.weight", emb->ne); !t) return Error(t.error());
  m->tok_embd_ = emb;

  auto onorm = ld.vector("output_norm.weight", c.n_embd);
  if (!onorm) return Error(onorm.error());
  m->output_norm_ = std::move(*onorm);
  if (f.find_tensor("output.weight") != nullptr) {
    auto o = ld.matrix("output.weight", c.n_embd, c.n_vocab);
    if (!o) return Error(o.error());
    m->output_ = *o;
  } else {
    m->output_ = WeightMatrix{emb->type, c.n_vocab, c.n_embd, emb->data, row_bytes(emb->type, c.n_embd)};
  }

  const int kv_dim = c.head_dim * c.n_head_kv;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    Layer L;
    auto vec = [&](const char* n, int64_t len, std::vector<float>* out) -> tl::expected<void, std::string> {
      auto v = ld.vector(b + n, len);
      if (!v) return Error(v.error());
      *out = std::move(*v);
      return {};
    };
    auto mat = [&](const char* n, int64_t cols, int64_t rows, WeightMatrix* out) -> tl::expected<void, std::string> {
      auto v = ld.matrix(b + n, cols, rows);
      if (!v) return Error(v.error());
      *out = *v;
      return {};
    };
    for (auto r : {vec("attn_norm.weight", c.n_embd, &L.attn_norm), vec("ffn_norm.weight", c.n_embd, &L.ffn_norm),
                   mat("attn_q.weight", c.n_embd, c.n_embd, &L.wq), mat("attn_k.weight", c.n_embd, kv_dim, &L.wk),
                   mat("attn_v.weight", c.n_embd, kv_dim, &L.wv), mat("attn_output.weight", c.n_embd, c.n_embd, &L.wo),
                   mat("ffn_gate.weight", c.n_embd, c.n_ff, &L.gate), mat("ffn_up.weight", c.n_embd, c.n_ff, &L.up),
                   mat("ffn_down.weight", c.n_ff, c.n_embd, &L.down)}) {
      if (!r) return Error(r.error());
    }
    // Q/K/V biases: qwen2 has them; optional elsewhere.
    if (f.find_tensor(b + "attn_q.bias") != nullptr) {
      for (auto r : {vec("attn_q.bias", c.n_embd, &L.bq), vec("attn_k.bias", kv_dim, &L.bk),
                     vec("attn_v.bias", kv_dim, &L.bv)}) {
        if (!r) return Error(r.error());
      }
    }
    for (const WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down})
      m->weight_bytes_ += uint64_t(w->rows) * w->row_stride;
    m->layers_.push_back(std::move(L));
  }
  m->weight_bytes_ += uint64_t(m->output_.rows) * m->output_.row_stride;
  c.weight_type = m->layers_[0].wq.type;
  m->copy_weights_to_huge_pages();
  return std::shared_ptr<const Model>(std::move(m));
}

void Model::copy_weights_to_huge_pages() {
  std::vector<WeightMatrix*> all;
  for (Layer& L : layers_)
    for (WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) all.push_back(w);
  all.push_back(&output_);  // a tied output gets its own copy; token lookups keep reading the file
  // One buffer for all, each matrix on a cache line: huge pages are not
  // wasted on rounding up many small matrices.
  // A matrix's copy: rearranged by its type's interleaver (repack.h: the same
  // size as in the file), or copied as it is when there is none.
  auto interleaver = [](const WeightMatrix& w) { return can_interleave(w.rows) ? interleaver_for(w.type) : nullptr; };
  constexpr size_t kAlign = 64;
  auto padded = [](size_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  size_t total = 0;
  for (const WeightMatrix* w : all) total += padded(size_t(w->rows) * w->row_stride);
  HugeBuffer buf(total);
  if (buf.data() == nullptr) return;  // out of memory: keep reading the file mapping
  uint8_t* at = buf.data();
  for (WeightMatrix* w : all) {
    const Interleaver interleave = interleaver(*w);
    const size_t bytes = size_t(w->rows) * w->row_stride;
    if (interleave != nullptr) interleave(w->data, w->rows, w->cols, at);
    else std::memcpy(at, w->data, bytes);
    if (w->data != tok_embd_->data) release_pages(w->data, bytes);
    w->data = at;
    w->interleaved = interleave != nullptr;
    at += padded(bytes);
  }
  weights_ = std::move(buf);
}

Session::Session(std::shared_ptr<const Model> model, ThreadPool& pool, int n_ctx, const KernelTable* kernels,
                 KvCache kv)
    : model_(std::move(model)), pool_(pool), kernels_(kernels != nullptr ? *kernels : best_kernels()), kv_(kv) {
  const ModelConfig& c = model_->config();
  n_ctx_ = n_ctx > 0 ? n_ctx : std::min(c.n_ctx_train, kDefaultCtxCap);
  kv_dim_ = c.head_dim * c.n_head_kv;
  n_heads_kv_ = c.n_head_kv;
  head_dim_ = c.head_dim;
  const size_t values = size_t(c.n_layer) * size_t(n_ctx_) * size_t(kv_dim_);
  if (kv_ == KvCache::kF32) {
    k_cache_.assign(values, 0.f);
    v_cache_.assign(values, 0.f);
  } else {
    k_half_.assign(values, 0);
    v_half_.assign(values, 0);
  }
  scores_.assign(size_t(pool_.size()), std::vector<float>(8 * size_t(n_ctx_)));  // attend()'s scratch
}

void Session::truncate(int n) { n_past_ = std::clamp(n, 0, n_past_); }

tl::expected<void, std::string> Session::eval(std::span<const int32_t> tokens, Logits which,
                                              std::vector<float>* logits) {
  const ModelConfig& c = model_->config();
  if (tokens.empty()) return Error("no tokens to evaluate");
  if (int64_t(n_past_) + int64_t(tokens.size()) > n_ctx_)
    return Error(std::to_string(n_past_) + " cached + " + std::to_string(tokens.size()) +
                 " new tokens exceed the context of " + std::to_string(n_ctx_) + " tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= c.n_vocab)
      return Error("token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(c.n_vocab));
  const bool all = which == Logits::kAll;
  const bool hidden = which == Logits::kHidden;
  if (hidden) {
    logits->resize(tokens.size() * size_t(c.n_embd));
    for (size_t done = 0; done < tokens.size();) {
      int n = int(std::min<size_t>(kMaxBatch, tokens.size() - done));
      eval_batch(tokens.data() + done, n, true, logits->data() + done * size_t(c.n_embd), true);
      done += size_t(n);
    }
    return {};
  }
  logits->resize(size_t(all ? tokens.size() : 1) * size_t(c.n_vocab));
  for (size_t done = 0; done < tokens.size();) {
    int n = int(std::min<size_t>(kMaxBatch, tokens.size() - done));
    bool last_chunk = done + size_t(n) == tokens.size();
    float* out = all ? logits->data() + done * size_t(c.n_vocab) : (last_chunk ? logits->data() : nullptr);
    eval_batch(tokens.data() + done, n, all, out);
    done += size_t(n);
  }
  return {};
}

void Session::matmul_from(const float* x, int n, const std::vector<MatmulOut>& outs) {
  // Outputs are fused into one parallel pass when they share a weight type and layout.
  size_t i = 0;
  while (i < outs.size()) {
    size_t j = i + 1;
    while (j < outs.size() && outs[j].w->type == outs[i].w->type && outs[j].w->interleaved == outs[i].w->interleaved)
      ++j;
    const std::vector<MatmulOut> fused(outs.begin() + long(i), outs.begin() + long(j));
    i = j;
    if (n == 1) {
      matvec(fused, x, pool_, kernels_, thread_act_);
      continue;
    }
    const WeightMatrix& w = *fused[0].w;
    size_t need = act_bytes(w.type, w.cols) * size_t(n);
    if (act_.size() < need) act_.resize(need);
    prepare_activations(w.type, x, n, w.cols, act_.data(), pool_, kernels_);
    matmul(fused, act_.data(), n, pool_, kernels_);
  }
}

void Session::attention(int layer, int n) {
  const ModelConfig& c = model_->config();
  const int hd = c.head_dim, group = c.n_head / c.n_head_kv;
  const float scale = 1.f / std::sqrt(float(hd));
  // One item per token and KV head: the query heads of a group read its keys
  // and values together.
  pool_.parallel_for(int64_t(n) * c.n_head_kv, 1, [&](int64_t b, int64_t e, int thread) {
    for (int64_t item = b; item < e; ++item) {
      const int t = int(item / c.n_head_kv), kvh = int(item % c.n_head_kv);
      const int n_keys = n_past_ + t + 1;  // causal: positions 0..pos
      const size_t first = size_t(t) * c.n_embd + size_t(kvh) * group * hd;
      const size_t at = kv_slot(layer, kvh, 0);
      float* scratch = scores_[size_t(thread)].data();
      if (kv_ == KvCache::kF32)
        kernels_.attend(q_.data() + first, group, hd, k_cache_.data() + at, v_cache_.data() + at, size_t(hd), n_keys,
                        scale, scratch, attn_.data() + first);
      else
        kernels_.attend_f16(q_.data() + first, group, hd, k_half_.data() + at, v_half_.data() + at, size_t(hd),
                            n_keys, scale, scratch, attn_.data() + first);
    }
  });
}

void Session::eval_batch(const int32_t* tokens, int n, bool all_logits, float* logits_out, bool hidden) {
  const Model& m = *model_;
  const ModelConfig& c = m.config();
  const int E = c.n_embd, F = c.n_ff, KV = kv_dim_, hd = c.head_dim;
  auto grow = [](std::vector<float>& v, size_t need) {
    if (v.size() < need) v.resize(need);
  };
  grow(x_, size_t(n) * E);
  grow(h_, size_t(n) * E);
  grow(q_, size_t(n) * E);
  grow(attn_, size_t(n) * E);
  grow(k_, size_t(n) * KV);
  grow(v_, size_t(n) * KV);
  grow(gate_, size_t(n) * F);
  grow(up_, size_t(n) * F);
  const int half = c.n_rot / 2;
  grow(rope_cos_, size_t(n) * half);
  grow(rope_sin_, size_t(n) * half);

  const size_t emb_row = row_bytes(m.tok_embd_->type, E);
  for (int t = 0; t < n; ++t) {
    dequantize_row(m.tok_embd_->type, m.tok_embd_->data + size_t(tokens[t]) * emb_row, x_.data() + size_t(t) * E, E);
    const double pos = double(n_past_ + t);
    for (int i = 0; i < half; ++i) {
      double theta = pos * std::pow(double(c.rope_theta), -2.0 * i / c.n_rot);
      rope_cos_[size_t(t) * half + i] = float(std::cos(theta));
      rope_sin_[size_t(t) * half + i] = float(std::sin(theta));
    }
  }
  auto rope = [&](float* v, int n_heads, int t) {
    const float* cs = rope_cos_.data() + size_t(t) * half;
    const float* sn = rope_sin_.data() + size_t(t) * half;
    for (int h = 0; h < n_heads; ++h) {
      float* x = v + size_t(h) * hd;
      for (int i = 0; i < half; ++i) {
        // NORM rotates adjacent pairs; NeoX rotates element i with i + n_rot/2.
        float* a = c.rope == RopeType::kNorm ? x + 2 * i : x + i;
        float* b = c.rope == RopeType::kNorm ? x + 2 * i + 1 : x + i + half;
        const float x0 = *a, x1 = *b;
        *a = x0 * cs[i] - x1 * sn[i];
        *b = x0 * sn[i] + x1 * cs[i];
      }
    }
  };

  for (int l = 0; l < c.n_layer; ++l) {
    const Model::Layer& L = m.layers_[size_t(l)];
    for (int t = 0; t < n; ++t)
      kernels_.rms_norm(&x_[size_t(t) * E], L.attn_norm.data(), E, c.rms_eps, &h_[size_t(t) * E]);
    matmul_from(h_.data(), n, {{&L.wq, q_.data(), size_t(E)}, {&L.wk, k_.data(), size_t(KV)}, {&L.wv, v_.data(), size_t(KV)}});
    for (int t = 0; t < n; ++t) {
      float* q = &q_[size_t(t) * E];
      float* k = &k_[size_t(t) * KV];
      float* v = &v_[size_t(t) * KV];
      if (!L.bq.empty()) {
        for (int i = 0; i < E; ++i) q[i] += L.bq[size_t(i)];
        for (int i = 0; i < KV; ++i) k[i] += L.bk[size_t(i)];
        for (int i = 0; i < KV; ++i) v[i] += L.bv[size_t(i)];
      }
      rope(q, c.n_head, t);
      rope(k, c.n_head_kv, t);
      for (int h = 0; h < c.n_head_kv; ++h) {
        const size_t slot = kv_slot(l, h, n_past_ + t);
        const float* kh = k + size_t(h) * hd;
        const float* vh = v + size_t(h) * hd;
        if (kv_ == KvCache::kF32) {
          std::memcpy(&k_cache_[slot], kh, size_t(hd) * 4);
          std::memcpy(&v_cache_[slot], vh, size_t(hd) * 4);
        } else {
          kernels_.to_f16(kh, &k_half_[slot], hd);
          kernels_.to_f16(vh, &v_half_[slot], hd);
        }
      }
    }
    attention(l, n);
    matmul_from(attn_.data(), n, {{&L.wo, h_.data(), size_t(E)}});
    for (size_t i = 0; i < size_t(n) * E; ++i) x_[i] += h_[i];
    for (int t = 0; t < n; ++t)
      kernels_.rms_norm(&x_[size_t(t) * E], L.ffn_norm.data(), E, c.rms_eps, &h_[size_t(t) * E]);
    matmul_from(h_.data(), n, {{&L.gate, gate_.data(), size_t(F)}, {&L.up, up_.data(), size_t(F)}});
    kernels_.swiglu(gate_.data(), up_.data(), gate_.data(), int64_t(n) * F);
    matmul_from(gate_.data(), n, {{&L.down, h_.data(), size_t(E)}});
    for (size_t i = 0; i < size_t(n) * E; ++i) x_[i] += h_[i];
  }
  n_past_ += n;
  if (logits_out == nullptr) return;
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  if (hidden) {
    for (int t = 0; t < n; ++t)
      kernels_.rms_norm(&x_[size_t(t) * E], m.output_norm_.data(), E, c.rms_eps, &logits_out[size_t(t) * E]);
    return;
  }
  for (int t = first; t < n; ++t)
    kernels_.rms_norm(&x_[size_t(t) * E], m.output_norm_.data(), E, c.rms_eps, &h_[size_t(t - first) * E]);
  matmul_from(h_.data(), rows, {{&m.output_, logits_out, size_t(c.n_vocab)}});
}

}  // namespace aifn::engine
