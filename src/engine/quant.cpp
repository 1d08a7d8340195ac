#include "engine/quant.h"

#include <algorithm>
#include <cmath>

namespace aifn::engine {
namespace {

// Round half to even, as ggml's nearest_int and the AVX2 cvtps.
inline int nearest_int(float x) { return int(std::nearbyint(x)); }

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  static const TypeTraits kF32{"F32", 1, 4, true}, kF16{"F16", 1, 2, true}, kBF16{"BF16", 1, 2, true},
      kQ4_0{"Q4_0", 32, 18, true}, kQ4_1{"Q4_1", 32, 20, false}, kQ5_0{"Q5_0", 32, 22, false},
      kQ5_1{"Q5_1", 32, 24, false}, kQ8_0{"Q8_0", 32, 34, true}, kQ8_1{"Q8_1", 32, 36, false},
      kQ2K{"Q2_K", 256, 84, false}, kQ3K{"Q3_K", 256, 110, false}, kQ4K{"Q4_K", 256, 144, true},
      kQ5K{"Q5_K", 256, 176, true}, kQ6K{"Q6_K", 256, 210, true}, kQ8K{"Q8_K", 256, 292, false};
  switch (GgmlType(type)) {
    case GgmlType::F32: return &kF32;
    case GgmlType::F16: return &kF16;
    case GgmlType::BF16: return &kBF16;
    case GgmlType::Q4_0: return &kQ4_0;
    case GgmlType::Q4_1: return &kQ4_1;
    case GgmlType::Q5_0: return &kQ5_0;
    case GgmlType::Q5_1: return &kQ5_1;
    case GgmlType::Q8_0: return &kQ8_0;
    case GgmlType::Q8_1: return &kQ8_1;
    case GgmlType::Q2_K: return &kQ2K;
    case GgmlType::Q3_K: return &kQ3K;
    case GgmlType::Q4_K: return &kQ4K;
    case GgmlType::Q5_K: return &kQ5K;
    case GgmlType::Q6_K: return &kQ6K;
    case GgmlType::Q8_K: return &kQ8K;
  }
  return nullptr;
}

size_t row_bytes(uint32_t type, int64_t n) {
  const TypeTraits* t = type_traits(type);
  return t ? size_t(n / t->block_size) * t->type_size : 0;
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000 | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((man & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7FFFFFFF;
  if (ax >= 0x7F800000) return uint16_t(sign | 0x7C00 | (ax > 0x7F800000 ? 0x200 : 0));  // inf/nan
  if (ax >= 0x477FF000) return uint16_t(sign | 0x7C00);  // rounds to >= 65520: inf
  if (ax < 0x38800000) {  // below the smallest normal half: subnormal or zero
    if (ax < 0x33000000) return uint16_t(sign);  // < 2^-25 rounds to zero
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;  // 14..24
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return uint16_t(sign | q);
  }
  uint32_t r = ax + 0xC8000FFF + ((ax >> 13) & 1);  // rebias exponent (-112<<23) and round to even
  return uint16_t(sign | (r >> 13));
}

void fp16_rows_to_fp32(const uint16_t* src, size_t src_stride, int rows, int cols, float* dst) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[size_t(r) * size_t(cols) + size_t(c)] = fp16_to_fp32(src[size_t(r) * src_stride + size_t(c)]);
}

uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return uint16_t((u >> 16) | 64);  // quiet nan
  return uint16_t((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
}

// ---- dequantisation ----

static void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = d * float((b[i].qs[j] & 0xF) - 8);
      y[i * kQK + j + 16] = d * float((b[i].qs[j] >> 4) - 8);
    }
  }
}

static void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[i * kQK + j] = d * float(b[i].qs[j]);
  }
}

static void dequant_q4_k(const BlockQ4K* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 4; ++j) {  // 64 values: two sub-blocks sharing 32 bytes
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, &sc, &m);
      float d1 = d * sc, m1 = dmin * m;
      k_scale_min(2 * j + 1, b[i].scales, &sc, &m);
      float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

