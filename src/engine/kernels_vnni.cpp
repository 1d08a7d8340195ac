// The interleaved (repack.h) kernels again with AVX-512 VNNI: vpdpbusd
// multiplies unsigned by signed bytes and adds each lane's four products into
// its int32 in one instruction, where AVX2 needs maddubs, an int16 add and a
// madd. Decode (one column) is bound by these kernels' vector ALU work per
// weight byte once memory is fast, so fewer instructions per chunk is what
// buys generation speed; it runs on 256-bit registers (a 512-bit version
// holding two streams read memory no faster). Prompt processing (several
// columns) runs on 512-bit registers, two 8-row groups to a register. The
// rest of the table is the AVX2 one. This file alone is compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni (kernels.cpp checks the CPU
// first).
#include <immintrin.h>

#include <cstring>

#include "engine/kernels.h"
#include "engine/kernels_x8.h"
#include "engine/quant.h"
#include "engine/repack.h"

namespace aifn::engine::detail {

const KernelTable& avx2_table();

namespace {

// Decode (one column) reads the rows of each call as kS runs side by side
// (tile_streams in kernels_x8.h): on the Intel Xeon host, where one stream per
// thread reads memory at about 0.8 of the triad, two streams per thread made
// generation 23-41 % faster, and three or four (sharing each activation
// broadcast among more groups) another 3-10 %; on the AMD EPYC host an
// earlier kernel taking two groups at once streamed a third slower, so
// decode_streams() picks by CPU.
//
// The high nibbles are kept in place (w & 0xF0, 16 times their value; a
// shift fewer per chunk) and the low sums are scaled by 16 to match: powers
// of two, so every result is bit for bit what the shifted nibbles give.

// kS groups of 8 Q4_0 rows x one column; lane r is row r. The nibbles are
// unsigned, so their offset of 8 comes off through the column's corrections.
// Low and high nibbles go to separate accumulators: two short dependency chains.
template <int kS>
struct Q4_0Streams {
  static void run(const uint8_t* const* g, int64_t nb, const uint8_t* a, float* const* ys) {
    const Q8Cols<1> x(a, 0, nb);
    const __m256i m4 = _mm256_set1_epi8(0x0F), mf0 = _mm256_set1_epi8(char(0xF0));
    __m256 acc[kS];
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = x.blocks[0][b].qs;
      __m256i lo[kS], hi[kS];
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) lo[s] = hi[s] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i al = broadcast4(q + 4 * k), ah = broadcast4(q + 16 + 4 * k);
#pragma GCC unroll 4
        for (int s = 0; s < kS; ++s) {
          const __m256i chunk = load256(g[s] + size_t(b) * kQ4_0x8UnitBytes + 16 + 32 * k);
          lo[s] = _mm256_dpbusd_epi32(lo[s], _mm256_and_si256(chunk, m4), al);
          hi[s] = _mm256_dpbusd_epi32(hi[s], _mm256_and_si256(chunk, mf0), ah);
        }
      }
      const __m256 sc = _mm256_mul_ps(_mm256_broadcast_ss(x.scales[0] + b), _mm256_set1_ps(1.f / 16));
      const __m256 corr = _mm256_broadcast_ss(x.corr[0] + b);
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) {
        const __m256i sum16 = _mm256_add_epi32(_mm256_slli_epi32(lo[s], 4), hi[s]);
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(sum16), sc, corr);
        acc[s] = _mm256_fmadd_ps(half8(g[s] + size_t(b) * kQ4_0x8UnitBytes), t, acc[s]);
      }
    }
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
  }
};

// Q8_0 weights are stored + 128 (repack.h), unsigned as vpdpbusd takes them:
// one instruction per chunk and column, and the block's sum carries
// 128 * sum(q), which comes off as 16 times the column's Q4_0 correction.
// Even and odd chunks go to separate accumulators.

