


// AVX2 + FMA + F16C kernels. This file alone is compiled with -mavx2 -mfma
// -mf16c; kernels.cpp calls into it only after checking the CPU.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "engine/kernels.h"
#include "engine/kernels_x8.h"
#include "engine/quant.h"
#include "engine/repack.h"

namespace aifn::engine::detail {
namespace {

inline float hsum128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hsum(__m256 v) { return hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), v); }

// Rounds half to even, as std::nearbyint in the default rounding mode.
inline __m256i round_to_i32(__m256 v) {
  return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// e^x to about 2 ulp for x in [-87, 88]; x outside is clamped there (e^-87 ~
// 1.6e-38, e^88 ~ 1.7e38), which silu and softmax absorb. x = n ln2 + r with
// |r| <= ln2 / 2 (ln2 in two parts so n ln2 is exact), e^r by its Taylor
// series to r^6 (truncation < 2e-7), 2^n put straight into the exponent bits.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720);
  for (float c : {1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// 32 nibbles of a Q4_0 block as bytes 0..15, value j in byte j.
inline __m256i q4_nibbles(const uint8_t* qs) {
  __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// Sum of products of signed bytes x and y as 8 int32 lanes (maddubs needs an
// unsigned left operand: move x's sign onto y).
inline __m256i dot_i8(__m256i ax, __m256i x, __m256i y) {
  __m256i sy = _mm256_sign_epi8(y, x);
  __m256i p = _mm256_maddubs_epi16(ax, sy);
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// ---- float types ----

void tile_f32(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
              float* y, size_t ldy) {
  for (int r = 0; r < nr; ++r) {
    const float* wr = reinterpret_cast<const float*>(w + size_t(r) * w_stride);
    for (int c = 0; c < nc; ++c) {
      const float* x = reinterpret_cast<const float*>(a + size_t(c) * a_stride);
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= k; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
      }
      float s = hsum(_mm256_add_ps(acc0, acc1));
      for (; i < k; ++i) s += wr[i] * x[i];
      y[size_t(c) * ldy + size_t(r)] = s;
    }
  }
}

template <bool kBf16>
inline __m256 load8_half(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(h);
  }
}

template <bool kBf16>
void tile_half(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
               float* y, size_t ldy) {
  for (int r = 0; r < nr; ++r) {
    const uint16_t* wr = reinterpret_cast<const uint16_t*>(w + size_t(r) * w_stride);
    for (int c = 0; c < nc; ++c) {
      const float* x = reinterpret_cast<const float*>(a + size_t(c) * a_stride);
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= k; i += 16) {
        acc0 = _mm256_fmadd_ps(load8_half<kBf16>(wr + i), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(load8_half<kBf16>(wr + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
      }
      float s = hsum(_mm256_add_ps(acc0, acc1));
      for (; i < k; ++i) s += (kBf16 ? bf16_to_fp32(wr[i]) : half(wr[i])) * x[i];
      y[size_t(c) * ldy + size_t(r)] = s;
    }
  }
}

// ---- Q8_0 / Q4_0 weights x Q8_0 activations ----

// Signed weight bytes of block b of a Q4_0 (values - 8) or Q8_0 row, and its scale.
template <bool kQ4>
inline __m256i weight_bytes(const uint8_t* wrow, int64_t b, float* d) {
  if constexpr (kQ4) {
    const BlockQ4_0* wb = reinterpret_cast<const BlockQ4_0*>(wrow) + b;
    *d = half(wb->d);
    return _mm256_sub_epi8(q4_nibbles(wb->qs), _mm256_set1_epi8(8));
  } else {
    const BlockQ8_0* wb = reinterpret_cast<const BlockQ8_0*>(wrow) + b;
    *d = half(wb->d);
    return load256(wb->qs);
  }
}

constexpr int kQ4Bytes = 18, kQ8Bytes = 34;

// Token generation streams every weight from DRAM once; on 4 KiB pages (weights
// still in the file mapping) the hardware prefetcher stops at each page, so
// fetch this far ahead in software (measured: 2 KiB ahead nearly doubled
// single-thread Q4_0 throughput over 288 bytes, before weights moved to huge pages).
constexpr int kPrefetchAhead = 2048;
inline void prefetch(const uint8_t* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchAhead, _MM_HINT_T0); }

// Four blocks' f16 scales as floats.
inline __m128 scales4(const uint8_t* wrow, int64_t b, int block_bytes) {
  uint16_t h[4];
  for (int j = 0; j < 4; ++j) std::memcpy(&h[j], wrow + (b + j) * block_bytes, 2);
  return _mm_cvtph_ps(_mm_setr_epi16(short(h[0]), short(h[1]), short(h[2]), short(h[3]), 0, 0, 0, 0));
}

// One weight row x one column (token generation). Four blocks at a time: their
// int sums are folded with hadd into one vector (lanes j and j+4 = block j),
// so one convert and one FMA with four block scales serve four blocks. Q4_0
// multiplies the unsigned nibbles (0..15) and subtracts 8 * sum(y) per block
// from the precomputed column corrections. The four blocks are written out by
// hand: as a loop over an array GCC -O2 kept the products on the stack.
template <bool kQ4>
inline __m256i block_products(const uint8_t* wrow, int64_t b, const BlockQ8_0* ab) {
  if constexpr (kQ4) {
    // Both nibble halves from one 16-byte broadcast: the upper lane shifted by 4.
    const BlockQ4_0* wb = reinterpret_cast<const BlockQ4_0*>(wrow) + b;
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb->qs)));
    const __m256i nib = _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
    return _mm256_maddubs_epi16(nib, load256(ab[b].qs));  // |pair| <= 2*15*127
  } else {
    const __m256i x = load256(reinterpret_cast<const BlockQ8_0*>(wrow)[b].qs);
    return dot_i8(_mm256_sign_epi8(x, x), x, load256(ab[b].qs));
  }
}

template <bool kQ4>
float row_dot(const uint8_t* wrow, const uint8_t* a, int64_t nb) {
  const BlockQ8_0* ab = reinterpret_cast<const BlockQ8_0*>(a);
  const float* as = reinterpret_cast<const float*>(a + q8_0_scales_offset(nb));
  const float* cs = as + nb;
  constexpr int kBytes = kQ4 ? kQ4Bytes : kQ8Bytes;
  __m256 acc = _mm256_setzero_ps();
  __m128 corr = _mm_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    prefetch(wrow + b * kBytes);
    prefetch(wrow + b * kBytes + 64);
    if constexpr (!kQ4) prefetch(wrow + b * kBytes + 128);
    const __m256i p0 = block_products<kQ4>(wrow, b, ab), p1 = block_products<kQ4>(wrow, b + 1, ab);
    const __m256i p2 = block_products<kQ4>(wrow, b + 2, ab), p3 = block_products<kQ4>(wrow, b + 3, ab);
    __m256i folded;
    if constexpr (kQ4) {
      // Each int16 lane below sums 8 products: <= 15240, no overflow.
      folded = _mm256_madd_epi16(_mm256_hadd_epi16(_mm256_hadd_epi16(p0, p1), _mm256_hadd_epi16(p2, p3)),
                                 _mm256_set1_epi16(1));
    } else {
      folded = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    }
    const __m128 dw = scales4(wrow, b, kBytes);
    const __m128 sc = _mm_mul_ps(dw, _mm_loadu_ps(as + b));
    acc = _mm256_fmadd_ps(_mm256_set_m128(sc, sc), _mm256_cvtepi32_ps(folded), acc);
    if constexpr (kQ4) corr = _mm_fmadd_ps(dw, _mm_loadu_ps(cs + b), corr);
  }
  float tail = 0;
  for (; b < nb; ++b) {
    float d0;
    __m256i x0 = weight_bytes<kQ4>(wrow, b, &d0);
    __m256i s0 = dot_i8(_mm256_sign_epi8(x0, x0), x0, load256(ab[b].qs));
    tail += d0 * as[b] * float(hsum_i32(s0));
  }
  return hsum(acc) - hsum128(corr) + tail;
}

