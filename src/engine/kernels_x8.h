// Pieces shared by the interleaved (repack.h) kernels of kernels_avx2.cpp and
// kernels_vnni.cpp. Include only from those files: everything here has
// internal linkage, so each file gets its own copy compiled for its
// instruction set (an inline function with external linkage could be
// merged across them, and AVX-512 code would run on CPUs without it).
// In these kernels every loop over columns or streams carries
// `#pragma GCC unroll`: left rolled, GCC kept the per-column accumulator
// arrays in memory, and prompt processing ran 1.5-3 times slower.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/kernels.h"
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

// The 8 rows' f16 scales at p, as floats.
inline __m256 half8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// The column pointers of kCols prepared Q8_0 activations (kernels.h): blocks,
// float scales and the Q4_0 corrections 8 * scale * sum(q).
template <int kCols>
struct Q8Cols {
  const BlockQ8_0* blocks[kCols];
  const float* scales[kCols];
  const float* corr[kCols];
  Q8Cols(const uint8_t* a, size_t a_stride, int64_t nb) {
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) {
      blocks[c] = reinterpret_cast<const BlockQ8_0*>(a + size_t(c) * a_stride);
      scales[c] = reinterpret_cast<const float*>(a + size_t(c) * a_stride + q8_0_scales_offset(nb));
      corr[c] = scales[c] + nb;
    }
  }
};

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

// Every group of 8 rows of a K-quant (Q4_K, Q6_K) against every column, one at
// a time: Group(group, nb, column, y) computes one group x one column.
template <void (*Group)(const uint8_t*, int64_t, const BlockQ8K*, float*)>
void tile_kx8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
              float* y, size_t ldy) {
  const int64_t nb = k / kQKK;
  for (int r = 0; r < nr; r += kInterleaveRows)
    for (int c = 0; c < nc; ++c)
      Group(w + size_t(r) * w_stride, nb, reinterpret_cast<const BlockQ8K*>(a + size_t(c) * a_stride),
            y + size_t(c) * ldy + size_t(r));
}

// Decode (one activation column) over several streams: the rows split into
// kS runs of whole 8-row groups, and Col<n>::run(groups, nb, a, ys) takes one
// group from each of n runs side by side, a unit of each per step.
template <template <int> class Col, int kS>
void tile_streams(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, int64_t nb, float* y) {
  const int groups = nr / kInterleaveRows;
  const int per = (groups + kS - 1) / kS;
  for (int i = 0; i < per; ++i) {
    const uint8_t* g[kS];
    float* ys[kS];
    int n = 0;
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) {
      const int gi = s * per + i;
      if (gi >= groups) break;
      g[n] = w + size_t(gi) * kInterleaveRows * w_stride;
      ys[n] = y + size_t(gi) * kInterleaveRows;
      ++n;
    }
    if constexpr (kS >= 4) if (n == 4) { Col<4>::run(g, nb, a, ys); continue; }
    if constexpr (kS >= 3) if (n == 3) { Col<3>::run(g, nb, a, ys); continue; }
    if constexpr (kS >= 2) if (n == 2) { Col<2>::run(g, nb, a, ys); continue; }
    Col<1>::run(g, nb, a, ys);
  }
}

// Bit p (0..7) of every byte of h moved to bit 4 of that byte, the rest 0: a
// Q5_K weight's fifth bit, to OR onto its nibble. One 16-bit shift serves both
// bytes of a lane, since each byte's bit moves by the same distance.
inline __m256i fifth_bit(__m256i h, int p) {
  const __m256i moved = p < 4 ? _mm256_slli_epi16(h, 4 - p) : _mm256_srli_epi16(h, p - 4);
  return _mm256_and_si256(moved, _mm256_set1_epi8(0x10));
}

// Chunk k of sub-block pair j of an interleaved Q4_K or (kFifthBit) Q5_K unit:
// the 8 rows' weights as unsigned bytes, those of sub-block 2j in *lo and of
// 2j + 1 in *hi.
template <bool kFifthBit>
inline void q45k_chunk(const uint8_t* unit, int j, int k, __m256i* lo, __m256i* hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i chunk = load256(unit + (kFifthBit ? kQ5_KxNibbles : kQ4_KxNibbles) + 32 * (8 * j + k));
  *lo = _mm256_and_si256(chunk, m4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(chunk, 4), m4);
  if constexpr (kFifthBit) {
    const __m256i h = load256(unit + kQ5_KxFifthBits + 32 * k);
    *lo = _mm256_or_si256(*lo, fifth_bit(h, 2 * j));
    *hi = _mm256_or_si256(*hi, fifth_bit(h, 2 * j + 1));
  }
}