// kS groups of 8 Q8_0 rows x one column.
template <int kS>
struct Q8_0Streams {
  static void run(const uint8_t* const* g, int64_t nb, const uint8_t* a, float* const* ys) {
    const Q8Cols<1> x(a, 0, nb);
    __m256 acc[kS];
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = x.blocks[0][b].qs;
      __m256i sum[2][kS];
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) sum[0][s] = sum[1][s] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m256i av = broadcast4(q + 4 * k);
#pragma GCC unroll 4
        for (int s = 0; s < kS; ++s)
          sum[k % 2][s] = _mm256_dpbusd_epi32(sum[k % 2][s], load256(g[s] + size_t(b) * kQ8_0x8UnitBytes + 16 + 32 * k), av);
      }
      const __m256 sc = _mm256_broadcast_ss(x.scales[0] + b);
      const __m256 corr = _mm256_mul_ps(_mm256_broadcast_ss(x.corr[0] + b), _mm256_set1_ps(16.f));
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) {
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sum[0][s], sum[1][s])), sc, corr);
        acc[s] = _mm256_fmadd_ps(half8(g[s] + size_t(b) * kQ8_0x8UnitBytes), t, acc[s]);
      }
    }
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
  }
};

// One group of 8 Q8_0 rows x kCols columns (prompt processing).
template <int kCols>
struct Q8_0Cols {
  static void run(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
    const Q8Cols<kCols> x(a, a_stride, nb);
    __m256 acc[kCols];
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* unit = group + size_t(b) * kQ8_0x8UnitBytes;
      __m256i s[2][kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) s[0][c] = s[1][c] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m256i chunk = load256(unit + 16 + 32 * k);
#pragma GCC unroll 4
        for (int c = 0; c < kCols; ++c)
          s[k % 2][c] = _mm256_dpbusd_epi32(s[k % 2][c], chunk, broadcast4(x.blocks[c][b].qs + 4 * k));
      }
      const __m256 d = half8(unit);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s[0][c], s[1][c])),
                                         _mm256_broadcast_ss(x.scales[c] + b),
                                         _mm256_mul_ps(_mm256_broadcast_ss(x.corr[c] + b), _mm256_set1_ps(16.f)));
        acc[c] = _mm256_fmadd_ps(d, t, acc[c]);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) _mm256_storeu_ps(y + size_t(c) * ldy, acc[c]);
  }
};

// kS groups of 8 Q4_K (or, with kFifthBit, Q5_K) rows x one column, as
// q45k_group_x_col in kernels_avx2.cpp but with each sub-block's products
// summed by vpdpbusd. Q5_K's high nibbles carry their fifth bit at bit 4, so
// they are shifted down as before.
template <bool kFifthBit>
struct Q45KStreams {
  template <int kS>
  struct Col {
    static void run(const uint8_t* const* g, int64_t nb, const uint8_t* a, float* const* ys) {
      constexpr size_t kUnit = kFifthBit ? kQ5_Kx8UnitBytes : kQ4_Kx8UnitBytes;
      const BlockQ8K* x = reinterpret_cast<const BlockQ8K*>(a);
      __m256 acc[kS];
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* q8 = x[b].qs;
        const uint8_t* unit[kS];
        __m256i sumi[kS], sc03[kS], sc47[kS];
        __m256 dmins[kS];
#pragma GCC unroll 4
        for (int s = 0; s < kS; ++s) {
          unit[s] = g[s] + size_t(b) * kUnit;
          const KScales scales(unit[s]);
          sc03[s] = scales.sc03, sc47[s] = scales.sc47;
          dmins[s] = q45k_dmins(unit[s], scales, x[b]);
          sumi[s] = _mm256_setzero_si256();
        }
#pragma GCC unroll 4  // fifth_bit's shifts by constants
        for (int j = 0; j < 4; ++j) {
          __m256i lo[kS], hi[kS];
#pragma GCC unroll 4
          for (int s = 0; s < kS; ++s) lo[s] = hi[s] = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int k = 0; k < 8; ++k) {
            const __m256i al = broadcast4(q8 + 64 * j + 4 * k), ah = broadcast4(q8 + 64 * j + 32 + 4 * k);
#pragma GCC unroll 4
            for (int s = 0; s < kS; ++s) {
              __m256i wl, wh;
              if constexpr (kFifthBit) {
                q45k_chunk<true>(unit[s], j, k, &wl, &wh);
              } else {
                const __m256i chunk = load256(unit[s] + kQ4_KxNibbles + 32 * (8 * j + k));
                wl = _mm256_and_si256(chunk, _mm256_set1_epi8(0x0F));
                wh = _mm256_and_si256(chunk, _mm256_set1_epi8(char(0xF0)));
              }
              lo[s] = _mm256_dpbusd_epi32(lo[s], wl, al);
              hi[s] = _mm256_dpbusd_epi32(hi[s], wh, ah);
            }
          }
#pragma GCC unroll 4
          for (int s = 0; s < kS; ++s) {
            __m256i s_lo = KScales::scale(sc03[s], sc47[s], 2 * j);
            const __m256i s_hi = KScales::scale(sc03[s], sc47[s], 2 * j + 1);
            if constexpr (!kFifthBit) s_lo = _mm256_slli_epi32(s_lo, 4);
            sumi[s] = _mm256_add_epi32(sumi[s], _mm256_mullo_epi32(lo[s], s_lo));
            sumi[s] = _mm256_add_epi32(sumi[s], _mm256_mullo_epi32(hi[s], s_hi));
          }
        }
        const __m256 d = _mm256_set1_ps(x[b].d);
#pragma GCC unroll 4
        for (int s = 0; s < kS; ++s)
          acc[s] = _mm256_fmadd_ps(q45k_block(unit[s], sumi[s], dmins[s], kFifthBit ? 1.f : 1.f / 16), d, acc[s]);
      }
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
    }
  };
};

