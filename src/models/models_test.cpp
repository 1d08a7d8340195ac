// The gguf provider on a real generated model, the router's resolution and
// fallback, and the token registry.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "engine/testmodel.h"
#include "models/gguf_provider.h"
#include "models/router.h"
#include "models/token_registry.h"

namespace aifn::models {
namespace {
namespace net = boost::asio;
namespace fs = std::filesystem;

class ModelsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("aifn-models-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    engine::TestModelConfig c;
    c.type = engine::GgmlType::Q8_0;
    ASSERT_TRUE(engine::write_test_model(c, (dir_ / "tiny.gguf").string()));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Runs a coroutine on the io context until it finishes.
  template <typename T>
  T run(net::awaitable<T> a) {
    auto f = net::co_spawn(io_, std::move(a), net::use_future);
    io_.restart();
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) io_.run_one_for(std::chrono::seconds(5));
    return f.get();
  }

  // Loaded on first use, so the first call always waits for the load.
  std::unique_ptr<GgufProvider> provider(const std::string& file = "tiny.gguf") {
    return std::make_unique<GgufProvider>(io_.get_executor(),
                                          GgufOptions{"local", (dir_ / file).string(), 2, 2, false});
  }

  static CompletionRequest chat(int max_tokens) {
    CompletionRequest r;
    r.model = "tiny";
    r.messages = {{"system", "be brief"}, {"user", "hello"}};
    r.sampling.max_tokens = max_tokens;
    r.sampling.temperature = 0.0;
    return r;
  }

  static inline fs::path dir_;
  net::io_context io_;
};

class CollectSink : public TextSink {
 public:
  explicit CollectSink(int stop_after = -1) : stop_after_(stop_after) {}
  net::awaitable<bool> on_text(std::string_view t) override {
    text += t;
    ++calls;
    co_return stop_after_ < 0 || calls < stop_after_;
  }
  void on_model_load(double ms) override { load_ms = ms; }
  std::string text;
  int calls = 0;
  double load_ms = -1;

 private:
  int stop_after_;
};

TEST_F(ModelsTest, GgufCompletesAndStreamsTheSameTextAsItReturns) {
  auto p = provider();
  auto models = run(p->list_models());
  ASSERT_TRUE(models);
  EXPECT_EQ(*models, std::vector<std::string>{"tiny"});
  auto req = chat(16);
  CollectSink sink;
  auto r = run(p->complete(req, &sink));
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->usage.completion_tokens, 16);
  EXPECT_GT(r->usage.prompt_tokens, 4);
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(sink.text, r->text);
  EXPECT_GT(sink.calls, 0);
  // The first call waited for the background load and said so.
  EXPECT_GT(r->model_load_ms, 0);
  // Greedy twice: the same answer, not streamed this time, no load wait.
  auto again = run(p->complete(req, nullptr));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->text, r->text);
  EXPECT_EQ(again->model_load_ms, 0);
}

TEST_F(ModelsTest, ASinkThatLeavesStopsGeneration) {
  auto p = provider();
  auto req = chat(1500);
  req.sampling.temperature = 1.0;
  req.sampling.seed = 3;  // a seed whose text has no end-of-turn early on
  CollectSink sink(2);
  auto r = run(p->complete(req, &sink));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_EQ(sink.calls, 2);
  // Tokens generated while the stop travelled to the engine's thread are still
  // counted (this 64-wide model makes tens of thousands a second, so a few
  // milliseconds are a few hundred), but generation stopped long before max_tokens.
  EXPECT_LT(r->usage.completion_tokens, 750);
}

