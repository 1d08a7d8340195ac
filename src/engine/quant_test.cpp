#include "engine/quant.h"
#include "engine/repack.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/kernels.h"
#include "engine/matmul.h"

namespace aifn::engine {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

const uint32_t kTypes[] = {uint32_t(GgmlType::F32),  uint32_t(GgmlType::F16),  uint32_t(GgmlType::BF16),
                           uint32_t(GgmlType::Q8_0), uint32_t(GgmlType::Q4_0), uint32_t(GgmlType::Q4_K),
                           uint32_t(GgmlType::Q5_K), uint32_t(GgmlType::Q6_K)};

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_fp32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << h;
  }
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(fp32_to_fp16(1.f + std::ldexp(1.f, -11)), 0x3C00);      // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.f + 3 * std::ldexp(1.f, -11)), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(70000.f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -26)), 0);
  EXPECT_EQ(bf16_to_fp32(fp32_to_bf16(1.5f)), 1.5f);
}

// Largest error a format may make on N(0,1) data (per element, relative to the block's max).
double tolerance(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 2e-3;
    case GgmlType::BF16: return 1.6e-2;
    case GgmlType::Q8_0: return 1.0 / 127;
    case GgmlType::Q6_K: return 0.05;
    case GgmlType::Q5_K: return 0.1;
    default: return 0.2;
  }
}

TEST(Quant, QuantizeDequantizeRoundTrips) {
  const int64_t n = 1024;
  std::vector<float> x = random_floats(n, 7);
  for (uint32_t t : kTypes) {
    std::vector<uint8_t> q(row_bytes(t, n));
    ASSERT_TRUE(quantize_row(t, x.data(), q.data(), n));
    std::vector<float> y(n);
    ASSERT_TRUE(dequantize_row(t, q.data(), y.data(), n));
    double amax = 0, err = 0;
    for (int64_t i = 0; i < n; ++i) {
      amax = std::max(amax, double(std::fabs(x[i])));
      err = std::max(err, double(std::fabs(x[i] - y[i])));
    }
    EXPECT_LE(err, tolerance(t) * amax + 1e-7) << type_name(t);
    // Quantising the dequantised values again is stable for the *_0 formats.
    if (t == uint32_t(GgmlType::Q8_0) || t == uint32_t(GgmlType::Q4_0)) {
      std::vector<uint8_t> q2(q.size());
      quantize_row(t, y.data(), q2.data(), n);
      std::vector<float> y2(n);
      dequantize_row(t, q2.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], y2[i], 1e-6 * amax) << type_name(t);
    }
  }
}

TEST(Quant, Q4_0LayoutMatchesGgml) {
  // Byte j holds value j in its low nibble and j+16 in its high nibble.
  BlockQ4_0 b{};
  b.d = fp32_to_fp16(1.f);
  b.qs[0] = 0x9A;  // value 0 = 10-8 = 2, value 16 = 9-8 = 1
  float y[32];
  dequantize_row(uint32_t(GgmlType::Q4_0), &b, y, 32);
  EXPECT_EQ(y[0], 2.f);
  EXPECT_EQ(y[16], 1.f);
  EXPECT_EQ(y[1], -8.f);
}

TEST(Quant, ActivationQ8_0RoundsHalfToEven) {
  std::vector<float> x(32, 0.f);
  x[0] = 127.f;  // d = 1
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  BlockQ8_0 b;
  quantize_row_q8_0_act(x.data(), &b, 32);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], 4);
  EXPECT_EQ(b.qs[3], -2);
}

// Dequantised activation for checking dot products against plain floats.
std::vector<float> act_values(uint32_t wt, const std::vector<uint8_t>& act, int64_t n) {
  std::vector<float> v(n);
  switch (GgmlType(wt)) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0: dequantize_row(uint32_t(GgmlType::Q8_0), act.data(), v.data(), n); break;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: {
      const BlockQ8K* b = reinterpret_cast<const BlockQ8K*>(act.data());
      for (int64_t i = 0; i < n; ++i) v[i] = b[i / 256].d * b[i / 256].qs[i % 256];
      break;
    }
    default: std::memcpy(v.data(), act.data(), size_t(n) * 4);
  }
  return v;
}