// ---- prompt processing on 512-bit registers ----
// vpdpbusd on a zmm register does twice the work of a ymm one at nearly the
// same rate (Intel Xeon host: 1.7 against 1.9 per cycle, measured), so the
// several-column tiles take two adjacent 8-row groups at once: group A in the
// low 256 bits, group B (the next 8 rows) in the high 256, each column's
// activation bytes broadcast to all 16 lanes. The 16 rows' results are one
// contiguous store.

// Group A's and group B's 32 bytes at the same offset, as one register.
inline __m512i load_pair(const uint8_t* a, const uint8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(load256(a)), load256(b), 1);
}

// The 16 rows' f16 scales (8 at a, 8 at b) as floats.
inline __m512 half16(const uint8_t* a, const uint8_t* b) {
  const __m128i ha = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a)),
                hb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(ha), hb, 1));
}

inline __m512i broadcast4x16(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Two groups of 8 Q4_0 rows (16 rows from `group`) x kCols columns.
template <int kCols>
struct Q4_0PairCols {
  static void run(const uint8_t* group, size_t w_stride, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                  size_t ldy) {
    const Q8Cols<kCols> x(a, a_stride, nb);
    const uint8_t* group_b = group + kInterleaveRows * w_stride;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[kCols];
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* ua = group + size_t(b) * kQ4_0x8UnitBytes;
      const uint8_t* ub = group_b + size_t(b) * kQ4_0x8UnitBytes;
      __m512i lo[kCols], hi[kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) lo[c] = hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m512i chunk = load_pair(ua + 16 + 32 * k, ub + 16 + 32 * k);
        const __m512i wl = _mm512_and_si512(chunk, m4), wh = _mm512_and_si512(_mm512_srli_epi16(chunk, 4), m4);
#pragma GCC unroll 4
        for (int c = 0; c < kCols; ++c) {
          const int8_t* q = x.blocks[c][b].qs;
          lo[c] = _mm512_dpbusd_epi32(lo[c], wl, broadcast4x16(q + 4 * k));
          hi[c] = _mm512_dpbusd_epi32(hi[c], wh, broadcast4x16(q + 16 + 4 * k));
        }
      }
      const __m512 d = half16(ua, ub);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const __m512 t = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo[c], hi[c])),
                                         _mm512_set1_ps(x.scales[c][b]), _mm512_set1_ps(x.corr[c][b]));
        acc[c] = _mm512_fmadd_ps(d, t, acc[c]);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) _mm512_storeu_ps(y + size_t(c) * ldy, acc[c]);
  }
};