// kRows weight rows x 4 columns (prompt processing). The four columns' int32
// sums are folded with hadd so one convert and one FMA serve all four: lanes
// c and c+4 of the accumulator belong to column c.
template <bool kQ4, int kRows>
void rows_x4(const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, int64_t nb, float* y,
             size_t ldy) {
  const Q8Cols<4> cols(a, a_stride, nb);
  const BlockQ8_0* const* ab = cols.blocks;
  const float* const* as = cols.scales;
  __m256 acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i y0 = load256(ab[0][b].qs), y1 = load256(ab[1][b].qs), y2 = load256(ab[2][b].qs),
                  y3 = load256(ab[3][b].qs);
    const __m128 sc4 = _mm_setr_ps(as[0][b], as[1][b], as[2][b], as[3][b]);
    const __m256 sc = _mm256_set_m128(sc4, sc4);
    for (int r = 0; r < kRows; ++r) {
      float d;
      const __m256i x = weight_bytes<kQ4>(w + size_t(r) * w_stride, b, &d);
      const __m256i ax = _mm256_sign_epi8(x, x);
      __m256i folded;
      if constexpr (kQ4) {
        // |weight| <= 8, so a sum of 8 products fits int16: fold at 16 bits.
        const __m256i p01 = _mm256_hadd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y0, x)),
                                              _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y1, x)));
        const __m256i p23 = _mm256_hadd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y2, x)),
                                              _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y3, x)));
        folded = _mm256_madd_epi16(_mm256_hadd_epi16(p01, p23), _mm256_set1_epi16(1));
      } else {
        const __m256i s01 = _mm256_hadd_epi32(dot_i8(ax, x, y0), dot_i8(ax, x, y1));
        const __m256i s23 = _mm256_hadd_epi32(dot_i8(ax, x, y2), dot_i8(ax, x, y3));
        folded = _mm256_hadd_epi32(s01, s23);
      }
      const __m256 s = _mm256_cvtepi32_ps(folded);
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(sc, _mm256_set1_ps(d)), s, acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    alignas(32) float v[8];
    _mm256_store_ps(v, acc[r]);
    for (int c = 0; c < 4; ++c) y[size_t(c) * ldy + size_t(r)] = v[c] + v[c + 4];
  }
}