// The 6-bit sub-block scales and mins of a Q4_K/Q5_K unit's 8 rows, unpacked
// from their packed words (repack.h) in each row's 32-bit lane, as
// k_scale_min does for one row: bytes 0-3 of sc03 are the lane's scales 0-3,
// of sc47 scales 4-7; mn03 and mn47 the same for the mins.
struct KScales {
  __m256i sc03, sc47, mn03, mn47;
  explicit KScales(const uint8_t* unit) {
    const __m256i u0 = load256(unit + kQ45_KxScales), u1 = load256(unit + kQ45_KxScales + 32),
                  u2 = load256(unit + kQ45_KxScales + 64);
    const __m256i low6 = _mm256_set1_epi8(0x3F), low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    auto top2 = [&](__m256i u) { return _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u, 6), low2), 4); };
    sc03 = _mm256_and_si256(u0, low6);
    sc47 = _mm256_or_si256(_mm256_and_si256(u2, low4), top2(u0));
    mn03 = _mm256_and_si256(u1, low6);
    mn47 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), low4), top2(u1));
  }
  // Sub-block s's scale of every row as int32 (s a constant once unrolled).
  __m256i scale(int s) const { return scale(sc03, sc47, s); }
  static __m256i scale(__m256i sc03, __m256i sc47, int s) {
    return _mm256_and_si256(_mm256_srli_epi32(s < 4 ? sc03 : sc47, 8 * (s % 4)), _mm256_set1_epi32(0xFF));
  }
};

// A Q8_K column's 8 sub-block sums (pairs of the 16-value bsums) as int16,
// reordered 0 2 1 3 4 6 5 7 so that each 32-bit word holds the two sums one
// madd with the packed mins needs.
inline __m128i q8k_sub_block_sums(const BlockQ8K& x) {
  const __m128i sums = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bsums + 8)));
  return _mm_shufflehi_epi16(_mm_shufflelo_epi16(sums, 0xD8), 0xD8);
}

// The mins' share of a unit against one column, lane r for row r:
// dmin * sum over sub-blocks s of min_s * (the column's sum over sub-block s).
// The mins multiply as int16 pairs, even bytes with even sub-blocks' sums.
__m256 q45k_dmins(const uint8_t* unit, const KScales& k, const BlockQ8K& x) {
  const __m256i s = _mm256_broadcastsi128_si256(q8k_sub_block_sums(x));
  const __m256i even = _mm256_set1_epi32(0x00FF00FF);
  auto mins_dot = [&](__m256i m, __m256i s_even, __m256i s_odd) {
    return _mm256_add_epi32(_mm256_madd_epi16(_mm256_and_si256(m, even), s_even),
                            _mm256_madd_epi16(_mm256_srli_epi16(m, 8), s_odd));
  };
  const __m256i total =
      _mm256_add_epi32(mins_dot(k.mn03, _mm256_shuffle_epi32(s, 0x00), _mm256_shuffle_epi32(s, 0x55)),
                       mins_dot(k.mn47, _mm256_shuffle_epi32(s, 0xAA), _mm256_shuffle_epi32(s, 0xFF)));
  return _mm256_mul_ps(half8(unit + 16), _mm256_cvtepi32_ps(total));
}

// A unit's 8 rows before the column's scale: d * sumi - dmin * mins. The
// kernels read the header (d, dmin, the packed scales: the first 128 bytes)
// before the nibbles, so each unit is read front to back: read last, behind
// 1,024 bytes of nibbles, it streamed 11-13 % slower from memory with the
// VNNI kernel (single thread, alternating in one process). sumi_unit is what
// one unit of sumi is worth (1/16 where the high nibbles stayed in place).
__m256 q45k_block(const uint8_t* unit, __m256i sumi, __m256 dmins, float sumi_unit = 1.f) {
  return _mm256_fmsub_ps(_mm256_mul_ps(half8(unit), _mm256_set1_ps(sumi_unit)), _mm256_cvtepi32_ps(sumi), dmins);
}

// The chunk triple at c of an interleaved Q6_K unit (low nibbles, high
// nibbles, top bits): 4 weights of every row in each quarter of a half, as
// unsigned 6-bit values (the GGUF's q + 32), quarter by quarter in q[].
inline void q6k_chunk(const uint8_t* c, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i lo = load256(c), hi = load256(c + 32), top = load256(c + 64);
  q[0] = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_and_si256(_mm256_slli_epi16(top, 4), m30));
  q[1] = _mm256_or_si256(_mm256_and_si256(hi, m4), _mm256_and_si256(_mm256_slli_epi16(top, 2), m30));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 4), m4), _mm256_and_si256(top, m30));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(hi, 4), m4),
                         _mm256_and_si256(_mm256_srli_epi16(top, 2), m30));
}

}  // namespace
}  // namespace aifn::engine::detail