// Two groups of 8 Q8_0 rows x kCols columns (weights stored + 128: see Q8_0Streams).
template <int kCols>
struct Q8_0PairCols {
  static void run(const uint8_t* group, size_t w_stride, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                  size_t ldy) {
    const Q8Cols<kCols> x(a, a_stride, nb);
    const uint8_t* group_b = group + kInterleaveRows * w_stride;
    __m512 acc[kCols];
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* ua = group + size_t(b) * kQ8_0x8UnitBytes;
      const uint8_t* ub = group_b + size_t(b) * kQ8_0x8UnitBytes;
      __m512i s[2][kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) s[0][c] = s[1][c] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m512i chunk = load_pair(ua + 16 + 32 * k, ub + 16 + 32 * k);
#pragma GCC unroll 4
        for (int c = 0; c < kCols; ++c)
          s[k % 2][c] = _mm512_dpbusd_epi32(s[k % 2][c], chunk, broadcast4x16(x.blocks[c][b].qs + 4 * k));
      }
      const __m512 d = half16(ua, ub);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const __m512 t = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s[0][c], s[1][c])),
                                         _mm512_set1_ps(x.scales[c][b]), _mm512_set1_ps(16.f * x.corr[c][b]));
        acc[c] = _mm512_fmadd_ps(d, t, acc[c]);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) _mm512_storeu_ps(y + size_t(c) * ldy, acc[c]);
  }
};

// fifth_bit (kernels_x8.h) for 16 rows.
inline __m512i fifth_bit16(__m512i h, int p) {
  const __m512i moved = p < 4 ? _mm512_slli_epi16(h, 4 - p) : _mm512_srli_epi16(h, p - 4);
  return _mm512_and_si512(moved, _mm512_set1_epi8(0x10));
}

// Two groups of 8 Q4_K (or, with kFifthBit, Q5_K) rows x kCols columns: the
// 16 rows' scales and mins are unpacked once (as KScales does for 8) and
// serve every column. The integer arithmetic is the one-column kernel's, so
// each row's result is bit for bit what Q45KStreams gives it.
template <bool kFifthBit>
struct Q45KPair {
  template <int kCols>
  struct Cols {
    static void run(const uint8_t* group, size_t w_stride, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                    size_t ldy) {
      constexpr size_t kUnit = kFifthBit ? kQ5_Kx8UnitBytes : kQ4_Kx8UnitBytes;
      constexpr size_t kNibbles = kFifthBit ? kQ5_KxNibbles : kQ4_KxNibbles;
      const uint8_t* group_b = group + kInterleaveRows * w_stride;
      const BlockQ8K* x[kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) x[c] = reinterpret_cast<const BlockQ8K*>(a + size_t(c) * a_stride);
      const __m512i m4 = _mm512_set1_epi8(0x0F), mf0 = _mm512_set1_epi8(char(0xF0));
      const __m512i low6 = _mm512_set1_epi8(0x3F), low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
      const __m512i byte = _mm512_set1_epi32(0xFF), even = _mm512_set1_epi32(0x00FF00FF);
      __m512 acc[kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) acc[c] = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* ua = group + size_t(b) * kUnit;
        const uint8_t* ub = group_b + size_t(b) * kUnit;
        // KScales for 16 rows.
        const __m512i u0 = load_pair(ua + kQ45_KxScales, ub + kQ45_KxScales),
                      u1 = load_pair(ua + kQ45_KxScales + 32, ub + kQ45_KxScales + 32),
                      u2 = load_pair(ua + kQ45_KxScales + 64, ub + kQ45_KxScales + 64);
        auto top2 = [&](__m512i u) { return _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 6), low2), 4); };
        const __m512i sc03 = _mm512_and_si512(u0, low6), sc47 = _mm512_or_si512(_mm512_and_si512(u2, low4), top2(u0));
        const __m512i mn03 = _mm512_and_si512(u1, low6),
                      mn47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low4), top2(u1));
        __m512i sumi[kCols];
