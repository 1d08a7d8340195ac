// The interleaved (repack.h) kernels again with AVX-512 VNNI on 256-bit
// registers: vpdpbusd multiplies unsigned by signed bytes and adds each lane's
// four products into its int32 in one instruction, where AVX2 needs maddubs,
// an int16 add and a madd. Decode is bound by these kernels' vector ALU work
// per weight byte once memory is fast, so fewer instructions per chunk is
// what buys generation speed. The rest of the table is the AVX2 one. This
// file alone is compiled with -mavx512vl -mavx512vnni (kernels.cpp checks the
// CPU first).
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
// generation 23-41 % faster; on the AMD EPYC host an earlier kernel taking two
// groups at once streamed a third slower, so decode_streams() picks by CPU.
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
    for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = x.blocks[0][b].qs;
      __m256i lo[kS], hi[kS];
      for (int s = 0; s < kS; ++s) lo[s] = hi[s] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i al = broadcast4(q + 4 * k), ah = broadcast4(q + 16 + 4 * k);
        for (int s = 0; s < kS; ++s) {
          const __m256i chunk = load256(g[s] + size_t(b) * kQ4_0x8UnitBytes + 16 + 32 * k);
          lo[s] = _mm256_dpbusd_epi32(lo[s], _mm256_and_si256(chunk, m4), al);
          hi[s] = _mm256_dpbusd_epi32(hi[s], _mm256_and_si256(chunk, mf0), ah);
        }
      }
      const __m256 sc = _mm256_mul_ps(_mm256_broadcast_ss(x.scales[0] + b), _mm256_set1_ps(1.f / 16));
      const __m256 corr = _mm256_broadcast_ss(x.corr[0] + b);
      for (int s = 0; s < kS; ++s) {
        const __m256i sum16 = _mm256_add_epi32(_mm256_slli_epi32(lo[s], 4), hi[s]);
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(sum16), sc, corr);
        acc[s] = _mm256_fmadd_ps(half8(g[s] + size_t(b) * kQ4_0x8UnitBytes), t, acc[s]);
      }
    }
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
    for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* q = x.blocks[0][b].qs;
      __m256i sum[2][kS];
      for (int s = 0; s < kS; ++s) sum[0][s] = sum[1][s] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m256i av = broadcast4(q + 4 * k);
        for (int s = 0; s < kS; ++s)
          sum[k % 2][s] = _mm256_dpbusd_epi32(sum[k % 2][s], load256(g[s] + size_t(b) * kQ8_0x8UnitBytes + 16 + 32 * k), av);
      }
      const __m256 sc = _mm256_broadcast_ss(x.scales[0] + b);
      const __m256 corr = _mm256_mul_ps(_mm256_broadcast_ss(x.corr[0] + b), _mm256_set1_ps(16.f));
      for (int s = 0; s < kS; ++s) {
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sum[0][s], sum[1][s])), sc, corr);
        acc[s] = _mm256_fmadd_ps(half8(g[s] + size_t(b) * kQ8_0x8UnitBytes), t, acc[s]);
      }
    }
    for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
  }
};