template <bool kQ4>
void tile_q8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
             float* y, size_t ldy) {
  const int64_t nb = k / kQK;
  int c = 0;
  for (; c + 4 <= nc; c += 4) {
    const uint8_t* ac = a + size_t(c) * a_stride;
    float* yc = y + size_t(c) * ldy;
    int r = 0;
    for (; r + 2 <= nr; r += 2)
      rows_x4<kQ4, 2>(w + size_t(r) * w_stride, w_stride, ac, a_stride, nb, yc + r, ldy);
    for (; r < nr; ++r) rows_x4<kQ4, 1>(w + size_t(r) * w_stride, w_stride, ac, a_stride, nb, yc + r, ldy);
  }
  for (; c < nc; ++c)
    for (int r = 0; r < nr; ++r)
      y[size_t(c) * ldy + size_t(r)] = row_dot<kQ4>(w + size_t(r) * w_stride, a + size_t(c) * a_stride, nb);
}

// ---- interleaved Q4_0 (repack.h) x Q8_0 activations ----
// Interleaved weights live in the model's huge-page buffer, where the hardware
// prefetcher streams across pages by itself; software prefetching there was
// measured to cost up to a fifth of Q4_K generation, so these kernels do none.

// One interleaved group (8 rows) x kCols columns. Each 32-bit lane collects one
// row's products with 4 broadcast activation bytes at a time, so a block ends
// with no horizontal sum: one convert and one FMA with the 8 rows' scales.
// The unsigned nibbles' offset of 8 comes off through the column corrections
// (8 * scale * sum(y), see q8_0_scales_offset). An int16 lane sums 8
// maddubs pairs of at most 2 * 15 * 127: <= 30480, no overflow.
template <int kCols>
void group_x_cols(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
  const Q8Cols<kCols> x(a, a_stride, nb);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[kCols];
#pragma GCC unroll 4
  for (int c = 0; c < kCols; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kQ4_0x8UnitBytes;
    const __m256 d = half8(unit);
    __m256i s16[kCols];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i chunk = load256(unit + 16 + 32 * k);
      const __m256i lo = _mm256_and_si256(chunk, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(chunk, 4), m4);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const int8_t* q = x.blocks[c][b].qs;
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, broadcast4(q + 4 * k)),
                                           _mm256_maddubs_epi16(hi, broadcast4(q + 16 + 4 * k)));
        s16[c] = k == 0 ? p : _mm256_add_epi16(s16[c], p);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) {
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[c], _mm256_set1_epi16(1)));
      const __m256 t = _mm256_fmsub_ps(sum, _mm256_broadcast_ss(x.scales[c] + b), _mm256_broadcast_ss(x.corr[c] + b));
      acc[c] = _mm256_fmadd_ps(d, t, acc[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < kCols; ++c) _mm256_storeu_ps(y + size_t(c) * ldy, acc[c]);
}