#pragma GCC unroll 4
        for (int c = 0; c < kCols; ++c) sumi[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          __m512i lo[kCols], hi[kCols];
#pragma GCC unroll 4
          for (int c = 0; c < kCols; ++c) lo[c] = hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
          for (int k = 0; k < 8; ++k) {
            const size_t at = kNibbles + 32 * (8 * j + k);
            const __m512i chunk = load_pair(ua + at, ub + at);
            __m512i wl = _mm512_and_si512(chunk, m4), wh;
            if constexpr (kFifthBit) {
              const __m512i h = load_pair(ua + kQ5_KxFifthBits + 32 * k, ub + kQ5_KxFifthBits + 32 * k);
              wl = _mm512_or_si512(wl, fifth_bit16(h, 2 * j));
              wh = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(chunk, 4), m4), fifth_bit16(h, 2 * j + 1));
            } else {
              wh = _mm512_and_si512(chunk, mf0);
            }
#pragma GCC unroll 4
            for (int c = 0; c < kCols; ++c) {
              const int8_t* q8 = x[c][b].qs + 64 * j + 4 * k;
              lo[c] = _mm512_dpbusd_epi32(lo[c], wl, broadcast4x16(q8));
              hi[c] = _mm512_dpbusd_epi32(hi[c], wh, broadcast4x16(q8 + 32));
            }
          }
          // Sub-blocks 2j and 2j + 1's scales; for Q4_K the low nibbles' x 16
          // matches the high nibbles kept in place.
          __m512i s_lo = _mm512_and_si512(_mm512_srli_epi32(j < 2 ? sc03 : sc47, 8 * ((2 * j) % 4)), byte);
          if constexpr (!kFifthBit) s_lo = _mm512_slli_epi32(s_lo, 4);
          const __m512i s_hi = _mm512_and_si512(_mm512_srli_epi32(j < 2 ? sc03 : sc47, 8 * ((2 * j + 1) % 4)), byte);
#pragma GCC unroll 4
          for (int c = 0; c < kCols; ++c) {
            sumi[c] = _mm512_add_epi32(sumi[c], _mm512_mullo_epi32(lo[c], s_lo));
            sumi[c] = _mm512_add_epi32(sumi[c], _mm512_mullo_epi32(hi[c], s_hi));
          }
        }
        // The mins' share per column, as q45k_dmins.
        const __m512i m03e = _mm512_and_si512(mn03, even), m03o = _mm512_srli_epi16(mn03, 8);
        const __m512i m47e = _mm512_and_si512(mn47, even), m47o = _mm512_srli_epi16(mn47, 8);
        const __m512 dmin = half16(ua + 16, ub + 16);
        const __m512 d = _mm512_mul_ps(half16(ua, ub), _mm512_set1_ps(kFifthBit ? 1.f : 1.f / 16));
#pragma GCC unroll 4
        for (int c = 0; c < kCols; ++c) {
          const __m512i sv = _mm512_broadcast_i32x4(q8k_sub_block_sums(x[c][b]));
          const __m512i total = _mm512_add_epi32(
              _mm512_add_epi32(_mm512_madd_epi16(m03e, _mm512_shuffle_epi32(sv, _MM_PERM_AAAA)),
                               _mm512_madd_epi16(m03o, _mm512_shuffle_epi32(sv, _MM_PERM_BBBB))),
              _mm512_add_epi32(_mm512_madd_epi16(m47e, _mm512_shuffle_epi32(sv, _MM_PERM_CCCC)),
                               _mm512_madd_epi16(m47o, _mm512_shuffle_epi32(sv, _MM_PERM_DDDD))));
          const __m512 dmins = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(total));
          acc[c] = _mm512_fmadd_ps(_mm512_fmsub_ps(d, _mm512_cvtepi32_ps(sumi[c]), dmins), _mm512_set1_ps(x[c][b].d),
                                   acc[c]);
        }
      }
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) _mm512_storeu_ps(y + size_t(c) * ldy, acc[c]);
    }
  };
};

