// Q4_0 weights interleaved eight rows at a time, rearranged once when a model
// loads (as llama.cpp's CPU "repack" does). In the GGUF layout each row's
// blocks are summed on their own, so every 32-weight block ends in a
// horizontal sum; interleaved, one 32-byte vector holds 4 weights of each of 8
// rows, so the integer products of 8 rows accumulate in 8 lanes with no
// horizontal step, and one FMA with the 8 rows' scales finishes a block.
// Token generation is bound by these kernels' instructions per weight byte.
//
// Layout: rows are grouped by 8; group g, block b is one 144-byte unit at
// ((g * nb) + b) * 144 (nb = cols / 32), which is also where the group's
// first row would start in the GGUF layout (8 rows x nb x 18 bytes):
//   bytes 0..15    the 8 rows' f16 block scales, row r at 2r
//   bytes 16..143  four 32-byte chunks; chunk k byte 4r + i = qs[4k + i] of
//                  row r's block (low nibble = weight 4k + i, high nibble =
//                  weight 16 + 4k + i)
#pragma once

#include <cstddef>
#include <cstdint>

namespace aifn::engine {

inline constexpr int kInterleaveRows = 8;
inline constexpr size_t kQ4_0x8UnitBytes = 144;

// Whether a Q4_0 matrix of this many rows can be interleaved.
inline bool can_interleave_q4_0(int64_t rows) { return rows > 0 && rows % kInterleaveRows == 0; }

// Rearranges rows x cols Q4_0 weights (GGUF layout, rows row_bytes apart) into
// dst (same size). REQUIRES: can_interleave_q4_0(rows), cols % 32 == 0.
void interleave_q4_0(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

}  // namespace aifn::engine
