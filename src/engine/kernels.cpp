#include "engine/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "engine/quant.h"
#include "engine/repack.h"

namespace aifn::engine {
namespace {

template <typename WBlock, typename ABlock, float (*Dot)(const WBlock*, const ABlock*, int64_t)>
void tile_blocks(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  for (int c = 0; c < nc; ++c)
    for (int r = 0; r < nr; ++r)
      y[size_t(c) * ldy + size_t(r)] = Dot(reinterpret_cast<const WBlock*>(w + size_t(r) * w_stride),
                                           reinterpret_cast<const ABlock*>(a + size_t(c) * a_stride), k);
}

// The scalar interleaved (repack.h) tiles, one row at a time: BlockDot(unit,
// lane, x) is one block of row `lane` of a group times one activation block,
// summed as the type's dot_*_scalar does.
template <typename ABlock, int kBlockWeights, size_t kUnitBytes, float (*BlockDot)(const uint8_t*, int, const ABlock&)>
void tile_x8_scalar(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                    float* y, size_t ldy) {
  const int64_t nb = k / kBlockWeights;
  for (int c = 0; c < nc; ++c) {
    const ABlock* x = reinterpret_cast<const ABlock*>(a + size_t(c) * a_stride);
    for (int r = 0; r < nr; ++r) {
      const uint8_t* group = w + size_t(r / kInterleaveRows) * kInterleaveRows * w_stride;
      float s = 0;
      for (int64_t b = 0; b < nb; ++b) s += BlockDot(group + size_t(b) * kUnitBytes, r % kInterleaveRows, x[b]);
      y[size_t(c) * ldy + size_t(r)] = s;
    }
  }
}

float row_scale(const uint8_t* unit, int lane) {
  uint16_t d;
  std::memcpy(&d, unit + 2 * lane, 2);
  return fp16_to_fp32(d);
}

// Weight j (0..31) of row `lane`'s block in an interleaved Q4_0 / Q8_0 unit.
int q4_0x8_weight(const uint8_t* unit, int lane, int j) {
  const uint8_t q = unit[16 + 32 * ((j % 16) / 4) + 4 * lane + j % 4];
  return (j < 16 ? q & 0xF : q >> 4) - 8;
}
int q8_0x8_weight(const uint8_t* unit, int lane, int j) { return int(unit[16 + 32 * (j / 4) + 4 * lane + j % 4]) - 128; }

template <int (*Weight)(const uint8_t*, int, int)>
float block_dot_32(const uint8_t* unit, int lane, const BlockQ8_0& x) {
  int sum = 0;
  for (int j = 0; j < kQK; ++j) sum += Weight(unit, lane, j) * int(x.qs[j]);
  return row_scale(unit, lane) * fp16_to_fp32(x.d) * float(sum);
}

// Q4_K, and Q5_K with its fifth bits (kFifthBit).
template <bool kFifthBit>
float block_dot_q45_k(const uint8_t* unit, int lane, const BlockQ8K& x) {
  uint8_t packed[12];  // the row's scales and mins as the GGUF block has them
  for (int w = 0; w < 3; ++w) std::memcpy(packed + 4 * w, unit + kQ45_KxScales + 32 * w + 4 * lane, 4);
  int sumi = 0, summ = 0;
  for (int sub = 0; sub < 8; ++sub) {
    uint8_t scale, min;
    k_scale_min(sub, packed, &scale, &min);
    const int j = sub / 2, shift = 4 * (sub % 2);
    int dot = 0;
    for (int l = 0; l < 32; ++l) {
      const size_t nibbles = kFifthBit ? kQ5_KxNibbles : kQ4_KxNibbles;
      const uint8_t q = unit[nibbles + 32 * (8 * j + l / 4) + 4 * lane + l % 4];
      int w = (q >> shift) & 0xF;
      if (kFifthBit) w |= ((unit[kQ5_KxFifthBits + 32 * (l / 4) + 4 * lane + l % 4] >> sub) & 1) << 4;
      dot += w * x.qs[32 * sub + l];
    }
    sumi += scale * dot;
    summ += min * (x.bsums[2 * sub] + x.bsums[2 * sub + 1]);
  }
  return x.d * (row_scale(unit, lane) * float(sumi) - row_scale(unit + 16, lane) * float(summ));
}

float block_dot_q6_k(const uint8_t* unit, int lane, const BlockQ8K& x) {
  int sumi = 0;
  for (int n = 0; n < 2; ++n)
    for (int quarter = 0; quarter < 4; ++quarter) {
      int sub_sums[2] = {0, 0};
      for (int l = 0; l < 32; ++l) {
        const uint8_t* chunks = unit + 144 + 96 * (8 * n + l / 4) + 4 * lane + l % 4;
        const int low = quarter & 1 ? chunks[32] : chunks[0];
        const int q = ((quarter >= 2 ? low >> 4 : low & 0xF) | (((chunks[64] >> (2 * quarter)) & 3) << 4)) - 32;
        sub_sums[l / 16] += q * x.qs[128 * n + 32 * quarter + l];
      }
      for (int j = 0; j < 2; ++j) {
        const int sub = 8 * n + 2 * quarter + j;
        sumi += int(int8_t(unit[16 + 16 * (sub / 2) + 2 * lane + j])) * sub_sums[j];
      }
    }
  return x.d * row_scale(unit, lane) * float(sumi);
}

void weighted_sum_scalar(const float* weights, int n, const float* v, size_t v_stride, int dim, float* out) {
  for (int d = 0; d < dim; ++d) out[d] = 0.f;
  for (int j = 0; j < n; ++j) {
    const float w = weights[j];
    const float* vj = v + size_t(j) * v_stride;
    for (int d = 0; d < dim; ++d) out[d] += w * vj[d];
  }
}

void prepare_q8_0_scalar(const float* x, int64_t n, uint8_t* out) {
  const int64_t nb = n / kQK;
  BlockQ8_0* blocks = reinterpret_cast<BlockQ8_0*>(out);
  quantize_row_q8_0_act(x, blocks, n);
  float* scales = reinterpret_cast<float*>(out + q8_0_scales_offset(nb));
  float* corr = scales + nb;
  for (int64_t b = 0; b < nb; ++b) {
    scales[b] = fp16_to_fp32(blocks[b].d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += blocks[b].qs[j];
    corr[b] = 8.f * scales[b] * float(sum);
  }
}

void prepare_q8_k_scalar(const float* x, int64_t n, uint8_t* out) {
  quantize_row_q8_k(x, reinterpret_cast<BlockQ8K*>(out), n);
}

void swiglu_scalar(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void softmax_scalar(float* s, int n, float scale) {
  float mx = -INFINITY;
  for (int j = 0; j < n; ++j) mx = std::max(mx, s[j] * scale);
  double sum = 0;
  for (int j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] * scale - mx);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  for (int j = 0; j < n; ++j) s[j] *= inv;
}

void rms_norm_scalar(const float* x, const float* w, int n, float eps, float* out) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  const float scale = 1.f / std::sqrt(float(sum / n) + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void attend_scalar(const float* q, int heads, int hd, const float* k, const float* v, size_t kv_stride, int n,
                   float scale, float* scratch, float* out) {
  for (int h = 0; h < heads; ++h) {
    for (int j = 0; j < n; ++j) scratch[j] = dot_f32_scalar(k + size_t(j) * kv_stride, q + size_t(h) * hd, hd);
    softmax_scalar(scratch, n, scale);
    weighted_sum_scalar(scratch, n, v, kv_stride, hd, out + size_t(h) * hd);
  }
}

void to_f16_scalar(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

// attend_scalar over an F16 cache: the KV head's keys and values widened first.
void attend_f16_scalar(const float* q, int heads, int hd, const uint16_t* k, const uint16_t* v, size_t kv_stride, int n,
                       float scale, float* scratch, float* out) {
  std::vector<float> kf(size_t(n) * size_t(hd)), vf(kf.size());
  fp16_rows_to_fp32(k, kv_stride, n, hd, kf.data());
  fp16_rows_to_fp32(v, kv_stride, n, hd, vf.data());
  attend_scalar(q, heads, hd, kf.data(), vf.data(), size_t(hd), n, scale, scratch, out);
}

}  // namespace

TileFn KernelTable::for_type(uint32_t t) const {
  switch (GgmlType(t)) {
    case GgmlType::F32: return f32;
    case GgmlType::F16: return f16;
    case GgmlType::BF16: return bf16;
    case GgmlType::Q8_0: return q8_0;
    case GgmlType::Q4_0: return q4_0;
    case GgmlType::Q4_K: return q4_k;
    case GgmlType::Q5_K: return q5_k;
    case GgmlType::Q6_K: return q6_k;
    default: return nullptr;
  }
}

TileFn KernelTable::for_layout(uint32_t t, bool interleaved) const {
  if (!interleaved) return for_type(t);
  if (GgmlType(t) == GgmlType::Q4_0) return q4_0x8;
  if (GgmlType(t) == GgmlType::Q8_0) return q8_0x8;
  if (GgmlType(t) == GgmlType::Q4_K) return q4_kx8;
  if (GgmlType(t) == GgmlType::Q5_K) return q5_kx8;
  if (GgmlType(t) == GgmlType::Q6_K) return q6_kx8;
  return nullptr;
}

const KernelTable& scalar_kernels() {
  static const KernelTable table{
      "scalar",
      tile_blocks<float, float, dot_f32_scalar>,
      tile_blocks<uint16_t, float, dot_f16_scalar>,
      tile_blocks<uint16_t, float, dot_bf16_scalar>,
      tile_blocks<BlockQ8_0, BlockQ8_0, dot_q8_0_scalar>,
      tile_blocks<BlockQ4_0, BlockQ8_0, dot_q4_0_scalar>,
      tile_blocks<BlockQ4K, BlockQ8K, dot_q4_k_scalar>,
      tile_blocks<BlockQ5K, BlockQ8K, dot_q5_k_scalar>,
      tile_blocks<BlockQ6K, BlockQ8K, dot_q6_k_scalar>,
      tile_x8_scalar<BlockQ8_0, kQK, kQ4_0x8UnitBytes, block_dot_32<q4_0x8_weight>>,
      tile_x8_scalar<BlockQ8_0, kQK, kQ8_0x8UnitBytes, block_dot_32<q8_0x8_weight>>,
      tile_x8_scalar<BlockQ8K, kQKK, kQ4_Kx8UnitBytes, block_dot_q45_k<false>>,
      tile_x8_scalar<BlockQ8K, kQKK, kQ5_Kx8UnitBytes, block_dot_q45_k<true>>,
      tile_x8_scalar<BlockQ8K, kQKK, kQ6_Kx8UnitBytes, block_dot_q6_k>,
      weighted_sum_scalar,
      prepare_q8_0_scalar,
      prepare_q8_k_scalar,
      swiglu_scalar,
      softmax_scalar,
      rms_norm_scalar,
      attend_scalar,
      attend_f16_scalar,
      to_f16_scalar,
  };
  return table;
}

namespace detail {
const KernelTable& avx2_table();  // kernels_avx2.cpp; call only on an AVX2+FMA+F16C CPU
const KernelTable& vnni_table(int decode_streams);  // kernels_vnni.cpp; call only where avx2_table() may be, with AVX-512 F, BW, VL and VNNI
}

const KernelTable* avx2_kernels() {
#if defined(__x86_64__) && defined(AIFN_ENGINE_HAVE_AVX2)
  // F16C by cpuid (leaf 1, ECX bit 29): clang 14's __builtin_cpu_supports
  // does not know "f16c". AVX2 implies the OS saves the AVX state.
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
  }();
  return ok ? &detail::avx2_table() : nullptr;
#else
  return nullptr;
#endif
}

int decode_streams() {
  static const int n = [] {
    const char* env = std::getenv("AIFN_ENGINE_STREAMS");
    if (env != nullptr && std::string_view(env) == "1") return 1;
    if (env != nullptr && std::string_view(env) == "4") return kSeveralStreams;
#if defined(__x86_64__)
    return __builtin_cpu_is("intel") ? kSeveralStreams : 1;
#else
    return 1;
#endif
  }();
  return n;
}

const KernelTable* vnni_kernels(int decode_streams) {
#if defined(__x86_64__) && defined(AIFN_ENGINE_HAVE_AVX2)
  // __builtin_cpu_supports reports AVX-512 features only when the OS saves
  // the AVX-512 state (XCR0), which EVEX-encoded 256-bit code needs too.
  // The prompt kernels use 512-bit registers (AVX-512 F and BW) too.
  static const bool ok = avx2_kernels() != nullptr && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512vnni");
  return ok ? &detail::vnni_table(decode_streams) : nullptr;
#else
  return nullptr;
#endif
}

const KernelTable& best_kernels() {
  static const KernelTable* best = [] {
    const char* cap = std::getenv("AIFN_ENGINE_KERNELS");
    const std::string_view limit = cap != nullptr ? cap : "";
    if (limit == "scalar") return &scalar_kernels();
    const KernelTable* t = limit == "avx2" ? nullptr : vnni_kernels(decode_streams());
    if (t == nullptr) t = avx2_kernels();
    return t != nullptr ? t : &scalar_kernels();
  }();
  return *best;
}

}  // namespace aifn::engine