// Two groups of 8 Q6_K rows x kCols columns, as Q6KStreams does one group x
// one column, with each half's sub-block
// scales applied as soon as its four chunk triples are summed (fewer
// accumulators live at once). Integer sums in another order: bit for bit the
// same result.
template <int kCols>
struct Q6KPairCols {
  static void run(const uint8_t* group, size_t w_stride, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                  size_t ldy) {
    const uint8_t* group_b = group + kInterleaveRows * w_stride;
    const BlockQ8K* x[kCols];
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) x[c] = reinterpret_cast<const BlockQ8K*>(a + size_t(c) * a_stride);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[kCols];
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* ua = group + size_t(b) * kQ6_Kx8UnitBytes;
      const uint8_t* ub = group_b + size_t(b) * kQ6_Kx8UnitBytes;
      __m512i sumi[kCols], corr[kCols];
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) sumi[c] = corr[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
      for (int n = 0; n < 2; ++n) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          __m512i sub[4][kCols];
#pragma GCC unroll 4
          for (int quarter = 0; quarter < 4; ++quarter)
#pragma GCC unroll 4
            for (int c = 0; c < kCols; ++c) sub[quarter][c] = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int kk = 0; kk < 4; ++kk) {
            const int k = 4 * h + kk;
            const size_t at = 144 + 96 * (8 * n + k);
            const __m512i lo = load_pair(ua + at, ub + at), hi = load_pair(ua + at + 32, ub + at + 32),
                          top = load_pair(ua + at + 64, ub + at + 64);
            const __m512i q[4] = {
                _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_and_si512(_mm512_slli_epi16(top, 4), m30)),
                _mm512_or_si512(_mm512_and_si512(hi, m4), _mm512_and_si512(_mm512_slli_epi16(top, 2), m30)),
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo, 4), m4), _mm512_and_si512(top, m30)),
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(hi, 4), m4),
                                _mm512_and_si512(_mm512_srli_epi16(top, 2), m30))};
#pragma GCC unroll 4
            for (int quarter = 0; quarter < 4; ++quarter)
#pragma GCC unroll 4
              for (int c = 0; c < kCols; ++c)
                sub[quarter][c] = _mm512_dpbusd_epi32(
                    sub[quarter][c], q[quarter], broadcast4x16(x[c][b].qs + 128 * n + 32 * quarter + 4 * k));
          }
#pragma GCC unroll 4
          for (int quarter = 0; quarter < 4; ++quarter) {
            // Sub-blocks 8n + 2 quarter + {0, 1} of the 16 rows, as int16 pairs; this half's is h.
            const int p = 4 * n + quarter;
            const __m256i sc8 = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ua + 16 + 16 * p))),
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(ub + 16 + 16 * p)), 1);
            const __m512i sc = _mm512_cvtepi8_epi16(sc8);
            const __m512i scale = h == 0 ? _mm512_srai_epi32(_mm512_slli_epi32(sc, 16), 16) : _mm512_srai_epi32(sc, 16);
#pragma GCC unroll 4
            for (int c = 0; c < kCols; ++c) {
              sumi[c] = _mm512_add_epi32(sumi[c], _mm512_mullo_epi32(sub[quarter][c], scale));
              if (h == 0) {
                int32_t bs;
                std::memcpy(&bs, x[c][b].bsums + 2 * p, 4);
                corr[c] = _mm512_add_epi32(corr[c], _mm512_madd_epi16(sc, _mm512_set1_epi32(bs)));
              }
            }
          }
        }
      }
      const __m512 d = half16(ua, ub);
#pragma GCC unroll 4
      for (int c = 0; c < kCols; ++c) {
        const __m512i total = _mm512_sub_epi32(sumi[c], _mm512_slli_epi32(corr[c], 5));
        acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x[c][b].d)), _mm512_cvtepi32_ps(total), acc[c]);
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < kCols; ++c) _mm512_storeu_ps(y + size_t(c) * ldy, acc[c]);
  }
};

