// aifn-engine-bench: generation and prompt-processing speed of generated
// TinyLlama-shaped models, against the memory-bandwidth bound measured in the
// same run. Prints one line per repetition (its tokens/s and the bound of the
// triads just before and after it), then per model a machine-readable line of
// medians (the fraction is the median of the repetitions' fractions) plus a summary.
//   aifn-engine-bench [--threads 2] [--types q4_0,q8_0,q4_k] [--prompt 128] [--gen 32]
//                     [--reps 3] [--dir /tmp] [--layers 22] [--keep]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/bench.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/testmodel.h"

using namespace aifn::engine;

int main(int argc, char** argv) {
  int threads = 2, prompt = 128, gen = 32, reps = 3, layers = 22;
  std::string types = "q4_0,q8_0,q4_k", dir = std::filesystem::temp_directory_path().string();
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      keep = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "missing value for %s\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--types") types = v;
    else if (a == "--prompt") prompt = std::atoi(v.c_str());
    else if (a == "--gen") gen = std::atoi(v.c_str());
    else if (a == "--reps") reps = std::atoi(v.c_str());
    else if (a == "--dir") dir = v;
    else if (a == "--layers") layers = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  ThreadPool pool(threads);
  std::stringstream ss(types);
  std::string t;
  while (std::getline(ss, t, ',')) {
    auto type = parse_type_name(t);
    if (!type) {
      std::fprintf(stderr, "%s\n", type.error().c_str());
      return 2;
    }
    TestModelConfig c;
    c.name = "tinyllama-shaped-" + t;
    c.n_embd = 2048;
    c.n_layer = layers;
    c.n_head = 32;
    c.n_head_kv = 4;
    c.n_ff = 5632;
    c.n_vocab = 32000;
    c.type = *type;
    const std::string path = dir + "/aifn-bench-" + t + "-" + std::to_string(layers) + ".gguf";
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr, "generating %s ...\n", path.c_str());
      if (auto r = write_test_model(c, path); !r) {
        std::fprintf(stderr, "%s\n", r.error().c_str());
        return 1;
      }
    }
    auto file = GgufFile::open(path);
    if (!file) {
      std::fprintf(stderr, "%s\n", file.error().c_str());
      return 1;
    }
    auto model = Model::load(std::shared_ptr<const GgufFile>(std::move(*file)));
    if (!model) {
      std::fprintf(stderr, "%s\n", model.error().c_str());
      return 1;
    }
    // Each repetition is bounded by the triad measured just before and just
    // after it on the same threads, the higher of the two, so a noisy machine
    // cannot flatter the ratio. Pairing per repetition matters on hosts whose
    // memory bandwidth changes from one minute to the next (seen here: 39 and
    // 66 GB/s): one triad for the whole run would bound some repetitions by
    // another minute's memory. The triad's three arrays together are as large
    // as the weights a token reads, so both stream from the same level of the
    // memory hierarchy (some hosts have L3 caches of hundreds of MB).
    const size_t array_bytes = std::max<size_t>(size_t(64) << 20, (*model)->weight_bytes_per_token() / 3);
    const double bytes = double((*model)->weight_bytes_per_token());
    std::vector<double> pp_runs, tg_runs, bws, fractions;
    double bw_before = measure_triad_bandwidth(pool, array_bytes);
    for (int rep = 0; rep < std::max(1, reps); ++rep) {
      const BenchResult one = run_bench(*model, pool, BenchOptions{prompt, gen, 1});
      const double bw_after = measure_triad_bandwidth(pool, array_bytes);
      const double bw = std::max(bw_before, bw_after);
      pp_runs.push_back(one.pp_tps);
      tg_runs.push_back(one.tg_tps);
      bws.push_back(bw);
      fractions.push_back(one.tg_tps / (bw / bytes));
      std::printf("rep=%d triad_gbs=%.2f tg_tps=%.2f tg_fraction_of_bound=%.3f\n", rep + 1, bw / 1e9, one.tg_tps,
                  fractions.back());
      bw_before = bw_after;
    }
    BenchResult r;
    r.pp_tps = median(pp_runs);
    r.tg_tps = median(tg_runs);
    const double bw = median(bws), fraction = median(fractions);
    std::printf("triad_bandwidth_gbs=%.2f threads=%d\n", bw / 1e9, pool.size());
    const double bound = bw / bytes;
    std::printf(
        "engine_bench type=%s threads=%d weights_mb=%.1f pp_tokens=%d pp_tps=%.2f tg_tokens=%d tg_tps=%.2f "
        "tg_bound_tps=%.2f tg_fraction_of_bound=%.3f\n",
        t.c_str(), pool.size(), bytes / 1e6, prompt, r.pp_tps, gen, r.tg_tps, bound, fraction);
    std::printf("bench engine_pp%d_%s %.2f tok/s\n", prompt, t.c_str(), r.pp_tps);
    std::printf("bench engine_tg_%s %.2f tok/s\n", t.c_str(), r.tg_tps);
    std::printf("bench engine_tg_%s_fraction_of_bound %.3f ratio\n", t.c_str(), fraction);
    std::fflush(stdout);
    if (!keep) std::filesystem::remove(path);
  }
  return 0;
}
