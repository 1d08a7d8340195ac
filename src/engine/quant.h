// Tensor element types and quantisation formats of ggml/GGUF: block layouts
// (identical to ggml's, byte for byte), fp16/bf16 conversion, quantise and
// dequantise rows, and the scalar reference dot products. The SIMD versions live
// in kernels_avx2.cpp and are chosen at run time by kernels.h.
// Called by the GGUF reader (sizes), the model loader, the kernels and the test
// model generator. All functions are pure: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace aifn::engine {

// ggml type ids as stored in GGUF tensor infos.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct TypeTraits {
  const char* name;
  uint32_t block_size;  // elements per block
  uint32_t type_size;   // bytes per block
  bool compute;         // the engine has kernels for it
};

// nullptr for a type id this code does not know.
const TypeTraits* type_traits(uint32_t type);
inline const char* type_name(uint32_t type) {
  const TypeTraits* t = type_traits(type);
  return t ? t->name : "unknown";
}

constexpr int kQK = 32;    // block size of the *_0 formats
constexpr int kQKK = 256;  // super-block size of the K-quants

// Q4_0: value = d * (nibble - 8); byte j holds value j (low) and j+16 (high).
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK / 2]; };
// Q8_0: value = d * q.
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK]; };
// Q4_K: 8 sub-blocks of 32; value = d*sc[j]*q - dmin*m[j], 6-bit sc/m packed in scales.
struct BlockQ4K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[kQKK / 2]; };
// Q5_K: as Q4_K with a fifth bit per value in qh.
struct BlockQ5K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[kQKK / 8]; uint8_t qs[kQKK / 2]; };
// Q6_K: 16 sub-blocks of 16; value = d * scales[j] * (q - 32), q = 4 low bits + 2 high bits.
struct BlockQ6K { uint8_t ql[kQKK / 2]; uint8_t qh[kQKK / 4]; int8_t scales[kQKK / 16]; uint16_t d; };
// Q8_K: activations for K-quant dot products; bsums = sums of 16 consecutive qs.
struct BlockQ8K { float d; int8_t qs[kQKK]; int16_t bsums[kQKK / 16]; };

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4K) == 144);
static_assert(sizeof(BlockQ5K) == 176);
static_assert(sizeof(BlockQ6K) == 210);
static_assert(sizeof(BlockQ8K) == 292);

// IEEE half <-> float, round-to-nearest-even (as F16C / ggml).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
// rows x cols halves, rows src_stride apart, into packed floats (cols apart).
void fp16_rows_to_fp32(const uint16_t* src, size_t src_stride, int rows, int cols, float* dst);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t fp32_to_bf16(float f);

// Bytes of a row of n elements of type t (n must be a multiple of the block size).
size_t row_bytes(uint32_t type, int64_t n);

// Dequantises n elements (n a multiple of the block size) from src into dst.
// Returns false for a type without kernels.
bool dequantize_row(uint32_t type, const void* src, float* dst, int64_t n);
// Quantises n floats into dst (reference quantisers, as ggml's *_ref).
bool quantize_row(uint32_t type, const float* src, void* dst, int64_t n);

// Activation quantisers used before integer dot products. Q8_0 uses
// round-half-even as ggml's AVX2 path does; Q8_K as ggml's reference.
void quantize_row_q8_0_act(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_k(const float* x, BlockQ8K* y, int64_t n);

// Scalar reference dot products of one weight row with a prepared activation.
float dot_f32_scalar(const float* w, const float* x, int64_t n);
float dot_f16_scalar(const uint16_t* w, const float* x, int64_t n);   // x already f16-rounded
float dot_bf16_scalar(const uint16_t* w, const float* x, int64_t n);
float dot_q8_0_scalar(const BlockQ8_0* w, const BlockQ8_0* x, int64_t n);
float dot_q4_0_scalar(const BlockQ4_0* w, const BlockQ8_0* x, int64_t n);
float dot_q4_k_scalar(const BlockQ4K* w, const BlockQ8K* x, int64_t n);
float dot_q5_k_scalar(const BlockQ5K* w, const BlockQ8K* x, int64_t n);
float dot_q6_k_scalar(const BlockQ6K* w, const BlockQ8K* x, int64_t n);

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block.
inline void k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace aifn::engine