// One group of 8 Q8_0 rows x kCols columns (prompt processing).
template <int kCols>
struct Q8_0Cols {
  static void run(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
    const Q8Cols<kCols> x(a, a_stride, nb);
    __m256 acc[kCols];
    for (int c = 0; c < kCols; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* unit = group + size_t(b) * kQ8_0x8UnitBytes;
      __m256i s[2][kCols];
      for (int c = 0; c < kCols; ++c) s[0][c] = s[1][c] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m256i chunk = load256(unit + 16 + 32 * k);
        for (int c = 0; c < kCols; ++c)
          s[k % 2][c] = _mm256_dpbusd_epi32(s[k % 2][c], chunk, broadcast4(x.blocks[c][b].qs + 4 * k));
      }
      const __m256 d = half8(unit);
      for (int c = 0; c < kCols; ++c) {
        const __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(s[0][c], s[1][c])),
                                         _mm256_broadcast_ss(x.scales[c] + b),
                                         _mm256_mul_ps(_mm256_broadcast_ss(x.corr[c] + b), _mm256_set1_ps(16.f)));
        acc[c] = _mm256_fmadd_ps(d, t, acc[c]);
      }
    }
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
      for (int s = 0; s < kS; ++s) acc[s] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const int8_t* q8 = x[b].qs;
        const uint8_t* unit[kS];
        __m256i sumi[kS], sc03[kS], sc47[kS];
        __m256 dmins[kS];
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
          for (int s = 0; s < kS; ++s) lo[s] = hi[s] = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int k = 0; k < 8; ++k) {
            const __m256i al = broadcast4(q8 + 64 * j + 4 * k), ah = broadcast4(q8 + 64 * j + 32 + 4 * k);
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
          for (int s = 0; s < kS; ++s) {
            __m256i s_lo = KScales::scale(sc03[s], sc47[s], 2 * j);
            const __m256i s_hi = KScales::scale(sc03[s], sc47[s], 2 * j + 1);
            if constexpr (!kFifthBit) s_lo = _mm256_slli_epi32(s_lo, 4);
            sumi[s] = _mm256_add_epi32(sumi[s], _mm256_mullo_epi32(lo[s], s_lo));
            sumi[s] = _mm256_add_epi32(sumi[s], _mm256_mullo_epi32(hi[s], s_hi));
          }
        }
        const __m256 d = _mm256_set1_ps(x[b].d);
        for (int s = 0; s < kS; ++s)
          acc[s] = _mm256_fmadd_ps(q45k_block(unit[s], sumi[s], dmins[s], kFifthBit ? 1.f : 1.f / 16), d, acc[s]);
      }
      for (int s = 0; s < kS; ++s) _mm256_storeu_ps(ys[s], acc[s]);
    }
  };
};

// Decode by VNNI; for several columns AVX2's int16 sums of maddubs pairs were
// faster (pp64 122 against 86 tok/s with 4-column tiles).
template <int kS>
void tile_q4_0x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return avx2_table().q4_0x8(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
  tile_streams<Q4_0Streams, kS>(w, w_stride, nr, a, k / kQK, y);
}

template <int kS>
void tile_q8_0x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return tile_x8<Q8_0Cols>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
  tile_streams<Q8_0Streams, kS>(w, w_stride, nr, a, k / kQK, y);
}

// One group x one column, for prompt processing's columns one at a time.
template <bool kFifthBit>
void q45k_group(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  Q45KStreams<kFifthBit>::template Col<1>::run(&group, nb, reinterpret_cast<const uint8_t*>(x), &y);
}

template <bool kFifthBit, int kS>
void tile_q45_kx8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                  float* y, size_t ldy) {
  if (nc > 1) return tile_kx8<q45k_group<kFifthBit>>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
  tile_streams<Q45KStreams<kFifthBit>::template Col, kS>(w, w_stride, nr, a, k / kQKK, y);
}

template <int kS>
KernelTable make_vnni_table(const char* name) {
  KernelTable t = avx2_table();
  t.name = name;
  t.q4_0x8 = tile_q4_0x8<kS>;
  t.q8_0x8 = tile_q8_0x8<kS>;
  t.q4_kx8 = tile_q45_kx8<false, kS>;
  t.q5_kx8 = tile_q45_kx8<true, 1>;  // two Q5_K streams measured slower, from L2 and from memory
  t.q6_kx8 = tile_kx8<q6k_group_x_col>;  // one stream (two not tried)
  return t;
}

}  // namespace

const KernelTable& vnni_table(int decode_streams) {
  static const KernelTable one = make_vnni_table<1>("avx512vnni"), two = make_vnni_table<2>("avx512vnni-2streams");
  return decode_streams == 2 ? two : one;
}

}  // namespace aifn::engine::detail