template <int kCols>
struct Q4_0Cols {
  static void run(const uint8_t* g, int64_t nb, const uint8_t* a, size_t s, float* y, size_t ldy) {
    group_x_cols<kCols>(g, nb, a, s, y, ldy);
  }
};

// ---- interleaved Q8_0 (repack.h) x Q8_0 activations ----

// As group_x_cols for Q4_0, with signed weights (stored + 128, so flipped
// back first): maddubs takes |w| and the activation with w's sign (pairs of
// at most 2 * 128 * 127 fit int16, but two chunks would not, so each chunk
// widens to int32 at once).
template <int kCols>
void q8_group_x_cols(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
  const Q8Cols<kCols> x(a, a_stride, nb);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[kCols];
#pragma GCC unroll 4
  for (int c = 0; c < kCols; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kQ8_0x8UnitBytes;
    const __m256 d = half8(unit);
    __m256i s32[kCols];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i chunk = _mm256_xor_si256(load256(unit + 16 + 32 * k), _mm256_set1_epi8(char(0x80)));
      const __m256i aw = _mm256_abs_epi8(chunk);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const __m256i p = _mm256_madd_epi16(
            _mm256_maddubs_epi16(aw, _mm256_sign_epi8(broadcast4(x.blocks[c][b].qs + 4 * k), chunk)), ones);
        s32[c] = k == 0 ? p : _mm256_add_epi32(s32[c], p);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c)
      acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(x.scales[c] + b)), _mm256_cvtepi32_ps(s32[c]), acc[c]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < kCols; ++c) _mm256_storeu_ps(y + size_t(c) * ldy, acc[c]);
}

template <int kCols>
struct Q8_0Cols {
  static void run(const uint8_t* g, int64_t nb, const uint8_t* a, size_t s, float* y, size_t ldy) {
    q8_group_x_cols<kCols>(g, nb, a, s, y, ldy);
  }
};

// ---- interleaved Q4_K and Q5_K (repack.h) x Q8_K activations ----

// One interleaved group (8 rows) x one column. Per pair of sub-blocks the 8
// rows' nibbles meet 4 broadcast activation bytes at a time, each 32-bit lane
// collecting one row's products; the rows' sub-block scales (unpacked from
// the unit's packed words, KScales) then multiply lane by lane, and the mins'
// share comes off at the end (q45k_dmins). Q5_K (kFifthBit) ORs each nibble's fifth bit
// in from the unit's qh chunks: bit 2j for the low nibbles of sub-block pair
// j, 2j + 1 for the high ones.
template <bool kFifthBit>
void q45k_group_x_col(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  constexpr size_t kUnit = kFifthBit ? kQ5_Kx8UnitBytes : kQ4_Kx8UnitBytes;
  // Chunks per int16 sum of maddubs pairs: 8 for 4-bit weights (<= 30480),
  // 4 for 5-bit ones (<= 31744).
  constexpr int kPerSum = kFifthBit ? 4 : 8;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kUnit;
    const int8_t* q8 = x[b].qs;
    __m256i sumi = _mm256_setzero_si256();
    const KScales scales(unit);
    const __m256 dmins = q45k_dmins(unit, scales, x[b]);
#pragma GCC unroll 4  // fifth_bit's shifts by constants
    for (int j = 0; j < 4; ++j) {
      __m256i lo32 = _mm256_setzero_si256(), hi32 = _mm256_setzero_si256();
      for (int k0 = 0; k0 < 8; k0 += kPerSum) {
        __m256i lo16 = _mm256_setzero_si256(), hi16 = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int k = k0; k < k0 + kPerSum; ++k) {
          __m256i lo, hi;
          q45k_chunk<kFifthBit>(unit, j, k, &lo, &hi);
          lo16 = _mm256_add_epi16(lo16, _mm256_maddubs_epi16(lo, broadcast4(q8 + 64 * j + 4 * k)));
          hi16 = _mm256_add_epi16(hi16, _mm256_maddubs_epi16(hi, broadcast4(q8 + 64 * j + 32 + 4 * k)));
        }
        lo32 = _mm256_add_epi32(lo32, _mm256_madd_epi16(lo16, ones));
        hi32 = _mm256_add_epi32(hi32, _mm256_madd_epi16(hi16, ones));
      }
      sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(lo32, scales.scale(2 * j)));
      sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(hi32, scales.scale(2 * j + 1)));
    }
    acc = _mm256_fmadd_ps(q45k_block(unit, sumi, dmins), _mm256_set1_ps(x[b].d), acc);
  }
  _mm256_storeu_ps(y, acc);
}