TEST(Kernels, ScalarAndSimdAgreeWithDequantisedProducts) {
  ThreadPool pool(1);
  const KernelTable* simd = avx2_kernels();
  if (simd == nullptr) GTEST_LOG_(INFO) << "no AVX2 on this CPU: checking the scalar kernels only";
  for (int64_t k : {256, 512, 2048}) {
    const int nr = 5, nc = 7;  // odd sizes reach the 4-, 2- and 1-column paths
    std::vector<float> wf = random_floats(size_t(nr * k), 11);
    std::vector<float> xf = random_floats(size_t(nc * k), 12, 2.f);
    for (uint32_t t : kTypes) {
      size_t rb = row_bytes(t, k);
      std::vector<uint8_t> w(rb * nr);
      for (int r = 0; r < nr; ++r) quantize_row(t, wf.data() + r * k, w.data() + r * rb, k);
      size_t ab = act_bytes(t, k);
      std::vector<uint8_t> act(ab * nc);
      prepare_activations(t, xf.data(), nc, k, act.data(), pool, scalar_kernels());
      std::vector<float> ys(nr * nc), yv(nr * nc, 0.f);
      scalar_kernels().for_type(t)(w.data(), rb, nr, act.data(), ab, nc, k, ys.data(), nr);
      if (simd != nullptr) simd->for_type(t)(w.data(), rb, nr, act.data(), ab, nc, k, yv.data(), nr);
      for (int c = 0; c < nc; ++c) {
        std::vector<uint8_t> one(act.begin() + c * ab, act.begin() + (c + 1) * ab);
        std::vector<float> xa = act_values(t, one, k);
        for (int r = 0; r < nr; ++r) {
          std::vector<float> wr(k);
          dequantize_row(t, w.data() + r * rb, wr.data(), k);
          double ref = 0, mag = 0;
          for (int64_t i = 0; i < k; ++i) {
            ref += double(wr[i]) * xa[i];
            mag += std::fabs(double(wr[i]) * xa[i]);
          }
          double tol = 1e-5 * mag + 1e-5;
          EXPECT_NEAR(ys[c * nr + r], ref, tol) << type_name(t) << " scalar k=" << k;
          if (simd != nullptr) {
            EXPECT_NEAR(yv[c * nr + r], ys[c * nr + r], tol) << type_name(t) << " avx2 k=" << k;
          }
        }
      }
    }
  }
}

// The SIMD tables this CPU can run (AVX2, and AVX-512 VNNI for the
// interleaved kernels, decoding with one stream and with several).
std::vector<const KernelTable*> simd_tables() {
  std::vector<const KernelTable*> v;
  for (const KernelTable* t : {avx2_kernels(), vnni_kernels(1), vnni_kernels(kSeveralStreams)})
    if (t != nullptr) v.push_back(t);
  if (vnni_kernels() == nullptr) GTEST_LOG_(INFO) << "no AVX-512 VNNI on this CPU: its kernels are not checked";
  return v;
}

