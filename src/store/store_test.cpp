#include "store/store.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace aifn::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aifn-store-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto s = open_store("sqlite:" + (dir_ / "sub" / "aifn.db").string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
};

constexpr std::int64_t kDay = 86'400'000;
constexpr std::int64_t kJan1 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z

UsageRecord rec(std::string fn, std::int64_t start, std::string key = "", std::string model = "",
                std::int64_t tin = 0, std::int64_t tout = 0) {
  UsageRecord r;
  r.id = "req-" + fn + std::to_string(start);
  r.function = std::move(fn);
  r.version = "v1";
  r.key = std::move(key);
  r.kind = "sync";
  r.start_ms = start;
  r.duration_ms = 10;
  r.billed_ms = 10;
  r.memory_mb = 1024;
  r.gb_seconds = 0.01;
  r.model = std::move(model);
  r.tokens_in = tin;
  r.tokens_out = tout;
  return r;
}

const UsageGroup* find(const std::vector<UsageGroup>& gs, const std::string& g) {
  for (const auto& x : gs)
    if (x.group == g) return &x;
  return nullptr;
}

TEST_F(StoreTest, InsertsAndListsEveryField) {
  UsageRecord r = rec("summarize", kJan1, "key1", "local/tiny", 5, 7);
  r.init_ms = 120;
  r.duration_ms = 33;
  r.billed_ms = 34;
  r.memory_mb = 256;
  r.gb_seconds = 0.0085;
  r.cache_hit = true;
  r.cold_start = true;
  r.status = 504;
  r.error_type = "timeout";
  r.kind = "stream";
  ASSERT_TRUE(store_->insert_usage({r}));
  auto rows = store_->list_usage("summarize", 10);
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  const UsageRecord& g = rows->front();
  EXPECT_EQ(g.id, r.id);
  EXPECT_EQ(g.function, "summarize");
  EXPECT_EQ(g.version, "v1");
  EXPECT_EQ(g.key, "key1");
  EXPECT_EQ(g.kind, "stream");
  EXPECT_EQ(g.start_ms, kJan1);
  EXPECT_EQ(g.init_ms, 120);
  EXPECT_EQ(g.duration_ms, 33);
  EXPECT_EQ(g.billed_ms, 34);
  EXPECT_EQ(g.memory_mb, 256);
  EXPECT_DOUBLE_EQ(g.gb_seconds, 0.0085);
  EXPECT_EQ(g.model, "local/tiny");
  EXPECT_EQ(g.tokens_in, 5);
  EXPECT_EQ(g.tokens_out, 7);
  EXPECT_TRUE(g.cache_hit);
  EXPECT_TRUE(g.cold_start);
  EXPECT_EQ(g.status, 504);
  EXPECT_EQ(g.error_type, "timeout");
  EXPECT_TRUE(store_->healthy());
}

TEST_F(StoreTest, CapacityCountsPeakOverlapAndLargestMemory) {
  // Function a: [0,10) [5,15) [8,18) overlap three deep; [18,28) starts as
  // the last one ends (not an overlap). b: one call. c: a model call with no
  // instance (memory 0) is left out.
  UsageRecord big = rec("a", kJan1 + 18);
  big.memory_mb = 2048;
  UsageRecord model_call = rec("c", kJan1);
  model_call.memory_mb = 0;
  ASSERT_TRUE(store_->insert_usage(
      {rec("a", kJan1), rec("a", kJan1 + 5), rec("a", kJan1 + 8), big, rec("b", kJan1 + 100), model_call}));
  auto rows = store_->usage_capacity(0, 0);
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  const CapacityRow& a = (*rows)[0];
  EXPECT_EQ(a.function, "a");
  EXPECT_EQ(a.calls, 4);
  EXPECT_EQ(a.peak_concurrency, 3);
  EXPECT_EQ(a.memory_mb, 2048);
  EXPECT_DOUBLE_EQ(a.gb_seconds, 0.04);
  EXPECT_EQ(a.first_ms, kJan1);
  EXPECT_EQ(a.last_ms, kJan1 + 28);
  EXPECT_EQ((*rows)[1].function, "b");
  EXPECT_EQ((*rows)[1].peak_concurrency, 1);
  // The window keeps only calls that start inside it.
  auto late = store_->usage_capacity(kJan1 + 6, kJan1 + 50);
  ASSERT_TRUE(late);
  ASSERT_EQ(late->size(), 1u);
  EXPECT_EQ((*late)[0].calls, 2);
  EXPECT_EQ((*late)[0].peak_concurrency, 1);
}