// One interleaved Q6_K group (8 rows) x one column. Every loop is unrolled
// so that q[] and sub[][] live in registers: with the quarter loops left
// rolled GCC kept them on the stack and ran at half that speed.
// Each chunk triple gives 4
// weights of every row in each quarter of a half as unsigned 6-bit values
// (the GGUF's q + 32); maddubs pairs reach 2 * 63 * 127, so two chunks sum in
// int16 and then widen. Each 32-bit lane then takes its row's sub-block scale,
// and the +32 comes off at the end as 32 * sum(scale * the column's sub-block sums).
void q6k_group_x_col(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kQ6_Kx8UnitBytes;
    const int8_t* q8 = x[b].qs;
    __m256i sumi = _mm256_setzero_si256(), corr = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int n = 0; n < 2; ++n) {
      __m256i sub[2][4];  // [second 16 of the quarter][quarter]
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 4
        for (int quarter = 0; quarter < 4; ++quarter) sub[h][quarter] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int pair = 0; pair < 2; ++pair) {
          __m256i s16[4];
#pragma GCC unroll 2
          for (int kk = 0; kk < 2; ++kk) {
            const int k = 4 * h + 2 * pair + kk;
            __m256i q[4];
            q6k_chunk(unit + 144 + 96 * (8 * n + k), q);
#pragma GCC unroll 4
            for (int quarter = 0; quarter < 4; ++quarter) {
              const __m256i p = _mm256_maddubs_epi16(q[quarter], broadcast4(q8 + 128 * n + 32 * quarter + 4 * k));
              s16[quarter] = kk == 0 ? p : _mm256_add_epi16(s16[quarter], p);
            }
          }
#pragma GCC unroll 4
          for (int quarter = 0; quarter < 4; ++quarter)
            sub[h][quarter] = _mm256_add_epi32(sub[h][quarter], _mm256_madd_epi16(s16[quarter], ones));
        }
      }
#pragma GCC unroll 4
      for (int quarter = 0; quarter < 4; ++quarter) {
        // Sub-blocks 8n + 2 quarter + {0, 1}: scales interleaved by row, as int16 pairs.
        const int p = 4 * n + quarter;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + 16 + 16 * p)));
        const __m256i even = _mm256_srai_epi32(_mm256_slli_epi32(sc, 16), 16), odd = _mm256_srai_epi32(sc, 16);
        sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(sub[0][quarter], even));
        sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(sub[1][quarter], odd));
        int32_t bs;
        std::memcpy(&bs, x[b].bsums + 2 * p, 4);
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(sc, _mm256_set1_epi32(bs)));
      }
    }
    const __m256i total = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(half8(unit), _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(total), acc);
  }
  _mm256_storeu_ps(y, acc);
}

// ---- K-quants x Q8_K ----

// The 8 6-bit scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K/Q5_K block,
// unpacked with 32-bit word operations (same result as k_scale_min for j = 0..7:
// scales 0-3 and mins 0-3 are the low 6 bits of bytes 0-7; scales/mins 4-7 take
// their low 4 bits from the nibbles of bytes 8-11 and the top 2 bits from the
// top bits of bytes 0-3 / 4-7).
inline void k_scales_mins(const uint8_t* q, uint8_t out[16]) {
  uint32_t u[3];
  std::memcpy(u, q, 12);
  constexpr uint32_t kLow6 = 0x3F3F3F3F, kLow4 = 0x0F0F0F0F, kLow2 = 0x03030303;
  const uint32_t w[4] = {u[0] & kLow6, (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4), u[1] & kLow6,
                         ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4)};
  std::memcpy(out, w, 16);
}