TEST(Kernels, InterleavedWeightsAgreeWithTheGgufLayout) {
  ThreadPool pool(1);
  const std::vector<const KernelTable*> simd = simd_tables();
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const uint32_t t = uint32_t(type);
    for (int64_t k : {256, 2048}) {
      // Seven groups: four decode streams take groups 0 2 4 6, then 1 3 5;
      // three take 0 3 6, then 1 4, then 2 5; two take 0 4, 1 5, 2 6, then 3
      // alone; the prompt kernels take three pairs and a lone group. 4 + 3
      // columns reach every column path.
      const int nr = 56, nc = 7;
      std::vector<float> wf = random_floats(size_t(nr * k), 31);
      std::vector<float> xf = random_floats(size_t(nc * k), 32, 2.f);
      const size_t rb = row_bytes(t, k);
      std::vector<uint8_t> w(rb * nr), packed(rb * nr);  // interleaving keeps a matrix's size
      for (int r = 0; r < nr; ++r) quantize_row(t, wf.data() + r * k, w.data() + r * rb, k);
      interleaver_for(t)(w.data(), nr, k, packed.data());
      const size_t ab = act_bytes(t, k);
      std::vector<uint8_t> act(ab * nc);
      prepare_activations(t, xf.data(), nc, k, act.data(), pool, scalar_kernels());
      std::vector<float> ref(nr * nc), ys(nr * nc);
      scalar_kernels().for_type(t)(w.data(), rb, nr, act.data(), ab, nc, k, ref.data(), nr);
      scalar_kernels().for_layout(t, true)(packed.data(), rb, nr, act.data(), ab, nc, k, ys.data(), nr);
      for (int i = 0; i < nr * nc; ++i)
        EXPECT_NEAR(ys[i], ref[i], 1e-4 * std::fabs(ref[i]) + 1e-3) << type_name(t) << " scalar k=" << k << " i=" << i;
      for (const KernelTable* table : simd) {
        std::vector<float> yv(nr * nc), second(nr * nc, 0.f);
        table->for_layout(t, true)(packed.data(), rb, nr, act.data(), ab, nc, k, yv.data(), nr);
        // The groups after the first alone, as matmul hands out row chunks.
        table->for_layout(t, true)(packed.data() + 8 * rb, rb, nr - 8, act.data(), ab, nc, k, second.data() + 8, nr);
        for (int i = 0; i < nr * nc; ++i) {
          EXPECT_NEAR(yv[i], ref[i], 1e-4 * std::fabs(ref[i]) + 1e-3)
              << type_name(t) << " " << table->name << " k=" << k << " i=" << i;
          if (i % nr >= 8) {
            EXPECT_EQ(second[i], yv[i]) << type_name(t) << " " << table->name << " k=" << k << " i=" << i;
          }
        }
        // One column at a time, as decode calls them (the paths that take two groups at once).
        for (int c = 0; c < nc; ++c) {
          std::vector<float> one(nr);
          table->for_layout(t, true)(packed.data(), rb, nr, act.data() + c * ab, ab, 1, k, one.data(), nr);
          for (int r = 0; r < nr; ++r)
            EXPECT_NEAR(one[r], ref[c * nr + r], 1e-4 * std::fabs(ref[c * nr + r]) + 1e-3)
                << type_name(t) << " " << table->name << " one column k=" << k << " c=" << c << " r=" << r;
        }
      }
    }
  }
}

TEST(Kernels, WeightedSumMatchesDoubleReference) {
  const KernelTable* simd = avx2_kernels();
  for (int dim : {1, 7, 8, 40, 64, 128}) {  // the 32-, 8- and 1-wide paths
    const int n = 37;
    const size_t stride = size_t(dim) + 3;  // value rows further apart than dim, as in a KV cache
    std::vector<float> w = random_floats(size_t(n), 21), v = random_floats(size_t(n) * stride, 22);
    std::vector<float> ys(size_t(dim), -1.f), yv(size_t(dim), -1.f);
    scalar_kernels().weighted_sum(w.data(), n, v.data(), stride, dim, ys.data());
    if (simd != nullptr) simd->weighted_sum(w.data(), n, v.data(), stride, dim, yv.data());
    for (int d = 0; d < dim; ++d) {
      double ref = 0;
      for (int j = 0; j < n; ++j) ref += double(w[size_t(j)]) * v[size_t(j) * stride + size_t(d)];
      EXPECT_NEAR(ys[size_t(d)], ref, 1e-5) << "scalar dim=" << dim;
      if (simd != nullptr) {
        EXPECT_NEAR(yv[size_t(d)], ref, 1e-5) << "avx2 dim=" << dim;
      }
    }
  }
}

TEST(Kernels, SimdActivationsAreTheScalarOnesBitForBit) {
  const KernelTable* simd = avx2_kernels();
  if (simd == nullptr) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t k = 2048;
  std::vector<float> x = random_floats(size_t(k), 41, 3.f);
  x[5] = 0.f;                                     // a zero
  x[300] = 40.f, x[301] = -40.f;                  // a tie in magnitude: the first one's sign wins
  for (int i = 512; i < 768; ++i) x[size_t(i)] = 0.f;  // an all-zero Q8_K block
  for (int i = 800; i < 832; ++i) x[size_t(i)] = 0.f;  // an all-zero Q8_0 block
  // A block whose largest value is 127, so the scale is exactly 1 and these
  // land on .5: rounding must be half to even in both.
  x[928] = 127.f, x[929] = 2.5f, x[930] = -3.5f, x[931] = 0.5f, x[932] = -0.5f;
  for (uint32_t t : {uint32_t(GgmlType::Q4_0), uint32_t(GgmlType::Q4_K)}) {
    const size_t ab = act_bytes(t, k);
    std::vector<uint8_t> ref(ab, 0xAA), got(ab, 0x55);
    ThreadPool pool(1);
    prepare_activations(t, x.data(), 1, k, ref.data(), pool, scalar_kernels());
    prepare_activations(t, x.data(), 1, k, got.data(), pool, *simd);
    if (t == uint32_t(GgmlType::Q4_0)) {  // the padding before the scales is never read
      const size_t pad = q8_0_scales_offset(k / kQK);
      for (size_t i = size_t(k / kQK) * 34; i < pad; ++i) got[i] = ref[i];
    }
    EXPECT_EQ(ref, got) << type_name(t);
  }
}