static void dequant_q5_k(const BlockQ5K* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc, m;
      k_scale_min(2 * j, b[i].scales, &sc, &m);
      float d1 = d * sc, m1 = dmin * m;
      k_scale_min(2 * j + 1, b[i].scales, &sc, &m);
      float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      ql += 32;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

// Q6_K value l of 128-value half h: the 4 quarters interleave low/high nibbles of ql
// and 2-bit fields of qh.
static inline int q6_value(const uint8_t* ql, const uint8_t* qh, int quarter, int l) {
  int lo = quarter & 1 ? ql[l + 32] : ql[l];
  lo = quarter >= 2 ? lo >> 4 : lo & 0xF;
  int hi = (qh[l] >> (2 * quarter)) & 3;
  return (lo | (hi << 4)) - 32;
}

static void dequant_q6_k(const BlockQ6K* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    float d = fp16_to_fp32(b[i].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      for (int quarter = 0; quarter < 4; ++quarter)
        for (int l = 0; l < 32; ++l)
          y[128 * h + 32 * quarter + l] = d * float(sc[l / 16 + 2 * quarter]) * float(q6_value(ql, qh, quarter, l));
    }
    y += kQKK;
  }
}

bool dequantize_row(uint32_t type, const void* src, float* dst, int64_t n) {
  switch (GgmlType(type)) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); return true;
    case GgmlType::F16: {
      const uint8_t* p = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = fp16_to_fp32(h);
      }
      return true;
    }
    case GgmlType::BF16: {
      const uint8_t* p = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      return true;
    }
    case GgmlType::Q4_0: dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, n); return true;
    case GgmlType::Q8_0: dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, n); return true;
    case GgmlType::Q4_K: dequant_q4_k(static_cast<const BlockQ4K*>(src), dst, n); return true;
    case GgmlType::Q5_K: dequant_q5_k(static_cast<const BlockQ5K*>(src), dst, n); return true;
    case GgmlType::Q6_K: dequant_q6_k(static_cast<const BlockQ6K*>(src), dst, n); return true;
    default: return false;
  }
}

// ---- quantisation ----

static void quant_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[i * kQK + j]));
    float d = amax / 127.f;
    float id = d != 0 ? 1.f / d : 0.f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(std::round(x[i * kQK + j] * id));
  }
}

static void quant_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    const float* v = x + i * kQK;
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(v[j]) > amax) {
        amax = std::fabs(v[j]);
        max = v[j];
      }
    }
    float d = max / -8.f;
    float id = d != 0 ? 1.f / d : 0.f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      int a = std::min(15, int(int8_t(v[j] * id + 8.5f)));
      int b = std::min(15, int(int8_t(v[j + 16] * id + 8.5f)));
      y[i].qs[j] = uint8_t(a | (b << 4));
    }
  }
}

// K-quant quantisers: a simple min/max fit per sub-block, then 6-bit scales and
// mins relative to the largest. Not ggml's iterative search (those are only for
// our generated test models), but the layout is ggml's.
struct SubFit {
  float scale[8], min[8];
};

static void fit_subblocks(const float* v, int levels, SubFit* f) {
  for (int j = 0; j < 8; ++j) {
    float lo = 0, hi = 0;
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, v[32 * j + l]);
      hi = std::max(hi, v[32 * j + l]);
    }
    f->scale[j] = (hi - lo) / float(levels);
    f->min[j] = -lo;
  }
}

static void pack_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      s[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

// Shared by Q4_K (levels 15) and Q5_K (levels 31): fills d, dmin, scales and the
// integer quants q[256] in 0..levels.
static void quant_k_common(const float* v, int levels, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                           uint8_t* q) {
  SubFit f;
  fit_subblocks(v, levels, &f);
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    max_scale = std::max(max_scale, f.scale[j]);
    max_min = std::max(max_min, f.min[j]);
  }
  float inv_s = max_scale > 0 ? 63.f / max_scale : 0.f;
  float inv_m = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = uint8_t(std::min(63, nearest_int(inv_s * f.scale[j])));
    lm[j] = uint8_t(std::min(63, nearest_int(inv_m * f.min[j])));
  }
  std::memset(scales, 0, 12);
  pack_scales(ls, lm, scales);
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);
  float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k_scale_min(j, scales, &sc, &m);
    float ds = d * sc, dm = dmin * m;
    for (int l = 0; l < 32; ++l) {
      int qv = ds > 0 ? nearest_int((v[32 * j + l] + dm) / ds) : 0;
      q[32 * j + l] = uint8_t(std::clamp(qv, 0, levels));
    }
  }
}

