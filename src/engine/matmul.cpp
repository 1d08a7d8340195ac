#include "engine/matmul.h"

#include <algorithm>
#include <cstring>

#include "engine/quant.h"

namespace aifn::engine {
namespace {

constexpr int64_t kColBlock = 8;  // activation columns kept in L1 while rows stream

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
    for (int64_t t = 0; t < n_tokens; ++t) prepare_one(weight_type, x + t * cols, cols, out + size_t(t) * stride, kernels);
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
  // Row chunks over the concatenation of all outputs' rows; a chunk never spans
  // two outputs. Several tokens: small fixed blocks so weights are reused from
  // cache. One token: guided sizes, each a share of what is left, so threads
  // first stream long contiguous runs (prefetch and DRAM pages work best) and
  // the last chunks are small (a thread that was descheduled holds up little).
  struct Chunk {
    size_t out;
    int64_t r0;
    int nr;
  };
  std::vector<Chunk> chunks;
  int64_t total_rows = 0;
  for (const MatmulOut& o : outs) total_rows += o.w->rows;
  const int64_t parts = 2 * int64_t(pool.size());
  int64_t left = total_rows;
  for (size_t o = 0; o < outs.size(); ++o) {
    for (int64_t r0 = 0; r0 < outs[o].w->rows;) {
      int64_t size = n_tokens == 1 ? std::max<int64_t>(16, (left / parts + 15) / 16 * 16) : 32;
      size = std::min(size, outs[o].w->rows - r0);
      chunks.push_back({o, r0, int(size)});
      r0 += size;
      left -= size;
    }
  }
  pool.parallel_for(int64_t(chunks.size()), 1, [&](int64_t cb, int64_t ce, int) {
    for (int64_t c = cb; c < ce; ++c) {
      const Chunk& ch = chunks[size_t(c)];
      const MatmulOut& out = outs[ch.out];
      const WeightMatrix& w = *out.w;
      const uint8_t* wr = w.data + size_t(ch.r0) * w.row_stride;
      for (int64_t t = 0; t < n_tokens; t += kColBlock) {
        int nc = int(std::min(kColBlock, n_tokens - t));
        tile(wr, w.row_stride, ch.nr, act + size_t(t) * a_stride, a_stride, nc, w.cols,
             out.y + size_t(t) * out.ldy + size_t(ch.r0), out.ldy);
      }
    }
  });
}

}  // namespace aifn::engine
