// Dot-product kernels of weight rows against prepared activations, in tiles
// (a few weight rows x a few activation columns at a time), with a portable
// scalar path and an AVX2/FMA/F16C path chosen once at run time.
// Called by matmul.cpp. Stateless: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aifn::engine {

// Computes y[c * ldy + r] = dot(weight row r, activation column c) for r < nr,
// c < nc. w points at row 0 (rows are w_stride bytes apart), a at column 0
// (columns a_stride bytes apart), k is the row length in elements. The
// activation format is the weight type's act_type() (see matmul.h).
using TileFn = void (*)(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc,
                        int64_t k, float* y, size_t ldy);

// A prepared Q8_0 activation column (for Q8_0/Q4_0 weights) is nb BlockQ8_0
// followed, at this 4-byte aligned offset, by the nb block scales as floats
// (so the SIMD kernels need not convert f16 scales per block), then nb floats
// 8 * scale * sum(q): the Q4_0 kernels multiply unsigned nibbles and subtract
// this instead of centring every weight (the VNNI Q8_0 kernels, whose weights
// are stored + 128, subtract 16 times it).
inline size_t q8_0_scales_offset(int64_t nb) { return (size_t(nb) * 34 + 3) & ~size_t(3); }
inline size_t q8_0_act_bytes(int64_t nb) { return q8_0_scales_offset(nb) + size_t(nb) * 8; }

// Attention's value mix: out[d] = sum over j < n of weights[j] * v[j * v_stride + d],
// for d < dim (v_stride in floats).
using WeightedSumFn = void (*)(const float* weights, int n, const float* v, size_t v_stride, int dim, float* out);

// Attention of `heads` query heads that share one KV head (grouped-query
// attention), for head h with q_h = q + h * hd and out_h = out + h * hd:
//   p = softmax(scale * (q_h . k_j) for j < n);  out_h = sum over j of p_j v_j
// k and v point at position 0 of that KV head, rows kv_stride floats apart;
// scratch holds at least 8 * n floats. The SIMD version reads each key and
// value once for up to 8 heads.
using AttendFn = void (*)(const float* q, int heads, int hd, const float* k, const float* v, size_t kv_stride, int n,
                          float scale, float* scratch, float* out);
// The same over an F16 KV cache (IEEE half precision, kv_stride in halves).
using AttendF16Fn = void (*)(const float* q, int heads, int hd, const uint16_t* k, const uint16_t* v, size_t kv_stride,
                             int n, float scale, float* scratch, float* out);

// Writes one prepared activation column (the format above for Q8_0, a
// BlockQ8K row for Q8_K) from n floats. Every table's output is bit for bit
// the scalar one's: quantised activations must not depend on the CPU.
using PrepareFn = void (*)(const float* x, int64_t n, uint8_t* out);

// The elementwise steps between matmuls. One decode step calls them on a
// single thread while the others wait, so they run as vectors too.
// out[i] = silu(gate[i]) * up[i]  (out may be gate)
using SwigluFn = void (*)(const float* gate, const float* up, float* out, int64_t n);
// s[0..n) = softmax(s * scale), in place.
using SoftmaxFn = void (*)(float* s, int n, float scale);
// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]
using RmsNormFn = void (*)(const float* x, const float* w, int n, float eps, float* out);

struct KernelTable {
  const char* name;  // "scalar", "avx2" or "avx512vnni"
  TileFn f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k;
  // Weights interleaved by interleave_q4_0() / _q8_0() / _q4_k() / _q5_k() / _q6_k()
  // (repack.h): w points at a group of 8 rows, w_stride is a row's bytes (the
  // same as in the GGUF), nr % 8 == 0.
  TileFn q4_0x8, q8_0x8, q4_kx8, q5_kx8, q6_kx8;
  WeightedSumFn weighted_sum;
  PrepareFn prepare_q8_0, prepare_q8_k;
  SwigluFn swiglu;
  SoftmaxFn softmax;
  RmsNormFn rms_norm;
  AttendFn attend;
  AttendF16Fn attend_f16;
  // out[i] = x[i] rounded to the nearest half (ties to even), as fp32_to_fp16:
  // the keys and values going into an F16 KV cache.
  void (*to_f16)(const float* x, uint16_t* out, int64_t n);
  TileFn for_type(uint32_t ggml_type) const;  // nullptr when unsupported
  TileFn for_layout(uint32_t ggml_type, bool interleaved) const;  // for_type, or an x8 kernel
};

const KernelTable& scalar_kernels();
// The AVX2 table, or nullptr when the CPU (or the build) lacks AVX2/FMA/F16C.
const KernelTable* avx2_kernels();
// Memory streams per thread for decode with several streams: Q4_0 and Q8_0
// read four runs of rows side by side, Q4_K three, Q5_K and Q6_K two
// (kernels_vnni.cpp).
inline constexpr int kSeveralStreams = 4;
// The AVX2 table with the interleaved kernels done by AVX-512 VNNI
// (kernels_vnni.cpp: decode on 256-bit registers, several columns on 512-bit
// ones), or nullptr when the CPU (or the build) lacks AVX-512 F, BW, VL or
// VNNI. With decode_streams above 1 (kSeveralStreams), decode reads each
// call's rows as several runs side by side.
const KernelTable* vnni_kernels(int decode_streams = 1);
// Memory streams per thread for decode with the VNNI kernels:
// kSeveralStreams on Intel CPUs (one stream per core reads their memory well
// below the triad: 23-41 % more generation speed with two, 3-10 % more again
// with three or four), 1 elsewhere (on the AMD EPYC host an earlier kernel
// taking two groups at once streamed a third slower from memory).
// AIFN_ENGINE_STREAMS=1 or =4 in the environment overrides.
int decode_streams();
// The best table for this CPU. AIFN_ENGINE_KERNELS=avx2 or =scalar in the
// environment caps the choice (to compare, or to rule a kernel out).
const KernelTable& best_kernels();

}  // namespace aifn::engine