// Every pair of 8-row groups against the columns kMaxCols at a time, then
// the rest; a last unpaired group goes to `single` (a ymm tile).
template <template <int> class Pair, int kMaxCols, int64_t kBlock>
void tile_pairs(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                float* y, size_t ldy, TileFn single) {
  const int64_t nb = k / kBlock;
  constexpr int kPairRows = 2 * kInterleaveRows;
  int r = 0;
  for (; r + kPairRows <= nr; r += kPairRows) {
    const uint8_t* group = w + size_t(r) * w_stride;
    int c = 0;
    for (; c + kMaxCols <= nc; c += kMaxCols)
      Pair<kMaxCols>::run(group, w_stride, nb, a + size_t(c) * a_stride, a_stride, y + c * ldy + r, ldy);
    const uint8_t* ac = a + size_t(c) * a_stride;
    float* yc = y + size_t(c) * ldy + size_t(r);
    const int rest = nc - c;  // < kMaxCols
    if constexpr (kMaxCols > 3) if (rest == 3) Pair<3>::run(group, w_stride, nb, ac, a_stride, yc, ldy);
    if constexpr (kMaxCols > 2) if (rest == 2) Pair<2>::run(group, w_stride, nb, ac, a_stride, yc, ldy);
    if (rest == 1) Pair<1>::run(group, w_stride, nb, ac, a_stride, yc, ldy);
  }
  if (r < nr) single(w + size_t(r) * w_stride, w_stride, nr - r, a, a_stride, nc, k, y + r, ldy);
}

// kS groups of 8 Q6_K rows x one column, as q6k_group_x_col (kernels_avx2.cpp)
// but with vpdpbusd summing each product group straight into int32 (54
// against 41 GB/s from L2, one thread, seventh session), and with each half's
// sub-block scales applied as soon as its four chunk triples are summed, so
// fewer accumulators are live.
template <int kS>
struct Q6KStreams {
  static void run(const uint8_t* const* g, int64_t nb, const uint8_t* a, float* const* ys) {
    const BlockQ8K* x = reinterpret_cast<const BlockQ8K*>(a);
    __m256 acc[kS];
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q8 = x[b].qs;
      const uint8_t* unit[kS];
      __m256i sumi[kS], corr[kS];
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) {
        unit[s] = g[s] + size_t(b) * kQ6_Kx8UnitBytes;
        sumi[s] = corr[s] = _mm256_setzero_si256();
      }
#pragma GCC unroll 2
      for (int n = 0; n < 2; ++n) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          __m256i sub[kS][4];
#pragma GCC unroll 4
          for (int s = 0; s < kS; ++s)
#pragma GCC unroll 4
            for (int quarter = 0; quarter < 4; ++quarter) sub[s][quarter] = _mm256_setzero_si256();
#pragma GCC unroll 4
          for (int kk = 0; kk < 4; ++kk) {
            const int k = 4 * h + kk;
            __m256i av[4];
#pragma GCC unroll 4
            for (int quarter = 0; quarter < 4; ++quarter) av[quarter] = broadcast4(q8 + 128 * n + 32 * quarter + 4 * k);
#pragma GCC unroll 4
            for (int s = 0; s < kS; ++s) {
              __m256i q[4];
              q6k_chunk(unit[s] + 144 + 96 * (8 * n + k), q);
#pragma GCC unroll 4
              for (int quarter = 0; quarter < 4; ++quarter)
                sub[s][quarter] = _mm256_dpbusd_epi32(sub[s][quarter], q[quarter], av[quarter]);
            }
          }
#pragma GCC unroll 4
          for (int quarter = 0; quarter < 4; ++quarter) {
            const int p = 4 * n + quarter;
            int32_t bs;
            std::memcpy(&bs, x[b].bsums + 2 * p, 4);
#pragma GCC unroll 4
            for (int s = 0; s < kS; ++s) {
              const __m256i sc =
                  _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(unit[s] + 16 + 16 * p)));
              const __m256i scale =
                  h == 0 ? _mm256_srai_epi32(_mm256_slli_epi32(sc, 16), 16) : _mm256_srai_epi32(sc, 16);
              sumi[s] = _mm256_add_epi32(sumi[s], _mm256_mullo_epi32(sub[s][quarter], scale));
              if (h == 0) corr[s] = _mm256_add_epi32(corr[s], _mm256_madd_epi16(sc, _mm256_set1_epi32(bs)));
            }
          }
        }
      }
