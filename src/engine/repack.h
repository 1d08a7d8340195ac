// Q4_0, Q8_0, Q4_K, Q5_K and Q6_K weights interleaved eight rows at a time, rearranged once when
// a model loads (as llama.cpp's CPU "repack" does). In the GGUF layout each row's
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
//
// Q8_0: the same with 272-byte units (8 x 34, so again a group's block b sits
// where its first row's would): bytes 0..15 the 8 rows' f16 scales, then
// eight 32-byte chunks; chunk k byte 4r + i = qs[4k + i] ^ 0x80 of row r's
// block: the weight + 128, unsigned, as vpdpbusd multiplies it (the +128
// comes off through the column corrections, as Q4_0's +8 does).
//
// Q6_K: group g, block b (256 weights) is one 1680-byte unit at ((g * nb) + b)
// * 1680, 210 bytes per row as in the GGUF. Per half n (weights 128n..128n+127)
// and k < 8, three 32-byte chunks at 144 + 96 (8n + k): byte 4r + i of the
// first is ql[64n + 4k + i] of row r, of the second ql[64n + 32 + 4k + i], of
// the third qh[32n + 4k + i], so one chunk triple holds weights l, l + 32,
// l + 64 and l + 96 (l = 4k + i) of the half, 6 bits each:
//   bytes 0..15    the 8 rows' f16 d
//   bytes 16..143  scales by pairs of sub-blocks: byte 16 + 16p + 2r + j =
//                  scales[2p + j] of row r
//
// Q4_K: group g, block b (256 weights per row) is one 1152-byte unit at
// ((g * nb) + b) * 1152, nb = cols / 256, 144 bytes per row as in the GGUF.
// The 6-bit scales and mins stay packed as the GGUF has them (12 bytes per
// row) and are unpacked by the kernel, 8 rows at once: stored unpacked (16
// bytes per row), each token read 2.8 % more bytes than the file holds.
//   bytes 0..15     the 8 rows' f16 d, row r at 2r
//   bytes 16..31    the 8 rows' f16 dmin
//   bytes 32..127   the packed scales and mins as three 32-byte words:
//                   bytes 32 + 32w + 4r .. +3 = bytes 4w..4w+3 of row r's 12
//   bytes 128..     32 chunks of 32 bytes; chunk 8j + k byte 4r + i =
//                   qs[32j + 4k + i] of row r (low nibble = weight 64j + 4k + i,
//                   high nibble = weight 64j + 32 + 4k + i)
// The kernels read a unit's header before its nibbles, front to back (reading
// it last streamed 11-13 % slower from memory).
//
// Q5_K: a Q4_K unit with the rows' fifth bits between the header and the
// nibbles, 1408 bytes per group and block, 176 per row as in the GGUF. The
// kernel reads a unit front to back, one stream (with the fifth bits at the
// end, decode ran at 0.53-0.64 of the bound against 0.72-0.85 for the GGUF
// layout: two fronts per unit):
//   bytes 0..127    as Q4_K, from the Q5_K block's d, dmin and scales
//   bytes 128..383  8 chunks of 32 bytes; chunk k byte 4r + i = qh[4k + i] of
//                   row r: bit 2j is the fifth bit of the low-nibble weight
//                   64j + 4k + i, bit 2j + 1 that of the high-nibble one
//   bytes 384..     the nibbles, as Q4_K's bytes 128..
#pragma once

#include <cstddef>
#include <cstdint>

namespace aifn::engine {

inline constexpr int kInterleaveRows = 8;
inline constexpr size_t kQ4_0x8UnitBytes = 144;

inline constexpr size_t kQ8_0x8UnitBytes = 272;
inline constexpr size_t kQ4_Kx8UnitBytes = 1152;
inline constexpr size_t kQ5_Kx8UnitBytes = 1408;
inline constexpr size_t kQ45_KxScales = 32;   // the packed scales' three words
inline constexpr size_t kQ4_KxNibbles = 128;  // where a Q4_K unit's nibbles start
inline constexpr size_t kQ5_KxFifthBits = 128, kQ5_KxNibbles = 384;
inline constexpr size_t kQ6_Kx8UnitBytes = 1680;

// Whether a matrix of this many rows can be interleaved.
inline bool can_interleave(int64_t rows) { return rows > 0 && rows % kInterleaveRows == 0; }


// Rearranges rows x cols Q4_0 weights (GGUF layout, rows row_bytes apart) into
// dst (same size). REQUIRES: can_interleave(rows), cols % 32 == 0.
void interleave_q4_0(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

// The same for Q8_0 weights.
void interleave_q8_0(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

// Rearranges rows x cols Q4_K weights into dst (same size).
// REQUIRES: can_interleave(rows), cols % 256 == 0.
void interleave_q4_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

// Rearranges rows x cols Q5_K weights into dst (same size).
// REQUIRES: can_interleave(rows), cols % 256 == 0.
void interleave_q5_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

// Rearranges rows x cols Q6_K weights into dst (same size).
// REQUIRES: can_interleave(rows), cols % 256 == 0.
void interleave_q6_k(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);

// The interleave_* function of a ggml type, or nullptr for a type that has none.
using Interleaver = void (*)(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst);
Interleaver interleaver_for(uint32_t ggml_type);

}  // namespace aifn::engine
