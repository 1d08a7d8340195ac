// Pieces shared by the interleaved (repack.h) kernels of kernels_avx2.cpp and
// kernels_vnni.cpp. Include only from those files: everything here has
// internal linkage, so each file gets its own copy compiled for its
// instruction set (an inline function with external linkage could be
// merged across them, and AVX-512 code would run on CPUs without it).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/quant.h"
#include "engine/repack.h"

namespace aifn::engine::detail {
namespace {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 4 activation bytes in every 32-bit lane.
inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Every group of 8 rows against the columns 4 at a time, then the 1-3 left:
// Group<kCols>::run(group, nb, a, a_stride, y, ldy) computes one group x kCols.
template <template <int> class Group>
void tile_x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
             float* y, size_t ldy) {
  const int64_t nb = k / kQK;
  for (int r = 0; r < nr; r += kInterleaveRows) {
    const uint8_t* group = w + size_t(r) * w_stride;  // 8 rows of w_stride bytes each
    int c = 0;
    for (; c + 4 <= nc; c += 4) Group<4>::run(group, nb, a + size_t(c) * a_stride, a_stride, y + c * ldy + r, ldy);
    const uint8_t* ac = a + size_t(c) * a_stride;
    float* yc = y + size_t(c) * ldy + size_t(r);
    switch (nc - c) {
      case 3: Group<3>::run(group, nb, ac, a_stride, yc, ldy); break;
      case 2: Group<2>::run(group, nb, ac, a_stride, yc, ldy); break;
      case 1: Group<1>::run(group, nb, ac, a_stride, yc, ldy); break;
      default: break;
    }
  }
}

// Every group of 8 Q4_K rows against every column, one at a time:
// Group(group, nb, column, y) computes one group x one column.
template <void (*Group)(const uint8_t*, int64_t, const BlockQ8K*, float*)>
void tile_q4_kx8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  const int64_t nb = k / kQKK;
  for (int r = 0; r < nr; r += kInterleaveRows)
    for (int c = 0; c < nc; ++c)
      Group(w + size_t(r) * w_stride, nb, reinterpret_cast<const BlockQ8K*>(a + size_t(c) * a_stride),
            y + size_t(c) * ldy + size_t(r));
}

// The mins' share of an interleaved Q4_K unit against one column, lane r for
// row r: two rows' 8 mins times the column's 8 sub-block sums per madd (the
// unit stores rows p and 4 + p together for that), folded by hadds.
__m256i q4_kx8_mins(const uint8_t* unit, const BlockQ8K& x) {
  const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums)),
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8)));
  const __m256i bs2 = _mm256_broadcastsi128_si256(bs);  // the 8 sub-block sums in both halves
  __m256i m[4];
  for (int p = 0; p < 4; ++p)
    m[p] = _mm256_madd_epi16(
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + 96 + 16 * p))), bs2);
  return _mm256_hadd_epi32(_mm256_hadd_epi32(m[0], m[1]), _mm256_hadd_epi32(m[2], m[3]));
}

// One Q4_K unit's 8 rows before the column's scale: d * sumi - dmin * mins.
__m256 q4_kx8_block(const uint8_t* unit, const BlockQ8K& x, __m256i sumi) {
  const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit)));
  const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit + 16)));
  return _mm256_fmsub_ps(d, _mm256_cvtepi32_ps(sumi), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(q4_kx8_mins(unit, x))));
}

}  // namespace
}  // namespace aifn::engine::detail
