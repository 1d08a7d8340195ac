#include "engine/models_cli.h"

#include <cstdio>
#include <filesystem>

#include <boost/json.hpp>

#include "engine/bench.h"
#include "engine/engine.h"
#include "engine/quant.h"

namespace aifn::engine {

int models_run(const ModelsRunOptions& o) {
  auto engine = Engine::load(o.path, EngineOptions{o.threads, 0});
  if (!engine) {
    std::fprintf(stderr, "aifn models run: %s\n", engine.error().c_str());
    return 1;
  }
  const Engine& e = **engine;
  std::vector<TokenId> prompt = e.tokenize(o.prompt, true);
  if (prompt.empty()) {
    std::fprintf(stderr, "aifn models run: the prompt has no tokens\n");
    return 1;
  }
  SamplingParams sp;
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.seed = o.seed;
  GenerationLimits limits;
  limits.max_tokens = o.n_predict;
  auto r = e.generate(prompt, sp, limits, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (!r) {
    std::fprintf(stderr, "aifn models run: %s\n", r.error().c_str());
    return 1;
  }
  std::fprintf(stderr, "\n[%s] prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s), %d threads\n",
               e.name().c_str(), r->prompt_tokens, r->prompt_seconds,
               r->prompt_seconds > 0 ? r->prompt_tokens / r->prompt_seconds : 0.0, r->completion_tokens,
               r->generate_seconds, r->generate_seconds > 0 ? r->completion_tokens / r->generate_seconds : 0.0,
               e.threads());
  return 0;
}

int models_bench(const ModelsBenchOptions& o) {
  auto engine = Engine::load(o.path, EngineOptions{o.threads, 0});
  if (!engine) {
    std::fprintf(stderr, "aifn models bench: %s\n", engine.error().c_str());
    return 1;
  }
  const Engine& e = **engine;
  BenchResult r = run_bench(e.model(), e.pool(), BenchOptions{o.prompt_tokens, o.gen_tokens, o.reps, o.depth});
  const std::string model = std::filesystem::path(o.path).filename().string();
  if (o.json) {
    boost::json::object j;
    j["model"] = model;
    j["threads"] = e.threads();
    j["pp_tokens"] = o.prompt_tokens;
    j["pp_tps"] = r.pp_tps;
    j["tg_tokens"] = o.gen_tokens;
    j["tg_tps"] = r.tg_tps;
    if (o.depth > 0) j["depth"] = o.depth;
    std::printf("%s\n", boost::json::serialize(j).c_str());
  } else {
    std::printf("model %s (%s, %s weights), %d threads\n", model.c_str(), e.config().arch.c_str(),
                type_name(e.config().weight_type), e.threads());
    std::printf("prompt processing: %d tokens, %.2f tok/s (median of %d)\n", o.prompt_tokens, r.pp_tps, o.reps);
    std::printf("generation:        %d tokens, %.2f tok/s (median of %d)\n", o.gen_tokens, r.tg_tps, o.reps);
    if (o.depth > 0) std::printf("both measured after %d tokens already in the cache\n", o.depth);
  }
  return 0;
}

}  // namespace aifn::engine
