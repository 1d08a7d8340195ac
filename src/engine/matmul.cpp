#include "engine/matmul.h"

#include <algorithm>
#include <cstring>

#include "engine/quant.h"

namespace aifn::engine {
namespace {

constexpr int64_t kColBlock = 8;  // activation columns kept in L1 while rows stream

// Calls fn(out, r0, nr) for each output's part of rows [g0, g1) of the row
// space that concatenates all outputs' rows.
template <typename Fn>
void for_each_piece(const std::vector<MatmulOut>& outs, int64_t g0, int64_t g1, Fn&& fn) {
  int64_t base = 0;
  for (const MatmulOut& o : outs) {
    const int64_t lo = std::max(g0, base), hi = std::min(g1, base + o.w->rows);
    if (lo < hi) fn(o, lo - base, hi - lo);
    base += o.w->rows;
  }
}

int64_t total_rows(const std::vector<MatmulOut>& outs) {
  int64_t n = 0;
  for (const MatmulOut& o : outs) n += o.w->rows;
  return n;
}

// Rows per share when `total` rows are cut into `shares` (a multiple of 16,
// so interleaved groups of 8 are never split).
int64_t share_rows(int64_t total, int shares) { return std::max<int64_t>(16, (total / shares + 15) / 16 * 16); }

}  // namespace

size_t act_bytes(uint32_t weight_type, int64_t cols) {
  switch (GgmlType(weight_type)) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0: return q8_0_act_bytes(cols / kQK);
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return size_t(cols / kQKK) * sizeof(BlockQ8K);
    default: return size_t(cols) * sizeof(float);
  }
}

static void prepare_one(uint32_t wt, const float* x, int64_t cols, uint8_t* out, const KernelTable& kernels) {
  switch (GgmlType(wt)) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0: kernels.prepare_q8_0(x, cols, out); return;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: kernels.prepare_q8_k(x, cols, out); return;
    case GgmlType::F16: {
      // llama.cpp rounds the activation to F16 before an F16 dot product.
      float* o = reinterpret_cast<float*>(out);
      for (int64_t i = 0; i < cols; ++i) o[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
      return;
    }
    case GgmlType::BF16: {
      float* o = reinterpret_cast<float*>(out);
      for (int64_t i = 0; i < cols; ++i) o[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
      return;
    }
    default: std::memcpy(out, x, size_t(cols) * sizeof(float)); return;
  }
}

void prepare_activations(uint32_t weight_type, const float* x, int64_t n_tokens, int64_t cols, uint8_t* out,
                         ThreadPool& pool, const KernelTable& kernels) {
  const size_t stride = act_bytes(weight_type, cols);
  if (n_tokens < 4) {
    for (int64_t t = 0; t < n_tokens; ++t)
      prepare_one(weight_type, x + t * cols, cols, out + size_t(t) * stride, kernels);
    return;
  }
  pool.parallel_for(n_tokens, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) prepare_one(weight_type, x + t * cols, cols, out + size_t(t) * stride, kernels);
  });
}

void matmul(const std::vector<MatmulOut>& outs, const uint8_t* act, int64_t n_tokens, ThreadPool& pool,
            const KernelTable& kernels) {
  if (outs.empty() || n_tokens <= 0) return;
  const WeightMatrix& w0 = *outs[0].w;
  TileFn tile = kernels.for_layout(w0.type, w0.interleaved);
  const size_t a_stride = act_bytes(w0.type, w0.cols);
  // Blocks of 32 rows of the row space, handed out dynamically; each block's
  // weights stay in cache while all the token columns pass.
  constexpr int64_t kBlock = 32;
  const int64_t total = total_rows(outs);
  pool.parallel_for((total + kBlock - 1) / kBlock, 1, [&](int64_t cb, int64_t ce, int) {
    for_each_piece(outs, cb * kBlock, ce * kBlock, [&](const MatmulOut& o, int64_t r0, int64_t nr) {
      const WeightMatrix& w = *o.w;
      for (int64_t t = 0; t < n_tokens; t += kColBlock)
        tile(w.data + size_t(r0) * w.row_stride, w.row_stride, int(nr), act + size_t(t) * a_stride, a_stride,
             int(std::min(kColBlock, n_tokens - t)), w.cols, o.y + size_t(t) * o.ldy + size_t(r0), o.ldy);
    });
  });
}

void matvec(const std::vector<MatmulOut>& outs, const float* x, ThreadPool& pool, const KernelTable& kernels,
            std::vector<std::vector<uint8_t>>& thread_act) {
  if (outs.empty()) return;
  const WeightMatrix& w0 = *outs[0].w;
  TileFn tile = kernels.for_layout(w0.type, w0.interleaved);
  const size_t bytes = act_bytes(w0.type, w0.cols);
  const int T = pool.size();
  if (thread_act.size() < size_t(T)) thread_act.resize(size_t(T));
  for (std::vector<uint8_t>& a : thread_act)
    if (a.size() < bytes) a.resize(bytes);
  const int64_t share = share_rows(total_rows(outs), T);
  pool.parallel_for(T, 1, [&](int64_t s, int64_t, int thread) {
    uint8_t* act = thread_act[size_t(thread)].data();
    prepare_one(w0.type, x, w0.cols, act, kernels);
    for_each_piece(outs, s * share, (s + 1) * share, [&](const MatmulOut& o, int64_t r0, int64_t nr) {
      const WeightMatrix& w = *o.w;
      tile(w.data + size_t(r0) * w.row_stride, w.row_stride, int(nr), act, bytes, 1, w.cols, o.y + size_t(r0), o.ldy);
    });
  });
}

}  // namespace aifn::engine
