#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "engine/models_cli.h"
#include "engine/testmodel.h"

namespace aifn::engine {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = (std::filesystem::temp_directory_path() / ("aifn-engine-test-" + std::to_string(::getpid()) + ".gguf"))
                .string();
    TestModelConfig c;
    c.type = GgmlType::Q8_0;
    ASSERT_TRUE(write_test_model(c, path_));
    auto e = Engine::load(path_, EngineOptions{2, 256});
    ASSERT_TRUE(e) << e.error();
    engine_ = std::move(*e);
  }
  static void TearDownTestSuite() {
    engine_.reset();
    std::filesystem::remove(path_);
  }

  static std::string run(const std::vector<TokenId>& prompt, const SamplingParams& sp, int n, GenerateResult* res,
                         const std::atomic<bool>* stop = nullptr) {
    std::string out;
    GenerationLimits lim;
    lim.max_tokens = n;
    lim.ignore_eos = true;
    auto r = engine_->generate(prompt, sp, lim, [&](std::string_view t) {
      out += t;
      return true;
    }, stop);
    EXPECT_TRUE(r) << r.error();
    if (r && res) *res = *r;
    return out;
  }

  static inline std::string path_;
  static inline std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, EmbedIsUnitLengthDeterministicAndInputDependent) {
  auto a = engine_->embed(engine_->tokenize("hello world"));
  ASSERT_TRUE(a) << a.error();
  ASSERT_EQ(a->size(), size_t(engine_->config().n_embd));
  double norm = 0;
  for (float v : *a) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-4);
  auto again = engine_->embed(engine_->tokenize("hello world"));
  ASSERT_TRUE(again);
  EXPECT_EQ(*a, *again);
  auto b = engine_->embed(engine_->tokenize("something else entirely"));
  ASSERT_TRUE(b);
  EXPECT_NE(*a, *b);
  EXPECT_FALSE(engine_->embed({}));
}

TEST_F(EngineTest, ExposesMetadata) {
  EXPECT_EQ(engine_->name(), "aifn-tiny");
  EXPECT_EQ(engine_->n_vocab(), 512);
  EXPECT_EQ(engine_->context_length(), 256);
  EXPECT_EQ(engine_->config().arch, "llama");
  std::vector<TokenId> ids = engine_->tokenize("the fox");
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(engine_->detokenize(std::span<const TokenId>(ids).subspan(1)), "the fox");
}

TEST_F(EngineTest, GreedyIsDeterministicAndSeededSamplingRepeats) {
  std::vector<TokenId> prompt = engine_->tokenize("hello world");
  SamplingParams greedy;
  greedy.temperature = 0;
  GenerateResult r1, r2;
  std::string a = run(prompt, greedy, 12, &r1), b = run(prompt, greedy, 12, &r2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(r1.completion_tokens, 12);
  EXPECT_EQ(r1.finish, FinishReason::kLength);
  EXPECT_EQ(r1.prompt_tokens, int(prompt.size()));
  SamplingParams sp;
  sp.seed = 7;
  EXPECT_EQ(run(prompt, sp, 12, nullptr), run(prompt, sp, 12, nullptr));
}

TEST_F(EngineTest, StopFlagAndCallbackEndGeneration) {
  std::vector<TokenId> prompt = engine_->tokenize("hello");
  SamplingParams greedy;
  greedy.temperature = 0;
  std::atomic<bool> stop{true};
  GenerateResult r;
  run(prompt, greedy, 12, &r, &stop);
  EXPECT_EQ(r.completion_tokens, 0);
  int calls = 0;
  GenerationLimits lim;
  lim.max_tokens = 50;
  lim.ignore_eos = true;
  auto res = engine_->generate(prompt, greedy, lim, [&](std::string_view) { return ++calls < 3; });
  ASSERT_TRUE(res);
  EXPECT_EQ(calls, 3);
  EXPECT_LT(res->completion_tokens, 50);
}

TEST_F(EngineTest, PromptLongerThanTheContextIsAnError) {
  std::vector<TokenId> prompt(300, 5);
  SamplingParams sp;
  auto r = engine_->generate(prompt, sp, GenerationLimits{}, nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("context of 256"), std::string::npos) << r.error();
  EXPECT_FALSE(engine_->generate({}, sp, GenerationLimits{}, nullptr));
}

TEST_F(EngineTest, ContextFullEndsWithLength) {
  std::vector<TokenId> prompt(250, 300);
  prompt[0] = 1;
  SamplingParams greedy;
  greedy.temperature = 0;
  GenerateResult r;
  run(prompt, greedy, 100, &r);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_LE(r.completion_tokens, 7);
}

TEST_F(EngineTest, ModelsRunWritesOnlyGeneratedText) {
  ModelsRunOptions o;
  o.path = path_;
  o.prompt = "hello world";
  o.n_predict = 8;
  o.temperature = 0;
  o.threads = 1;
  ::testing::internal::CaptureStdout();
  int rc = models_run(o);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  // Greedy output equals what generate() produces for the same prompt.
  SamplingParams greedy;
  greedy.temperature = 0;
  GenerationLimits lim;
  lim.max_tokens = 8;
  std::string expect;
  ASSERT_TRUE(engine_->generate(engine_->tokenize("hello world"), greedy, lim, [&](std::string_view t) {
    expect += t;
    return true;
  }));
  EXPECT_EQ(out, expect);
  o.path = "/nonexistent.gguf";
  EXPECT_EQ(models_run(o), 1);
}

TEST_F(EngineTest, ModelsBenchPrintsOneJsonLine) {
  ModelsBenchOptions o;
  o.path = path_;
  o.threads = 1;
  o.prompt_tokens = 16;
  o.gen_tokens = 4;
  o.reps = 1;
  o.json = true;
  ::testing::internal::CaptureStdout();
  int rc = models_bench(o);
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out.find("{\"model\":\""), 0u) << out;
  EXPECT_NE(out.find("\"pp_tokens\":16"), std::string::npos) << out;
  EXPECT_NE(out.find("\"tg_tps\":"), std::string::npos) << out;
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  // --depth: measured after that many tokens in the cache, and said so.
  o.depth = 24;
  ::testing::internal::CaptureStdout();
  rc = models_bench(o);
  out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("\"depth\":24"), std::string::npos) << out;
  EXPECT_NE(out.find("\"tg_tps\":"), std::string::npos) << out;
}

}  // namespace
}  // namespace aifn::engine
