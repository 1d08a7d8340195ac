// aifn-kernel-bench: how fast each interleaved decode kernel (one activation
// column, the generation path) streams weights on one thread, in GB/s of
// weights, from L2 (a 192 KiB matrix read again and again) and from memory
// (512 MiB on huge pages, read once per pass). Best of 5 passes, for every
// kernel table this CPU can run (avx2; avx512vnni with one decode stream and with several, where
// present; a kernel that two tables share is measured once).
// From L2 shows the kernel's arithmetic; from memory, whether it keeps up
// with a core's share of the memory bandwidth (decode's bound).
//   aifn-kernel-bench [--types q4_0,q8_0,q4_k,q5_k,q6_k] [--mib 512]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "engine/huge_buffer.h"
#include "engine/kernels.h"
#include "engine/matmul.h"
#include "engine/quant.h"
#include "engine/repack.h"
#include "engine/testmodel.h"

using namespace aifn::engine;

namespace {

constexpr int64_t kCols = 2048;  // TinyLlama's n_embd: the rows of most matrices

// Interleaved weights of `rows` random rows (64 distinct rows repeated: the
// kernels' speed does not depend on the values).
HugeBuffer make_weights(GgmlType t, int64_t rows) {
  const size_t rb = row_bytes(uint32_t(t), kCols);
  std::vector<uint8_t> src(size_t(rows) * rb);
  std::vector<float> row(static_cast<size_t>(kCols));
  uint32_t seed = 12345;
  for (int64_t r = 0; r < std::min<int64_t>(rows, 64); ++r) {
    for (float& v : row) {
      seed = seed * 1664525u + 1013904223u;
      v = float(int32_t(seed >> 8) - (1 << 23)) / float(1 << 23);
    }
    quantize_row(uint32_t(t), row.data(), src.data() + size_t(r) * rb, kCols);
  }
  for (int64_t r = 64; r < rows; ++r) std::memcpy(src.data() + size_t(r) * rb, src.data() + size_t(r % 64) * rb, rb);
  HugeBuffer out(size_t(rows) * row_bytes(uint32_t(t), kCols));
  if (out.data() != nullptr) interleaver_for(uint32_t(t))(src.data(), rows, kCols, out.data());
  return out;
}

// GB/s of weights for one kernel over `rows` rows, best of 5 passes of `calls` calls.
double measure(TileFn tile, const uint8_t* w, size_t stride, int64_t rows, const std::vector<uint8_t>& act,
               int calls) {
  std::vector<float> y(static_cast<size_t>(rows));
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) tile(w, stride, int(rows), act.data(), act.size(), 1, kCols, y.data(), size_t(rows));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(rows) * double(stride) * calls / secs / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string types = "q4_0,q8_0,q4_k,q5_k,q6_k";
  size_t mib = 512;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--types") types = v;
    else if (a == "--mib") mib = size_t(std::max(1, std::atoi(v.c_str())));
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::vector<const KernelTable*> tables;
  if (const KernelTable* t = avx2_kernels()) tables.push_back(t);
  if (const KernelTable* t = vnni_kernels(1)) tables.push_back(t);
  if (const KernelTable* t = vnni_kernels(kSeveralStreams)) tables.push_back(t);
  if (tables.empty()) {
    std::fprintf(stderr, "this CPU has no SIMD kernel table (AVX2/FMA/F16C) to measure\n");
    return 1;
  }
  std::vector<float> x(static_cast<size_t>(kCols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8.f;
  std::stringstream ss(types);
  for (std::string name; std::getline(ss, name, ',');) {
    auto type = parse_type_name(name);
    if (!type || interleaver_for(uint32_t(*type)) == nullptr) {
      std::fprintf(stderr, "no interleaved kernel for '%s'\n", name.c_str());
      return 2;
    }
    const size_t stride = row_bytes(uint32_t(*type), kCols);
    const int64_t l2_rows = int64_t((size_t(192) << 10) / stride) / 8 * 8;
    const int64_t mem_rows = int64_t((mib << 20) / stride) / 8 * 8;
    HugeBuffer l2 = make_weights(*type, l2_rows), mem = make_weights(*type, mem_rows);
    if (l2.data() == nullptr || mem.data() == nullptr) {
      std::fprintf(stderr, "out of memory for %zu MiB of weights\n", mib);
      return 1;
    }
    std::vector<TileFn> measured;  // a kernel that two tables share is measured once
    for (const KernelTable* k : tables) {
      const TileFn tile = k->for_layout(uint32_t(*type), true);
      if (std::find(measured.begin(), measured.end(), tile) != measured.end()) continue;
      measured.push_back(tile);
      std::vector<uint8_t> act(act_bytes(uint32_t(*type), kCols));
      const bool q8_0 = *type == GgmlType::Q4_0 || *type == GgmlType::Q8_0;
      (q8_0 ? k->prepare_q8_0 : k->prepare_q8_k)(x.data(), kCols, act.data());
      const double from_l2 = measure(tile, l2.data(), stride, l2_rows, act, 2000);
      const double from_mem = measure(tile, mem.data(), stride, mem_rows, act, 1);
      std::printf("kernel_bench type=%s table=%s l2_gbs=%.1f memory_gbs=%.1f\n", name.c_str(), k->name, from_l2,
                  from_mem);
      std::printf("bench kernel_%s_%s_l2 %.1f GB/s\nbench kernel_%s_%s_memory %.1f GB/s\n", name.c_str(), k->name,
                  from_l2, name.c_str(), k->name, from_mem);
    }
  }
  return 0;
}
