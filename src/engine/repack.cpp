#include "engine/repack.h"

#include <cstring>

#include "engine/quant.h"

namespace aifn::engine {

namespace {

// The walk every interleaved layout shares: units ordered by group of 8 rows,
// then by block column; fill(unit, block of row r, r) writes row r's part of
// a unit of `unit_bytes` bytes.
template <typename Block, int64_t kBlockWeights, typename Fill>
void for_each_unit(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst, size_t unit_bytes, Fill&& fill) {
  const int64_t nb = cols / kBlockWeights;
  const size_t row_bytes = size_t(nb) * sizeof(Block);
  for (int64_t g = 0; g < rows / kInterleaveRows; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* unit = dst + size_t(g * nb + b) * unit_bytes;
      for (int r = 0; r < kInterleaveRows; ++r)
        fill(unit, *(reinterpret_cast<const Block*>(src + size_t(g * kInterleaveRows + r) * row_bytes) + b), r);
    }
}

// Q4_0 and Q8_0: a unit is the 8 rows' f16 scales, then the blocks' quant
// bytes 4 at a time, row after row (sizeof qs / 4 chunks of 32 bytes), each
// XORed with kFlip (Q8_0's 0x80 makes its signed weights unsigned).
template <typename Block, uint8_t kFlip>
void interleave_32_blocks(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  constexpr size_t kChunks = sizeof(Block::qs) / 4;
  for_each_unit<Block, kQK>(src, rows, cols, dst, 16 + 32 * kChunks, [](uint8_t* unit, const Block& blk, int r) {
    std::memcpy(unit + 2 * r, &blk.d, 2);
    for (size_t k = 0; k < kChunks; ++k)
      for (int i = 0; i < 4; ++i) unit[16 + 32 * k + 4 * size_t(r) + size_t(i)] = uint8_t(blk.qs[4 * k + size_t(i)] ^ kFlip);
  });
}

// Row r's share of a Q4_K unit, from a Q4_K or Q5_K block (same fields), with
// the nibbles at `nibbles`.
template <typename Block>
void fill_q4_k_part(uint8_t* unit, const Block& blk, int r, size_t nibbles) {
  std::memcpy(unit + 2 * r, &blk.d, 2);
  std::memcpy(unit + 16 + 2 * r, &blk.dmin, 2);
  for (int w = 0; w < 3; ++w) std::memcpy(unit + kQ45_KxScales + 32 * w + 4 * r, blk.scales + 4 * w, 4);
  for (int j = 0; j < 4; ++j)
    for (int k = 0; k < 8; ++k) std::memcpy(unit + nibbles + 32 * (8 * j + k) + 4 * r, blk.qs + 32 * j + 4 * k, 4);
}

static_assert(16 + 32 * sizeof(BlockQ4_0::qs) / 4 == kQ4_0x8UnitBytes);
static_assert(16 + 32 * sizeof(BlockQ8_0::qs) / 4 == kQ8_0x8UnitBytes);

}  // namespace

void interleave_q4_0(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  interleave_32_blocks<BlockQ4_0, 0>(src, rows, cols, dst);
}

void interleave_q8_0(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  interleave_32_blocks<BlockQ8_0, 0x80>(src, rows, cols, dst);
}

void interleave_q4_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  for_each_unit<BlockQ4K, kQKK>(src, rows, cols, dst, kQ4_Kx8UnitBytes, [](uint8_t* unit, const BlockQ4K& blk, int r) {
    fill_q4_k_part(unit, blk, r, kQ4_KxNibbles);
  });
}

void interleave_q5_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  for_each_unit<BlockQ5K, kQKK>(src, rows, cols, dst, kQ5_Kx8UnitBytes, [](uint8_t* unit, const BlockQ5K& blk, int r) {
    fill_q4_k_part(unit, blk, r, kQ5_KxNibbles);
    for (int k = 0; k < 8; ++k) std::memcpy(unit + kQ5_KxFifthBits + 32 * k + 4 * r, blk.qh + 4 * k, 4);
  });
}

static_assert(kQ4_KxNibbles == kQ45_KxScales + 96 && kQ4_KxNibbles + 1024 == kQ4_Kx8UnitBytes &&
              kQ4_Kx8UnitBytes == 8 * sizeof(BlockQ4K));
static_assert(kQ5_KxFifthBits == kQ4_KxNibbles && kQ5_KxNibbles == kQ5_KxFifthBits + 256 &&
              kQ5_KxNibbles + 1024 == kQ5_Kx8UnitBytes && kQ5_Kx8UnitBytes == 8 * sizeof(BlockQ5K));

void interleave_q6_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  for_each_unit<BlockQ6K, kQKK>(src, rows, cols, dst, kQ6_Kx8UnitBytes, [](uint8_t* unit, const BlockQ6K& blk, int r) {
    std::memcpy(unit + 2 * r, &blk.d, 2);
    for (int s = 0; s < 16; ++s) unit[16 + 16 * (s / 2) + 2 * r + s % 2] = uint8_t(blk.scales[s]);
    for (int n = 0; n < 2; ++n)
      for (int k = 0; k < 8; ++k) {
        uint8_t* chunks = unit + 144 + 96 * (8 * n + k) + 4 * r;
        std::memcpy(chunks, blk.ql + 64 * n + 4 * k, 4);
        std::memcpy(chunks + 32, blk.ql + 64 * n + 32 + 4 * k, 4);
        std::memcpy(chunks + 64, blk.qh + 32 * n + 4 * k, 4);
      }
  });
}

static_assert(144 + 96 * 16 == kQ6_Kx8UnitBytes && kQ6_Kx8UnitBytes == 8 * sizeof(BlockQ6K));

Interleaver interleaver_for(uint32_t ggml_type) {
  switch (GgmlType(ggml_type)) {
    case GgmlType::Q4_0: return interleave_q4_0;
    case GgmlType::Q8_0: return interleave_q8_0;
    case GgmlType::Q4_K: return interleave_q4_k;
    case GgmlType::Q5_K: return interleave_q5_k;
    case GgmlType::Q6_K: return interleave_q6_k;
    default: return nullptr;
  }
}

}  // namespace aifn::engine