TEST(Kernels, SimdElementwiseStepsMatchTheScalarOnes) {
  const KernelTable* simd = avx2_kernels();
  if (simd == nullptr) GTEST_SKIP() << "no AVX2 on this CPU";
  const KernelTable& s = scalar_kernels();
  for (int n : {1, 7, 8, 37, 2048}) {  // vector bodies and scalar tails
    std::vector<float> g = random_floats(size_t(n), 51, 4.f), u = random_floats(size_t(n), 52);
    g[0] = -100.f;  // past the clamp: silu is ~0 either way
    if (n > 1) g[1] = 95.f;
    std::vector<float> ys(static_cast<size_t>(n)), yv(static_cast<size_t>(n));
    s.swiglu(g.data(), u.data(), ys.data(), n);
    simd->swiglu(g.data(), u.data(), yv.data(), n);
    for (int i = 0; i < n; ++i) EXPECT_NEAR(yv[size_t(i)], ys[size_t(i)], 1e-6f * std::fabs(ys[size_t(i)]) + 1e-30f);

    std::vector<float> sv = random_floats(size_t(n), 53, 5.f), ss = sv;
    sv[0] = -1e4f;  // a score whose weight underflows
    ss[0] = -1e4f;
    s.softmax(ss.data(), n, 0.125f);
    simd->softmax(sv.data(), n, 0.125f);
    double total = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(sv[size_t(i)], ss[size_t(i)], 2e-6f * ss[size_t(i)] + 1e-30f) << n << " " << i;
      total += sv[size_t(i)];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);

    std::vector<float> x = random_floats(size_t(n), 54), w = random_floats(size_t(n), 55);
    s.rms_norm(x.data(), w.data(), n, 1e-5f, ys.data());
    simd->rms_norm(x.data(), w.data(), n, 1e-5f, yv.data());
    for (int i = 0; i < n; ++i) EXPECT_NEAR(yv[size_t(i)], ys[size_t(i)], 1e-5f * std::fabs(ys[size_t(i)]));

    // Halves for the KV cache: bit for bit, ties, subnormals, overflow and NaN included.
    std::vector<float> h = random_floats(size_t(n), 56, 3.f);
    const float special[] = {1.f + 1.f / 2048, 1.f + 3.f / 2048, 3e-6f, -7e-8f, 1e-9f, 65504.f, 65520.f, -1e6f,
                             std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
    for (size_t i = 0; i < h.size() && i < std::size(special); ++i) h[i] = special[i];
    std::vector<uint16_t> hs(h.size()), hv(h.size());
    s.to_f16(h.data(), hs.data(), n);
    simd->to_f16(h.data(), hv.data(), n);
    for (int i = 0; i < n; ++i) {
      if (std::isnan(h[size_t(i)])) {
        EXPECT_EQ(hv[size_t(i)] & 0x7C00, 0x7C00);  // a NaN (payloads may differ)
        EXPECT_NE(hv[size_t(i)] & 0x03FF, 0);
      } else {
        EXPECT_EQ(hv[size_t(i)], hs[size_t(i)]) << n << " " << i << " " << h[size_t(i)];
      }
    }
  }
}