TEST_F(StoreTest, ListNewestFirstWithLimitAndFilter) {
  ASSERT_TRUE(store_->insert_usage({rec("a", 1), rec("a", 3), rec("b", 2), rec("a", 2)}));
  auto a = store_->list_usage("a", 2);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].start_ms, 3);
  EXPECT_EQ((*a)[1].start_ms, 2);
  auto all = store_->list_usage("", 0);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 4u);
}

TEST_F(StoreTest, AggregatesByFunction) {
  UsageRecord err = rec("b", kJan1 + 5);
  err.status = 500;
  err.error_type = "function_error";
  UsageRecord cold = rec("a", kJan1 + 6);
  cold.cold_start = true;
  cold.cache_hit = true;
  ASSERT_TRUE(store_->insert_usage({rec("a", kJan1, "", "local/tiny", 10, 20), rec("a", kJan1 + 1, "", "openai/x", 1, 2),
                                    cold, err}));
  auto gs = store_->aggregate_usage(GroupBy::function, 0, 0);
  ASSERT_TRUE(gs) << gs.error().message;
  ASSERT_EQ(gs->size(), 2u);
  const UsageGroup* a = find(*gs, "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->calls, 3);
  EXPECT_EQ(a->errors, 0);
  EXPECT_EQ(a->cold_starts, 1);
  EXPECT_EQ(a->cache_hits, 1);
  EXPECT_EQ(a->billed_ms, 30);
  EXPECT_NEAR(a->gb_seconds, 0.03, 1e-12);
  EXPECT_EQ(a->tokens_in, 11);
  EXPECT_EQ(a->tokens_out, 22);
  ASSERT_EQ(a->by_model.size(), 2u);
  EXPECT_EQ(a->by_model[0].model, "local/tiny");
  EXPECT_EQ(a->by_model[0].tokens_in, 10);
  EXPECT_EQ(a->by_model[0].tokens_out, 20);
  EXPECT_EQ(a->by_model[1].model, "openai/x");
  const UsageGroup* b = find(*gs, "b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->calls, 1);
  EXPECT_EQ(b->errors, 1);
  EXPECT_TRUE(b->by_model.empty());
}

TEST_F(StoreTest, AggregatesByKeyDayAndModel) {
  ASSERT_TRUE(store_->insert_usage({rec("a", kJan1 + 1000, "k1", "local/tiny", 3, 4),
                                    rec("a", kJan1 + kDay - 1, "k2", "local/tiny", 1, 1),
                                    rec("b", kJan1 + kDay, "k1", "openai/x", 2, 2)}));
  auto by_key = store_->aggregate_usage(GroupBy::key, 0, 0);
  ASSERT_TRUE(by_key);
  ASSERT_EQ(by_key->size(), 2u);
  EXPECT_EQ(find(*by_key, "k1")->calls, 2);
  EXPECT_EQ(find(*by_key, "k1")->by_model.size(), 2u);
  EXPECT_EQ(find(*by_key, "k2")->calls, 1);

  auto by_day = store_->aggregate_usage(GroupBy::day, 0, 0);
  ASSERT_TRUE(by_day);
  ASSERT_EQ(by_day->size(), 2u);
  EXPECT_EQ((*by_day)[0].group, "2024-01-01");
  EXPECT_EQ((*by_day)[0].calls, 2);
  EXPECT_EQ((*by_day)[1].group, "2024-01-02");

  auto by_model = store_->aggregate_usage(GroupBy::model, 0, 0);
  ASSERT_TRUE(by_model);
  ASSERT_EQ(by_model->size(), 2u);
  const UsageGroup* tiny = find(*by_model, "local/tiny");
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->tokens_in, 4);
  ASSERT_EQ(tiny->by_model.size(), 1u);
  EXPECT_EQ(tiny->by_model[0].tokens_out, 5);
}

TEST_F(StoreTest, SinceIsInclusiveUntilIsExclusive) {
  ASSERT_TRUE(store_->insert_usage({rec("a", 100), rec("a", 200), rec("a", 300)}));
  auto calls = [&](std::int64_t since, std::int64_t until) {
    auto gs = store_->aggregate_usage(GroupBy::function, since, until);
    EXPECT_TRUE(gs);
    return gs->empty() ? 0 : gs->front().calls;
  };
  EXPECT_EQ(calls(0, 0), 3);
  EXPECT_EQ(calls(200, 0), 2);
  EXPECT_EQ(calls(0, 200), 1);
  EXPECT_EQ(calls(200, 300), 1);
  EXPECT_EQ(calls(301, 0), 0);
}

TEST_F(StoreTest, ConcurrentInsertsAllLand) {
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) ASSERT_TRUE(store_->insert_usage({rec("f", t * 100 + i), rec("f", t * 100 + i)}));
    });
  for (auto& t : ts) t.join();
  auto gs = store_->aggregate_usage(GroupBy::function, 0, 0);
  ASSERT_TRUE(gs);
  EXPECT_EQ(gs->front().calls, 200);
}