template <bool kQ5>
float dot_q45k(const uint8_t* wrow, const BlockQ8K* x, int64_t n) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i one = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const uint8_t* qs;
    const uint8_t* scales;
    const uint8_t* qh = nullptr;
    const uint8_t* base;
    if constexpr (kQ5) {
      const BlockQ5K* wb = reinterpret_cast<const BlockQ5K*>(wrow) + b;
      qs = wb->qs; scales = wb->scales; qh = wb->qh;
      base = reinterpret_cast<const uint8_t*>(wb);
    } else {
      const BlockQ4K* wb = reinterpret_cast<const BlockQ4K*>(wrow) + b;
      qs = wb->qs; scales = wb->scales;
      base = reinterpret_cast<const uint8_t*>(wb);
    }
    // Every 64 bytes of the block (144 or 176): consecutive prefetches are
    // never more than a cache line apart, so no line of the row is missed.
    prefetch(base);
    prefetch(base + 64);
    prefetch(base + 128);
    alignas(16) uint8_t sm[16];
    k_scales_mins(scales, sm);
    // sum_j min_j * (bsums[2j] + bsums[2j+1]) with two SSE ops.
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].bsums)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].bsums + 8)));
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 8)));
    // d and dmin (adjacent f16s at the block's start) times the activation scale.
    uint32_t d_dmin;
    std::memcpy(&d_dmin, base, 4);
    const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(int(d_dmin))), _mm_set1_ps(x[b].d));
    // The mins' share stays in a vector until the end: no horizontal sum per block.
    acc_m = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(bs, mins)), _mm_shuffle_ps(dd, dd, 0x55), acc_m);
    // The 8 sub-block scales as int16 in both lanes; each sub-block's scale is
    // broadcast from there with one byte shuffle.
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm))));
    __m256i hbits = kQ5 ? load256(qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    const int8_t* a = x[b].qs;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256i q = load256(qs + 32 * j);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kQ5) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one), 4));
        hbits = _mm256_srli_epi16(hbits, 1);
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(hbits, one), 4));
        hbits = _mm256_srli_epi16(hbits, 1);
      }
      __m256i p1 = _mm256_maddubs_epi16(lo, load256(a + 64 * j));
      __m256i p2 = _mm256_maddubs_epi16(hi, load256(a + 64 * j + 32));
      p1 = _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * j)))));
      p2 = _mm256_madd_epi16(p2, _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(int16_t(0x0100 + 0x0202 * (2 * j + 1)))));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
    }
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc) - hsum128(acc_m);
}

float dot_q6k(const uint8_t* wrow, const BlockQ8K* x, int64_t n) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQKK; ++b) {
    const BlockQ6K* wb = reinterpret_cast<const BlockQ6K*>(wrow) + b;
    prefetch(wb->ql);
    prefetch(wb->ql + 64);
    prefetch(wb->ql + 128);
    prefetch(wb->ql + 192);
    int corr = 0;
    for (int j = 0; j < 16; ++j) corr += wb->scales[j] * x[b].bsums[j];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = wb->ql + 64 * h;
      __m256i qh = load256(wb->qh + 32 * h);
      __m256i l0 = load256(ql), l1 = load256(ql + 32);
      __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                       _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
      for (int quarter = 0; quarter < 4; ++quarter) {
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * quarter), m3);
        __m256i q = _mm256_or_si256(lo[quarter], _mm256_slli_epi16(hb, 4));
        __m256i p = _mm256_maddubs_epi16(q, load256(x[b].qs + 128 * h + 32 * quarter));
        const int8_t* sc = wb->scales + 8 * h + 2 * quarter;
        __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
      }
    }
    float d = half(wb->d) * x[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    acc = _mm256_add_ps(acc, _mm256_setr_ps(-32.f * d * float(corr), 0, 0, 0, 0, 0, 0, 0));
  }
  return hsum(acc);
}

template <float (*Dot)(const uint8_t*, const BlockQ8K*, int64_t)>
void tile_k(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
            float* y, size_t ldy) {
  for (int r = 0; r < nr; ++r)
    for (int c = 0; c < nc; ++c)
      y[size_t(c) * ldy + size_t(r)] =
          Dot(w + size_t(r) * w_stride, reinterpret_cast<const BlockQ8K*>(a + size_t(c) * a_stride), k);
}

// ---- attention ----