TEST(Kernels, AttentionOfAHeadGroupMatchesADoubleReference) {
  std::vector<const KernelTable*> tables = {&scalar_kernels()};
  if (const KernelTable* simd = avx2_kernels()) tables.push_back(simd);
  for (int hd : {64, 12}) {           // the SIMD path, and the one for head sizes not a multiple of 8
    for (int heads : {1, 4, 7, 8, 11}) {  // up to 8 per pass, and a pass of 3 after one of 8
      for (int n : {1, 5, 37}) {
        const size_t kv_stride = size_t(hd) * 3 + 4;  // other KV heads' values in between, as in the cache
        std::vector<float> q = random_floats(size_t(heads) * hd, 61, 2.f);
        std::vector<float> k = random_floats(size_t(n) * kv_stride, 62), v = random_floats(size_t(n) * kv_stride, 63);
        const float scale = 1.f / std::sqrt(float(hd));
        auto reference = [&](const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v) {
          std::vector<double> ref(size_t(heads) * hd);
          for (int h = 0; h < heads; ++h) {
            std::vector<double> s(static_cast<size_t>(n));
            double mx = -1e300, sum = 0;
            for (int j = 0; j < n; ++j) {
              for (int d = 0; d < hd; ++d)
                s[size_t(j)] += double(q[size_t(h * hd + d)]) * k[size_t(j) * kv_stride + size_t(d)];
              mx = std::max(mx, s[size_t(j)] * scale);
            }
            for (int j = 0; j < n; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] * scale - mx);
            for (int d = 0; d < hd; ++d)
              for (int j = 0; j < n; ++j)
                ref[size_t(h * hd + d)] += s[size_t(j)] / sum * v[size_t(j) * kv_stride + size_t(d)];
          }
          return ref;
        };
        // The same keys and values as halves; the reference reads them rounded too.
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        for (size_t i = 0; i < k.size(); ++i) k16[i] = fp32_to_fp16(k[i]);
        for (size_t i = 0; i < v.size(); ++i) v16[i] = fp32_to_fp16(v[i]);
        for (size_t i = 0; i < k.size(); ++i) k[i] = fp16_to_fp32(k16[i]);
        for (size_t i = 0; i < v.size(); ++i) v[i] = fp16_to_fp32(v16[i]);
        const std::vector<double> ref16 = reference(q, k, v);
        for (const KernelTable* t : tables) {
          std::vector<float> scratch(8 * size_t(n)), out(size_t(heads) * hd, -7.f);
          t->attend(q.data(), heads, hd, k.data(), v.data(), kv_stride, n, scale, scratch.data(), out.data());
          for (size_t i = 0; i < out.size(); ++i)
            ASSERT_NEAR(out[i], ref16[i], 1e-5)
                << t->name << " hd=" << hd << " heads=" << heads << " n=" << n << " i=" << i;
          std::vector<float> out16(size_t(heads) * hd, -7.f);
          t->attend_f16(q.data(), heads, hd, k16.data(), v16.data(), kv_stride, n, scale, scratch.data(), out16.data());
          for (size_t i = 0; i < out16.size(); ++i)
            ASSERT_NEAR(out16[i], ref16[i], 1e-5)
                << t->name << " f16 hd=" << hd << " heads=" << heads << " n=" << n << " i=" << i;
        }
      }
    }
  }
}

TEST(Kernels, MatmulSplitsRowsOverThreads) {
  ThreadPool pool(3);
  const int64_t k = 64;
  // Two fused outputs of odd sizes: a share or block may span both.
  const int64_t rows[2] = {77, 45};
  for (int64_t n_tok : {1, 9}) {  // matvec's shares, matmul's blocks
    std::vector<float> wf[2] = {random_floats(rows[0] * k, 3), random_floats(rows[1] * k, 5)};
    std::vector<float> xf = random_floats(n_tok * k, 4);
    WeightMatrix w[2];
    std::vector<float> y[2];
    std::vector<MatmulOut> outs;
    for (int o = 0; o < 2; ++o) {
      w[o] = WeightMatrix{uint32_t(GgmlType::F32), rows[o], k, reinterpret_cast<const uint8_t*>(wf[o].data()),
                          size_t(k) * 4};
      y[o].assign(rows[o] * n_tok, -1.f);
      outs.push_back(MatmulOut{&w[o], y[o].data(), size_t(rows[o])});
    }
    std::vector<uint8_t> act(act_bytes(w[0].type, k) * n_tok);
    std::vector<std::vector<uint8_t>> thread_act;
    if (n_tok == 1) {
      matvec(outs, xf.data(), pool, best_kernels(), thread_act);
    } else {
      prepare_activations(w[0].type, xf.data(), n_tok, k, act.data(), pool, scalar_kernels());
      matmul(outs, act.data(), n_tok, pool, best_kernels());
    }
    for (int o = 0; o < 2; ++o)
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 0; r < rows[o]; ++r) {
          double ref = 0;
          for (int64_t i = 0; i < k; ++i) ref += double(wf[o][r * k + i]) * xf[t * k + i];
          ASSERT_NEAR(y[o][t * rows[o] + r], ref, 1e-4) << "output " << o << " token " << t << " row " << r;
        }
  }
}

}  // namespace
}  // namespace aifn::engine
