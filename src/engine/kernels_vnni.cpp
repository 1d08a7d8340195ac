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

// One group of 8 Q4_0 rows x kCols columns; lane r is row r. The nibbles are
// unsigned, so their offset of 8 comes off through the column corrections.
// Low and high nibbles go to separate accumulators: two short dependency chains.
template <int kCols>
void q4_0_group(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
  const Q8Cols<kCols> x(a, a_stride, nb);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[kCols];
  for (int c = 0; c < kCols; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kQ4_0x8UnitBytes;
    __m256i lo[kCols], hi[kCols];
    for (int c = 0; c < kCols; ++c) lo[c] = hi[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i chunk = load256(unit + 16 + 32 * k);
      const __m256i l = _mm256_and_si256(chunk, m4);
      const __m256i h = _mm256_and_si256(_mm256_srli_epi16(chunk, 4), m4);
      for (int c = 0; c < kCols; ++c) {
        const int8_t* q = x.blocks[c][b].qs;
        lo[c] = _mm256_dpbusd_epi32(lo[c], l, broadcast4(q + 4 * k));
        hi[c] = _mm256_dpbusd_epi32(hi[c], h, broadcast4(q + 16 + 4 * k));
      }
    }
    const __m256 d = half8(unit);
    for (int c = 0; c < kCols; ++c) {
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_add_epi32(lo[c], hi[c]));
      const __m256 t = _mm256_fmsub_ps(sum, _mm256_broadcast_ss(x.scales[c] + b), _mm256_broadcast_ss(x.corr[c] + b));
      acc[c] = _mm256_fmadd_ps(d, t, acc[c]);
    }
  }
  for (int c = 0; c < kCols; ++c) _mm256_storeu_ps(y + size_t(c) * ldy, acc[c]);
}

// One group of 8 Q8_0 rows x kCols columns: |w| times the activation carrying
// w's sign, even and odd chunks in separate accumulators.
template <int kCols>
void q8_0_group(const uint8_t* group, int64_t nb, const uint8_t* a, size_t a_stride, float* y, size_t ldy) {
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
      const __m256i aw = _mm256_abs_epi8(chunk);
      for (int c = 0; c < kCols; ++c)
        s[k % 2][c] = _mm256_dpbusd_epi32(s[k % 2][c], aw,
                                          _mm256_sign_epi8(broadcast4(x.blocks[c][b].qs + 4 * k), chunk));
    }
    const __m256 d = half8(unit);
    for (int c = 0; c < kCols; ++c)
      acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(x.scales[c] + b)),
                               _mm256_cvtepi32_ps(_mm256_add_epi32(s[0][c], s[1][c])), acc[c]);
  }
  for (int c = 0; c < kCols; ++c) _mm256_storeu_ps(y + size_t(c) * ldy, acc[c]);
}

template <int kCols>
struct Q4_0Cols {
  static void run(const uint8_t* g, int64_t nb, const uint8_t* a, size_t s, float* y, size_t ldy) {
    q4_0_group<kCols>(g, nb, a, s, y, ldy);
  }
};
template <int kCols>
struct Q8_0Cols {
  static void run(const uint8_t* g, int64_t nb, const uint8_t* a, size_t s, float* y, size_t ldy) {
    q8_0_group<kCols>(g, nb, a, s, y, ldy);
  }
};

// Decode (one column) by VNNI; for several columns AVX2's int16 sums of
// maddubs pairs were faster (pp64 122 against 86 tok/s with 4-column tiles).
void tile_q4_0x8(const uint8_t* w, size_t w_stride, int nr, const uint8_t* a, size_t a_stride, int nc, int64_t k,
                 float* y, size_t ldy) {
  if (nc > 1) return avx2_table().q4_0x8(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
  tile_x8<Q4_0Cols>(w, w_stride, nr, a, a_stride, nc, k, y, ldy);
}

// One group of 8 Q4_K (or, with kFifthBit, Q5_K) rows x one column, as
// q45k_group_x_col in kernels_avx2.cpp but with each sub-block's products
// summed by vpdpbusd. (Two groups sharing each activation broadcast ran 1.4x
// faster from L2 but streamed a third slower from memory: two streams per thread.)
template <bool kFifthBit>
void q45_k_group(const uint8_t* group, int64_t nb, const BlockQ8K* x, float* y) {
  constexpr size_t kUnit = kFifthBit ? kQ5_Kx8UnitBytes : kQ4_Kx8UnitBytes;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* unit = group + size_t(b) * kUnit;
    const int8_t* q8 = x[b].qs;
    __m256i sumi = _mm256_setzero_si256();
    const KScales scales(unit);
    const __m256 dmins = q45k_dmins(unit, scales, x[b]);
#pragma GCC unroll 4  // fifth_bit's shifts by constants
    for (int j = 0; j < 4; ++j) {
      __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        __m256i wl, wh;
        q45k_chunk<kFifthBit>(unit, j, k, &wl, &wh);
        lo = _mm256_dpbusd_epi32(lo, wl, broadcast4(q8 + 64 * j + 4 * k));
        hi = _mm256_dpbusd_epi32(hi, wh, broadcast4(q8 + 64 * j + 32 + 4 * k));
      }
      sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(lo, scales.scale(2 * j)));
      sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(hi, scales.scale(2 * j + 1)));
    }
    acc = _mm256_fmadd_ps(q45k_block(unit, sumi, dmins), _mm256_set1_ps(x[b].d), acc);
  }
  _mm256_storeu_ps(y, acc);
}

}  // namespace

const KernelTable& vnni_table() {
  static const KernelTable table = [] {
    KernelTable t = avx2_table();
    t.name = "avx512vnni";
    t.q4_0x8 = tile_q4_0x8;
    t.q8_0x8 = tile_x8<Q8_0Cols>;
    t.q4_kx8 = tile_kx8<q45_k_group<false>>;
    t.q5_kx8 = tile_kx8<q45_k_group<true>>;
    t.q6_kx8 = tile_kx8<q6k_group_x_col>;
    return t;
  }();
  return table;
}

}  // namespace aifn::engine::detail
