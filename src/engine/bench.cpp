#include "engine/bench.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "engine/huge_buffer.h"

namespace aifn::engine {
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

BenchResult run_bench(const std::shared_ptr<const Model>& model, ThreadPool& pool, const BenchOptions& o) {
  const int n_vocab = model->config().n_vocab;
  const int pp = std::max(0, o.prompt_tokens), tg = std::max(0, o.gen_tokens);
  // Fixed pseudo-random token ids: speed does not depend on which tokens.
  std::vector<int32_t> tokens(size_t(std::max(pp, tg) + 1));
  uint32_t x = 12345;
  for (int32_t& t : tokens) {
    x = x * 1664525u + 1013904223u;
    t = int32_t(x % uint32_t(n_vocab));
  }
  const int depth = std::max(0, o.depth);
  Session session(model, pool, depth + std::max(pp, tg + 1) + 1);
  std::vector<float> logits;
  BenchResult r;
  // Warm-up: faults the mapped weights in and settles the threads.
  (void)session.eval(std::span<const int32_t>(tokens.data(), 1), Logits::kLast, &logits);
  // The cache filled to `depth` once; each run truncates back to it.
  auto fill_to_depth = [&] {
    session.truncate(0);
    for (int done = 0; done < depth;) {
      const int n = std::min(depth - done, int(tokens.size()));
      (void)session.eval(std::span<const int32_t>(tokens.data(), size_t(n)), Logits::kLast, &logits);
      done += n;
    }
  };
  fill_to_depth();
  for (int rep = 0; rep < std::max(1, o.reps); ++rep) {
    if (pp > 0) {
      session.truncate(depth);
      auto t0 = std::chrono::steady_clock::now();
      (void)session.eval(std::span<const int32_t>(tokens.data(), size_t(pp)), Logits::kLast, &logits);
      r.pp_runs.push_back(pp / seconds_since(t0));
    }
    if (tg > 0) {
      session.truncate(depth);
      (void)session.eval(std::span<const int32_t>(tokens.data(), 1), Logits::kLast, &logits);
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < tg; ++i)
        (void)session.eval(std::span<const int32_t>(&tokens[size_t(i) + 1], 1), Logits::kLast, &logits);
      r.tg_runs.push_back(tg / seconds_since(t0));
    }
  }
  r.pp_tps = median(r.pp_runs);
  r.tg_tps = median(r.tg_runs);
  return r;
}

double measure_triad_bandwidth(ThreadPool& pool, size_t bytes_per_array, int reps) {
  const size_t n = bytes_per_array / sizeof(double);
  // The same kind of memory the model's weights get (huge pages where the
  // kernel allows): on 4 KiB pages the triad measured up to 40 % less here,
  // which would flatter the engine's fraction of the bound.
  HugeBuffer ha(n * sizeof(double)), hb(n * sizeof(double)), hc(n * sizeof(double));
  if (ha.data() == nullptr || hb.data() == nullptr || hc.data() == nullptr) return 0;
  double* a = reinterpret_cast<double*>(ha.data());
  double* b = reinterpret_cast<double*>(hb.data());
  double* c = reinterpret_cast<double*>(hc.data());
  // First touch from the pool so pages spread like the engine's work does.
  pool.parallel_for(int64_t(n), 1 << 16, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) a[size_t(i)] = 0, b[size_t(i)] = 1, c[size_t(i)] = 2;
  });
  const int64_t chunk = int64_t(n) / pool.size() + 1;
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    const double s = 3.0;
    pool.parallel_for(int64_t(n), chunk, [&](int64_t lo, int64_t hi, int) {
      double* __restrict pa = a;
      const double* __restrict pb = b;
      const double* __restrict pc = c;
      for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
    double t = seconds_since(t0);
    best = std::max(best, 3.0 * double(n * sizeof(double)) / t);
  }
  volatile double sink = a[n / 2];
  (void)sink;
  return best;
}

}  // namespace aifn::engine