// 32 output floats at a time stay in four registers while the n value rows
// stream past; the rest of dim (a multiple of 8 in every real head size, but
// any dim works) in single registers and then scalars.
void weighted_sum(const float* weights, int n, const float* v, size_t v_stride, int dim, float* out) {
  int d = 0;
  for (; d + 32 <= dim; d += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < n; ++j) {
      const __m256 w = _mm256_broadcast_ss(weights + j);
      const float* vj = v + size_t(j) * v_stride + d;
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 24), a3);
    }
    _mm256_storeu_ps(out + d, a0);
    _mm256_storeu_ps(out + d + 8, a1);
    _mm256_storeu_ps(out + d + 16, a2);
    _mm256_storeu_ps(out + d + 24, a3);
  }
  for (; d + 8 <= dim; d += 8) {
    __m256 a = _mm256_setzero_ps();
    for (int j = 0; j < n; ++j)
      a = _mm256_fmadd_ps(_mm256_broadcast_ss(weights + j), _mm256_loadu_ps(v + size_t(j) * v_stride + d), a);
    _mm256_storeu_ps(out + d, a);
  }
  for (; d < dim; ++d) {
    float s = 0.f;
    for (int j = 0; j < n; ++j) s += weights[j] * v[size_t(j) * v_stride + d];
    out[d] = s;
  }
}

// ---- activations and the elementwise steps ----
// Same arithmetic as the scalar versions (kernels.cpp), so the quantised
// bytes are identical; max_ps(abs(v), m) keeps m when v is NaN, as std::max.

void prepare_q8_0(const float* x, int64_t n, uint8_t* out) {
  const int64_t nb = n / kQK;
  BlockQ8_0* blocks = reinterpret_cast<BlockQ8_0*>(out);
  float* scales = reinterpret_cast<float*>(out + q8_0_scales_offset(nb));
  float* corr = scales + nb;
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the packs' lane interleave
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(xb + 8 * k);
      m = _mm256_max_ps(abs_ps(v[k]), m);
    }
    const float amax = hmax(m);
    blocks[b].d = fp32_to_fp16(amax / 127.f);
    const __m256 id = _mm256_set1_ps(amax != 0 ? 127.f / amax : 0.f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = round_to_i32(_mm256_mul_ps(v[k], id));
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(blocks[b].qs), _mm256_permutevar8x32_epi32(bytes, order));
    scales[b] = half(blocks[b].d);
    const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    corr[b] = 8.f * scales[b] * float(sum);
  }
}

void prepare_q8_k(const float* x, int64_t n, uint8_t* out) {
  BlockQ8K* y = reinterpret_cast<BlockQ8K*>(out);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* v = x + i * kQKK;
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < kQKK; k += 8) m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(v + k)), m);
    const float amax = hmax(m);
    // The sign comes from the first value of that magnitude, as in the scalar loop.
    int at = 0;
    while (at < kQKK && std::fabs(v[at]) != amax) ++at;
    if (amax == 0 || at == kQKK) {  // all zero, or NaN: the scalar code decides
      quantize_row_q8_k(v, &y[i], kQKK);
      continue;
    }
    const float iscale = -127.f / v[at];
    const __m256 is = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int g = 0; g < kQKK / 16; ++g) {
      const __m256i q0 = _mm256_min_epi32(round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * g), is)), top);
      const __m256i q1 = _mm256_min_epi32(round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * g + 8), is)), top);
      y[i].bsums[g] = int16_t(hsum_i32(_mm256_add_epi32(q0, q1)));
      const __m256i w = _mm256_packs_epi32(q0, q1);  // q0 0-3, q1 0-3 | q0 4-7, q1 4-7
      const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * g), _mm_shuffle_epi32(b, 0xD8));
    }
    y[i].d = 1.f / iscale;
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void softmax(float* s, int n, float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  __m256 m = _mm256_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), sc), m);
  float mx = hmax(m);
  for (; j < n; ++j) mx = std::max(mx, s[j] * scale);
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  for (j = 0; j + 8 <= n; j += 8) {
    const __m256 e = exp_ps(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), sc, vmx));
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum(sum);
  for (; j < n; ++j) total += s[j] = std::exp(s[j] * scale - mx);
  const __m256 inv = _mm256_set1_ps(1.f / total);
  for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
  for (; j < n; ++j) s[j] *= 1.f / total;
}

