// Matrix products of GGUF weight matrices with activations: y = W x for one or
// many tokens. Activations are first converted to the format the weight type's
// kernels take (F32, F16-rounded F32, Q8_0 or Q8_K, as llama.cpp does), then
// rows are split over the thread pool; for several tokens, columns are blocked
// so a block of activations stays in L1 while weight rows stream past it.
// Called by model.cpp. Stateless apart from the caller's buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/kernels.h"
#include "engine/thread_pool.h"

namespace aifn::engine {

// A row-major weight matrix: `rows` rows of `cols` elements of ggml `type`.
struct WeightMatrix {
  uint32_t type = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;  // bytes
  bool interleaved = false;  // Q4_0 / Q8_0 / Q4_K / Q6_K rearranged as repack.h says (row_stride is then its row's bytes)
};

// Bytes of one prepared activation column for weights of this type.
size_t act_bytes(uint32_t weight_type, int64_t cols);

// Converts n_tokens rows of cols floats (x, row-major) into out (n_tokens *
// act_bytes(...) bytes). Runs on the pool when there are many tokens.
void prepare_activations(uint32_t weight_type, const float* x, int64_t n_tokens, int64_t cols, uint8_t* out,
                         ThreadPool& pool, const KernelTable& kernels);

// One output of a fused product: y[t * ldy + r] = dot(W row r, activation t).
struct MatmulOut {
  const WeightMatrix* w;
  float* y;
  size_t ldy;
};

// Computes every output of `outs` (all with the same type and cols, sharing the
// prepared activations `act`) in one parallel pass. For a batch of tokens.
void matmul(const std::vector<MatmulOut>& outs, const uint8_t* act, int64_t n_tokens, ThreadPool& pool,
            const KernelTable& kernels);

// The same for one token (decode), from the floats x: each pool thread
// prepares its own copy of the activation in thread_act[thread] (grown as
// needed) and streams one contiguous share of the outputs' rows.
//  - Own copies, made inside the parallel pass: quantising once on the
//    calling thread between passes measured 5-14 us per matmul in a decode
//    step on this host (0.7-1.9 us in isolation); +1-2% generation.
//  - One share per thread instead of shrinking chunks: every chunk start is a
//    new stream for the hardware prefetchers (+10% generation in the
//    fast-memory minutes, Q4_0 0.74 -> 0.82 of the bound). A late worker
//    costs time, never a lost share: shares are claimed like any chunk.
void matvec(const std::vector<MatmulOut>& outs, const float* x, ThreadPool& pool, const KernelTable& kernels,
            std::vector<std::vector<uint8_t>>& thread_act);

}  // namespace aifn::engine