static void quant_q4_k(const float* x, BlockQ4K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t q[kQKK];
    quant_k_common(x + i * kQKK, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) y[i].qs[32 * j + l] = uint8_t(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
  }
}

static void quant_q5_k(const float* x, BlockQ5K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t q[kQKK];
    quant_k_common(x + i * kQKK, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        int a = q[64 * j + l], b = q[64 * j + 32 + l];
        y[i].qs[32 * j + l] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
        if (a & 16) y[i].qh[l] |= uint8_t(1 << (2 * j));
        if (b & 16) y[i].qh[l] |= uint8_t(2 << (2 * j));
      }
    }
  }
}

static void quant_q6_k(const float* x, BlockQ6K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* v = x + i * kQKK;
    float sub[16];
    float max_abs_scale = 0, max_scale = 0;
    for (int j = 0; j < 16; ++j) {
      float amax = 0, mx = 0;
      for (int l = 0; l < 16; ++l) {
        if (std::fabs(v[16 * j + l]) > amax) {
          amax = std::fabs(v[16 * j + l]);
          mx = v[16 * j + l];
        }
      }
      sub[j] = mx / -32.f;  // q = -32 reaches the extreme value exactly
      if (std::fabs(sub[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(sub[j]);
        max_scale = sub[j];
      }
    }
    float iscale = max_scale != 0 ? -128.f / max_scale : 0.f;
    y[i].d = fp32_to_fp16(max_scale != 0 ? 1.f / iscale : 0.f);
    float d = fp16_to_fp32(y[i].d);
    uint8_t q[kQKK];
    for (int j = 0; j < 16; ++j) {
      y[i].scales[j] = int8_t(std::min(127, nearest_int(iscale * sub[j])));
      float ds = d * y[i].scales[j];
      for (int l = 0; l < 16; ++l) {
        int qv = ds != 0 ? nearest_int(v[16 * j + l] / ds) : 0;
        q[16 * j + l] = uint8_t(std::clamp(qv, -32, 31) + 32);
      }
    }
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const uint8_t* qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
      }
    }
  }
}

bool quantize_row(uint32_t type, const float* src, void* dst, int64_t n) {
  switch (GgmlType(type)) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * 4); return true;
    case GgmlType::F16: {
      uint8_t* p = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = fp32_to_fp16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return true;
    }
    case GgmlType::BF16: {
      uint8_t* p = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = fp32_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return true;
    }
    case GgmlType::Q4_0: quant_q4_0_ref(src, static_cast<BlockQ4_0*>(dst), n); return true;
    case GgmlType::Q8_0: quant_q8_0_ref(src, static_cast<BlockQ8_0*>(dst), n); return true;
    case GgmlType::Q4_K: quant_q4_k(src, static_cast<BlockQ4K*>(dst), n); return true;
    case GgmlType::Q5_K: quant_q5_k(src, static_cast<BlockQ5K*>(dst), n); return true;
    case GgmlType::Q6_K: quant_q6_k(src, static_cast<BlockQ6K*>(dst), n); return true;
    default: return false;
  }
}

void quantize_row_q8_0_act(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[i * kQK + j]));
    y[i].d = fp32_to_fp16(amax / 127.f);
    float id = amax != 0 ? 127.f / amax : 0.f;
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(nearest_int(x[i * kQK + j] * id));
  }
}

void quantize_row_q8_k(const float* x, BlockQ8K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float* v = x + i * kQKK;
    float amax = 0, max = 0;
    for (int j = 0; j < kQKK; ++j) {
      if (std::fabs(v[j]) > amax) {
        amax = std::fabs(v[j]);
        max = v[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float iscale = -127.f / max;
    for (int j = 0; j < kQKK; ++j) y[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * v[j])));
    for (int j = 0; j < kQKK / 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[i].qs[16 * j + l];
      y[i].bsums[j] = int16_t(s);
    }
    y[i].d = 1.f / iscale;
  }
}

