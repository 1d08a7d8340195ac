// Engine throughput measurement, as `aifn models bench` and bench/engine_bench
// report it: prompt processing (one batched forward pass over N tokens) and
// generation (M single-token steps on the KV cache) in tokens per second,
// medians over repetitions; and a STREAM-style triad memory bandwidth, which
// bounds generation speed (each generated token reads every weight once).
// Called by models_cli.cpp and the bench binary. Uses the given pool; not
// meant to run concurrently with other work on it.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model.h"
#include "engine/thread_pool.h"

namespace aifn::engine {

struct BenchOptions {
  int prompt_tokens = 512;
  int gen_tokens = 128;
  int reps = 3;
  // Tokens already in the KV cache when each measured run starts (llama-bench's
  // --n-depth): attention reads grow with it, so a server's generation after a
  // real prompt is compared at the same depth.
  int depth = 0;
};

struct BenchResult {
  double pp_tps = 0;  // medians
  double tg_tps = 0;
  std::vector<double> pp_runs, tg_runs;
};

double median(std::vector<double> v);  // 0 for none

BenchResult run_bench(const std::shared_ptr<const Model>& model, ThreadPool& pool, const BenchOptions& options);

// Best of `reps` triad passes (a = b + s*c over three arrays of `bytes_per_array`)
// in bytes per second, counting 3 arrays of traffic per pass as STREAM does.
double measure_triad_bandwidth(ThreadPool& pool, size_t bytes_per_array = size_t(128) << 20, int reps = 5);

}  // namespace aifn::engine