TEST_F(StoreTest, ReopenKeepsRecords) {
  ASSERT_TRUE(store_->insert_usage({rec("a", 1)}));
  store_.reset();
  auto s = open_store("sqlite:" + (dir_ / "sub" / "aifn.db").string());
  ASSERT_TRUE(s);
  auto rows = (*s)->list_usage("a", 10);
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->size(), 1u);
}

TEST_F(StoreTest, UnwritablePathIsNamed) {
  std::ofstream(dir_ / "file") << "x";
  std::string url = "sqlite:" + (dir_ / "file" / "aifn.db").string();
  auto s = open_store(url);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(url), std::string::npos) << s.error().message;

  std::string dir_url = "sqlite:" + dir_.string();  // a folder, not a database file
  auto d = open_store(dir_url);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find(dir_url), std::string::npos) << d.error().message;
}

TEST(OpenStore, RejectsUnknownUrls) {
  auto s = open_store("mysql://x");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().type, ErrorType::bad_request);
  EXPECT_NE(s.error().message.find("mysql://x"), std::string::npos);
  EXPECT_FALSE(open_store("sqlite:"));
}

TEST(OpenStore, InMemory) {
  auto s = open_store("sqlite::memory:");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE((*s)->insert_usage({rec("a", 1)}));
}

TEST_F(StoreTest, SecretsAreReplacedListedByNameAndDeleted) {
  ASSERT_TRUE(store_->put_secret({"API_TOKEN", "sealed-1", 1}));
  ASSERT_TRUE(store_->put_secret({"API_TOKEN", "sealed-2", 2}));
  ASSERT_TRUE(store_->put_secret({"OTHER", "sealed-3", 3}));
  auto got = store_->get_secret("API_TOKEN");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->sealed, "sealed-2");
  auto list = store_->list_secrets();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "API_TOKEN");
  EXPECT_TRUE((*list)[0].sealed.empty());  // listing never carries the value
  EXPECT_TRUE(*store_->delete_secret("OTHER"));
  EXPECT_FALSE(*store_->delete_secret("OTHER"));
  EXPECT_FALSE(*store_->get_secret("OTHER"));
}

TEST_F(StoreTest, KeysAreKeptWithScopesAndRevokedNotForgotten) {
  ApiKeyRow k{"k1", "ci", "abc", {"invoke:summarize", "models"}, "20/s", "50000/min", "5.00/day", 10, false};
  ASSERT_TRUE(store_->insert_key(k));
  ASSERT_TRUE(store_->insert_key({"k2", "other", "def", {"admin"}, "", "", "", 11, false}));
  EXPECT_TRUE(*store_->revoke_key("k1"));
  EXPECT_FALSE(*store_->revoke_key("nope"));
  auto keys = store_->list_keys();
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].scopes, (std::vector<std::string>{"invoke:summarize", "models"}));
  EXPECT_EQ((*keys)[0].budget, "5.00/day");
  EXPECT_TRUE((*keys)[0].revoked);
  EXPECT_EQ(*store_->count_keys(), 2);
}

}  // namespace
}  // namespace aifn::store