TEST_F(ModelsTest, BadRequestsAreRefused) {
  auto p = provider();
  auto req = chat(4);
  req.model = "other";
  auto r = run(p->complete(req, nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.type, ErrorType::not_found);
  req = chat(4);
  req.messages.push_back({"wizard", "hi"});
  r = run(p->complete(req, nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.type, ErrorType::bad_request);
  req = chat(4);
  req.sampling.top_p = -1;
  r = run(p->complete(req, nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.type, ErrorType::bad_request);
}

TEST_F(ModelsTest, MissingFileIsUnavailable) {
  auto p = provider("absent.gguf");
  auto r = run(p->complete(chat(4), nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.type, ErrorType::unavailable);
  auto models = run(p->list_models());
  ASSERT_TRUE(models);
  EXPECT_TRUE(models->empty());
}

TEST_F(ModelsTest, CountsTokensWithTheModelsTokenizerOnceLoaded) {
  auto p = provider();
  EXPECT_EQ(p->count_tokens("hello"), std::nullopt) << "not loaded yet";
  double waited = 0;
  auto e = run(p->ready(&waited));
  ASSERT_TRUE(e);
  const std::string text = "hello there, world";
  EXPECT_EQ(p->count_tokens(text), static_cast<int>((*e)->tokenize(text, false).size()));
  EXPECT_GT(p->count_tokens(text).value_or(0), 0);
}

TEST_F(ModelsTest, EmbeddingsAreUnitVectorsPerInput) {
  auto p = provider();
  auto r = run(p->embed("tiny", {"hello", "world", "hello"}));
  ASSERT_TRUE(r) << r.error().error.message;
  ASSERT_EQ(r->vectors.size(), 3u);
  EXPECT_EQ(r->vectors[0], r->vectors[2]);
  EXPECT_NE(r->vectors[0], r->vectors[1]);
  double n = 0;
  for (float v : r->vectors[1]) n += double(v) * v;
  EXPECT_NEAR(std::sqrt(n), 1.0, 1e-4);
  EXPECT_GT(r->prompt_tokens, 3);
}

// An upstream that is down: fails retryably, as an openai provider would on
// a connect error or a 503.
class DownProvider : public Provider {
 public:
  const std::string& name() const override { return name_; }
  net::awaitable<ProviderResult<std::vector<std::string>>> list_models() override {
    co_return std::vector<std::string>{"big"};
  }
  net::awaitable<ProviderResult<Completion>> complete(const CompletionRequest&, TextSink*) override {
    ++calls;
    co_return tl::unexpected(ProviderError{Error(ErrorType::upstream_error, "connection refused"), retryable});
  }
  net::awaitable<ProviderResult<Embeddings>> embed(const std::string&, const std::vector<std::string>&) override {
    co_return tl::unexpected(ProviderError{Error(ErrorType::upstream_error, "connection refused"), retryable});
  }
  std::string name_ = "up";
  bool retryable = true;
  int calls = 0;
};

TEST_F(ModelsTest, RouterResolvesFallsBackAndLists) {
  std::vector<std::unique_ptr<Provider>> ps;
  auto down = std::make_unique<DownProvider>();
  auto* down_ptr = down.get();
  ps.push_back(std::move(down));
  ps.push_back(provider());
  Router router({{"default", {"up/big", "local/tiny"}}, {"ghost", {"gone/x"}}}, std::move(ps), {"gone"});

  EXPECT_EQ(router.resolve("nope").error().type, ErrorType::not_found);
  EXPECT_EQ(router.resolve("nope/x").error().type, ErrorType::not_found);
  EXPECT_EQ(router.resolve("ghost").error().type, ErrorType::unavailable);
  EXPECT_EQ(router.resolve("gone/x").error().type, ErrorType::unavailable);
  ASSERT_TRUE(router.resolve("local/tiny"));

  auto req = chat(3);
  CollectSink sink;
  auto r = run(router.complete("default", req, &sink));
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->target, "local/tiny");
  EXPECT_EQ(down_ptr->calls, 1);

  down_ptr->retryable = false;
  r = run(router.complete("default", req, nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().error.type, ErrorType::upstream_error);

  auto listed = run(router.list());
  std::vector<std::string> ids;
  for (auto& m : listed) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"default", "up/big", "local/tiny"}));
}

TEST(TokenRegistry, AcceptsOnlyLiveTokensForListedModels) {
  TokenRegistry reg;
  auto g = std::make_shared<Grant>();
  g->models = {"default", "local/tiny"};
  {
    TokenScope scope(&reg, "aifn_inv_abc", g);
    EXPECT_EQ(reg.find("aifn_inv_abc"), g);
    EXPECT_EQ(reg.find("aifn_inv_abd"), nullptr);
    EXPECT_EQ(reg.find(""), nullptr);
    EXPECT_TRUE(g->allows("default"));
    EXPECT_TRUE(g->allows("local/tiny"));
    EXPECT_FALSE(g->allows("other"));
  }
  EXPECT_EQ(reg.find("aifn_inv_abc"), nullptr);
  EXPECT_EQ(reg.size(), 0u);
}

TEST(TokenMinter, MakesDistinctTokensOfTheDocumentedShape) {
  TokenMinter minter;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {  // crosses several refills of the 4 KiB pool
    std::string t = minter.mint();
    ASSERT_EQ(t.size(), 9u + 64u) << t;
    EXPECT_EQ(t.rfind("aifn_inv_", 0), 0u);
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef", 9), std::string::npos) << t;
    EXPECT_TRUE(seen.insert(t).second) << "repeated token " << t;
  }
}

}  // namespace
}  // namespace aifn::models