// ---- scalar dot products ----

float dot_f32_scalar(const float* w, const float* x, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += w[i + k] * x[i + k];
  float s = 0;
  for (; i < n; ++i) s += w[i] * x[i];
  for (float a : acc) s += a;
  return s;
}

float dot_f16_scalar(const uint16_t* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
  return s;
}

float dot_bf16_scalar(const uint16_t* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
  return s;
}

float dot_q8_0_scalar(const BlockQ8_0* w, const BlockQ8_0* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += int(w[b].qs[j]) * int(x[b].qs[j]);
    s += fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d) * float(sum);
  }
  return s;
}

float dot_q4_0_scalar(const BlockQ4_0* w, const BlockQ8_0* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sum += ((w[b].qs[j] & 0xF) - 8) * int(x[b].qs[j]);
      sum += ((w[b].qs[j] >> 4) - 8) * int(x[b].qs[j + 16]);
    }
    s += fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d) * float(sum);
  }
  return s;
}

float dot_q4_k_scalar(const BlockQ4K* w, const BlockQ8K* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / kQKK; ++b) {
    int sumi = 0, summ = 0;
    const uint8_t* q = w[b].qs;
    const int8_t* a = x[b].qs;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc1, m1, sc2, m2;
      k_scale_min(2 * j, w[b].scales, &sc1, &m1);
      k_scale_min(2 * j + 1, w[b].scales, &sc2, &m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        s1 += (q[l] & 0xF) * a[l];
        s2 += (q[l] >> 4) * a[l + 32];
      }
      sumi += sc1 * s1 + sc2 * s2;
      summ += m1 * (x[b].bsums[4 * j] + x[b].bsums[4 * j + 1]) + m2 * (x[b].bsums[4 * j + 2] + x[b].bsums[4 * j + 3]);
      q += 32;
      a += 64;
    }
    s += x[b].d * (fp16_to_fp32(w[b].d) * float(sumi) - fp16_to_fp32(w[b].dmin) * float(summ));
  }
  return s;
}

float dot_q5_k_scalar(const BlockQ5K* w, const BlockQ8K* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / kQKK; ++b) {
    int sumi = 0, summ = 0;
    const uint8_t* q = w[b].qs;
    const int8_t* a = x[b].qs;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc1, m1, sc2, m2;
      k_scale_min(2 * j, w[b].scales, &sc1, &m1);
      k_scale_min(2 * j + 1, w[b].scales, &sc2, &m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        int h1 = (w[b].qh[l] >> (2 * j)) & 1, h2 = (w[b].qh[l] >> (2 * j + 1)) & 1;
        s1 += ((q[l] & 0xF) | (h1 << 4)) * a[l];
        s2 += ((q[l] >> 4) | (h2 << 4)) * a[l + 32];
      }
      sumi += sc1 * s1 + sc2 * s2;
      summ += m1 * (x[b].bsums[4 * j] + x[b].bsums[4 * j + 1]) + m2 * (x[b].bsums[4 * j + 2] + x[b].bsums[4 * j + 3]);
      q += 32;
      a += 64;
    }
    s += x[b].d * (fp16_to_fp32(w[b].d) * float(sumi) - fp16_to_fp32(w[b].dmin) * float(summ));
  }
  return s;
}

float dot_q6_k_scalar(const BlockQ6K* w, const BlockQ8K* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / kQKK; ++b) {
    int sumi = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* sc = w[b].scales + 8 * h;
      const int8_t* a = x[b].qs + 128 * h;
      for (int quarter = 0; quarter < 4; ++quarter) {
        int s0 = 0, s1 = 0;
        for (int l = 0; l < 16; ++l) s0 += q6_value(ql, qh, quarter, l) * a[32 * quarter + l];
        for (int l = 16; l < 32; ++l) s1 += q6_value(ql, qh, quarter, l) * a[32 * quarter + l];
        sumi += sc[2 * quarter] * s0 + sc[2 * quarter + 1] * s1;
      }
    }
    s += x[b].d * fp16_to_fp32(w[b].d) * float(sumi);
  }
  return s;
}

}  // namespace aifn::engine