#pragma GCC unroll 4
      for (int s = 0; s < kS; ++s) {
        const __m256i total = _mm256_sub_epi32(sumi[s], _mm256_slli_epi32(corr[s], 5));
        acc[s] = _mm256_fmadd_ps(_mm256_mul_ps(half8(unit[s]), _mm256_set1_ps(x[b].d)), _mm256_cvtepi32_ps(total),
                                 acc[s]);
      }
    }
#pragma GCC unroll 4
    for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
  }
};

// One group x one column, for a lone last group of prompt processing.
void q6k_group(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  Q6KStreams<1>::run(&group, nb, reinterpret_cast<const uint8_t*>(x), &y);
}

void q6_k_single(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  tile_kx8<q6k_group>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
}

// Decode on 256-bit registers, several columns on 512-bit ones (a lone last
// group by the ymm kernels).
template <int kS>
void tile_q4_0x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return tile_pairs<Q4_0PairCols, 4, kQK>(w, w_stride, nr, a, a_stride, nc, k, y, ldy, avx2_table().q4_0x8);
  tile_streams<Q4_0Streams, kS>(w, w_stride, nr, a, k / kQK, y);
}

void q8_0_single(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  tile_x8<Q8_0Cols>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
}

template <int kS>
void tile_q8_0x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return tile_pairs<Q8_0PairCols, 4, kQK>(w, w_stride, nr, a, a_stride, nc, k, y, ldy, q8_0_single);
  tile_streams<Q8_0Streams, kS>(w, w_stride, nr, a, k / kQK, y);
}

// One group x one column, for prompt processing's columns one at a time.
template <bool kFifthBit>
void q45k_group(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  Q45KStreams<kFifthBit>::template Col<1>::run(&group, nb, reinterpret_cast<const uint8_t*>(x), &y);
}

template <bool kFifthBit>
void q45_k_single(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                  float* y, size_t ldy) {
  tile_kx8<q45k_group<kFifthBit>>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
}

template <bool kFifthBit, int kS>
void tile_q45_kx8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                  float* y, size_t ldy) {
  if (nc > 1)
    return tile_pairs<Q45KPair<kFifthBit>::template Cols, 4, kQKK>(w, w_stride, nr, a, a_stride, nc, k, y, ldy,
                                                                    q45_k_single<kFifthBit>);
  tile_streams<Q45KStreams<kFifthBit>::template Col, kS>(w, w_stride, nr, a, k / kQKK, y);
}

// Q6_K: decode over kS streams; several columns in pairs of groups, two
// columns at a time (four need more than the 32 registers).
template <int kS>
void tile_q6_kx8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return tile_pairs<Q6KPairCols, 2, kQKK>(w, w_stride, nr, a, a_stride, nc, k, y, ldy, q6_k_single);
  tile_streams<Q6KStreams, kS>(w, w_stride, nr, a, k / kQKK, y);
}

// kS streams for Q4_0 and Q8_0, at most 3 for Q4_K (4 were no faster: its
// kernel keeps more per stream in registers), at most 2 for Q5_K and Q6_K
// (3 were no faster; one thread from memory, two gave 10-25 % more than one).
template <int kS>
KernelTable make_vnni_table(const char* name) {
  KernelTable t = avx2_table();
  t.name = name;
  t.q4_0x8 = tile_q4_0x8<kS>;
  t.q8_0x8 = tile_q8_0x8<kS>;
  t.q4_kx8 = tile_q45_kx8<false, (kS < 3 ? kS : 3)>;
  t.q5_kx8 = tile_q45_kx8<true, (kS < 2 ? kS : 2)>;
  t.q6_kx8 = tile_q6_kx8<(kS < 2 ? kS : 2)>;
  return t;
}

}  // namespace

const KernelTable& vnni_table(int decode_streams) {
  static const KernelTable one = make_vnni_table<1>("avx512vnni"),
                           several = make_vnni_table<kSeveralStreams>("avx512vnni-streams");
  return decode_streams > 1 ? several : one;
}

}  // namespace aifn::engine::detail