void rms_norm(const float* x, const float* w, int n, float eps, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * k);
      acc[k] = _mm256_fmadd_ps(v, v, acc[k]);
    }
  double sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += double(x[i]) * x[i];
  const float scale = 1.f / std::sqrt(float(sum / n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

// Lane g of the result is the sum of v[g]'s 8 lanes.
inline __m256 hsum_8x8(const __m256 v[8]) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  // a = v0..v3 low-half sums | v0..v3 high-half sums; b the same for v4..v7.
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

void to_f16(const float* x, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

// 8 keys or values as floats, from an F32 or an F16 cache.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// kHeads (<= 8) query heads against one KV head, hd % 8 == 0. Lane h of each
// 8-float score vector belongs to head h, so the softmax runs on all heads at
// once; scratch[8j + h] is head h's weight of position j.
template <int kHeads, typename T>
void attend_heads(const float* q, int hd, const T* k, const T* v, size_t kv_stride, int n, float scale,
                  float* scratch, float* out) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int j = 0; j < n; ++j) {
    const T* kj = k + size_t(j) * kv_stride;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int h = 0; h < 8; ++h) acc[h] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
      const __m256 kd = load8(kj + d);
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + size_t(h) * hd + d), kd, acc[h]);
    }
    const __m256 s = _mm256_mul_ps(hsum_8x8(acc), _mm256_set1_ps(scale));
    _mm256_storeu_ps(scratch + 8 * j, s);
    m = _mm256_max_ps(s, m);
  }
  __m256 sum = _mm256_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(scratch + 8 * j), m));
    _mm256_storeu_ps(scratch + 8 * j, p);
    sum = _mm256_add_ps(sum, p);
  }
  alignas(32) float inv[8];
  _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.f), sum));
  for (int d = 0; d < hd; d += 8) {
    __m256 o[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) o[h] = _mm256_setzero_ps();
    for (int j = 0; j < n; ++j) {
      const __m256 vd = load8(v + size_t(j) * kv_stride + d);
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) o[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(scratch + 8 * j + h), vd, o[h]);
    }
    for (int h = 0; h < kHeads; ++h)
      _mm256_storeu_ps(out + size_t(h) * hd + d, _mm256_mul_ps(o[h], _mm256_set1_ps(inv[h])));
  }
}

// T is float, or uint16_t for an F16 cache.
template <typename T>
void attend(const float* q, int heads, int hd, const T* k, const T* v, size_t kv_stride, int n, float scale,
            float* scratch, float* out) {
  if (hd % 8 != 0) {  // no real model; one head at a time
    if constexpr (std::is_same_v<T, uint16_t>) {
      scalar_kernels().attend_f16(q, heads, hd, k, v, kv_stride, n, scale, scratch, out);
    } else {
      for (int h = 0; h < heads; ++h) {
        tile_f32(reinterpret_cast<const uint8_t*>(k), kv_stride * 4, n,
                 reinterpret_cast<const uint8_t*>(q + size_t(h) * hd), 0, 1, hd, scratch, 0);
        softmax(scratch, n, scale);
        weighted_sum(scratch, n, v, kv_stride, hd, out + size_t(h) * hd);
      }
    }
    return;
  }
  for (int h0 = 0; h0 < heads; h0 += 8) {
    const float* qh = q + size_t(h0) * hd;
    float* oh = out + size_t(h0) * hd;
    switch (std::min(8, heads - h0)) {
      case 8: attend_heads<8, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 7: attend_heads<7, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 6: attend_heads<6, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 5: attend_heads<5, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 4: attend_heads<4, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 3: attend_heads<3, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      case 2: attend_heads<2, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
      default: attend_heads<1, T>(qh, hd, k, v, kv_stride, n, scale, scratch, oh); break;
    }
  }
}

}  // namespace

const KernelTable& avx2_table() {
  static const KernelTable table{
      "avx2",         tile_f32,           tile_half<false>,   tile_half<true>, tile_q8<false>,
      tile_q8<true>,  tile_k<dot_q45k<false>>, tile_k<dot_q45k<true>>, tile_k<dot_q6k>,
      tile_x8<Q4_0Cols>, tile_x8<Q8_0Cols>, tile_kx8<q45k_group_x_col<false>>,
      tile_kx8<q45k_group_x_col<true>>,
      tile_kx8<q6k_group_x_col>,
      weighted_sum,
      prepare_q8_0,   prepare_q8_k,       swiglu,             softmax,         rms_norm,
      attend<float>,  attend<uint16_t>,  to_f16,
  };
  return table;
}

}  // namespace aifn::engine::detail
