#include "metering/metering.h"

#include <sched.h>

#include <atomic>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace aifn::metering {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using store::GroupBy;
using store::UsageGroup;
using store::UsageRecord;

// Counts transactions and can be told to fail; otherwise keeps records in memory.
class FakeStore : public store::UsageWriter {
 public:
  Expected<void> insert_usage(const std::vector<UsageRecord>& batch) override {
    ++entered;
    std::lock_guard hold(gate);  // a test holding the gate stalls the writer here
    std::lock_guard lock(mu);
    ++calls;
    if (fail_next > 0) {
      --fail_next;
      return fail(ErrorType::unavailable, "store fake: disk on fire");
    }
    rows.insert(rows.end(), batch.begin(), batch.end());
    return {};
  }

  std::size_t size() {
    std::lock_guard lock(mu);
    return rows.size();
  }

  std::mutex gate;
  std::atomic<int> entered{0};
  std::mutex mu;
  int calls = 0;       // guarded by mu
  int fail_next = 0;   // guarded by mu
  std::vector<UsageRecord> rows;  // guarded by mu
};

UsageRecord rec(const std::string& id) {
  UsageRecord r;
  r.id = id;
  r.function = "f";
  r.start_ms = 1;
  return r;
}

// Polls `cond` until it holds or 5 s pass.
template <typename F>
bool eventually(F cond) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return cond();
}

TEST(Meter, FlushWritesPendingRecordsInOneBatch) {
  FakeStore s;
  Meter m(s, 1h);  // the timer never fires in this test: only flush() writes
  for (int i = 0; i < 5; ++i) m.record(rec(std::to_string(i)));
  m.flush();
  EXPECT_EQ(m.written(), 5u);
  EXPECT_EQ(m.batches(), 1u);
  ASSERT_EQ(s.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.rows[static_cast<std::size_t>(i)].id, std::to_string(i));
  m.flush();  // nothing new: returns at once
  EXPECT_EQ(m.batches(), 1u);
}

TEST(Meter, IntervalWritesWithoutFlush) {
  FakeStore s;
  Meter m(s, 10ms);
  m.record(rec("a"));
  EXPECT_TRUE(eventually([&] { return m.written() == 1; }));
}

TEST(Meter, FullBatchIsWrittenBeforeTheInterval) {
  FakeStore s;
  Meter m(s, 1h, 4);
  for (int i = 0; i < 4; ++i) m.record(rec(std::to_string(i)));
  EXPECT_TRUE(eventually([&] { return m.written() == 4; }));
  EXPECT_EQ(m.batches(), 1u);
}

TEST(Meter, DestructorFlushes) {
  FakeStore s;
  {
    Meter m(s, 1h);
    for (int i = 0; i < 100; ++i) m.record(rec(std::to_string(i)));
  }
  EXPECT_EQ(s.size(), 100u);
}

TEST(Meter, ManyThreadsTenThousandRecordsFewTransactions) {
  FakeStore s;
  Meter m(s, 50ms, 1024);
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 1250; ++i) m.record(rec(fmt::format("{}-{}", t, i)));
    });
  for (auto& t : ts) t.join();
  m.flush();
  EXPECT_EQ(m.written(), 10'000u);
  EXPECT_EQ(s.size(), 10'000u);
  // One transaction per call would be 10,000; batches of up to 1024 need >= 10.
  EXPECT_LE(m.batches(), 100u);
  EXPECT_GE(m.batches(), 10u);
  std::lock_guard lock(s.mu);
  EXPECT_EQ(static_cast<std::uint64_t>(s.calls), m.batches());
  std::set<std::string> ids;
  for (const auto& r : s.rows) ids.insert(r.id);
  EXPECT_EQ(ids.size(), 10'000u);
}

TEST(Meter, FailedWriteIsRetriedAndNothingIsLost) {
  FakeStore s;
  s.fail_next = 2;
  Meter m(s, 5ms);
  for (int i = 0; i < 10; ++i) m.record(rec(std::to_string(i)));
  m.flush();  // returns after the failed round instead of hanging
  EXPECT_TRUE(eventually([&] {
    m.flush();
    return m.written() == 10;
  }));
  EXPECT_EQ(s.size(), 10u);
  EXPECT_EQ(s.rows.front().id, "0");
  EXPECT_EQ(m.dropped(), 0u);
}

TEST(Meter, StoreDownAtShutdownCountsDroppedRecords) {
  FakeStore s;
  s.fail_next = 1'000'000;
  auto m = std::make_unique<Meter>(s, 1ms);
  m->record(rec("a"));
  m->record(rec("b"));
  m.reset();  // must not hang: a few retries, then the records are logged as dropped
  EXPECT_EQ(s.size(), 0u);
}

TEST(Meter, WriterWaitsAtIdlePriorityUntilABacklogRaisesIt) {
  FakeStore s;
  std::unique_lock gate(s.gate);
  constexpr std::size_t kBatch = 4;
  Meter m(s, 1h, kBatch);
  if (!m.uses_idle_priority()) GTEST_SKIP() << "no CAP_SYS_NICE here: the writer stays at SCHED_OTHER";
  ASSERT_TRUE(eventually([&] { return m.writer_idle(); }));
  EXPECT_EQ(::sched_getscheduler(m.writer_tid()), SCHED_IDLE);

  int n = 0;
  for (std::size_t i = 0; i < kBatch; ++i) m.record(rec(std::to_string(n++)));
  ASSERT_TRUE(eventually([&] { return s.entered == 1; }));  // the writer holds that batch, stalled
  for (std::size_t i = 0; i + 1 < Meter::kBoostBatches * kBatch; ++i) m.record(rec(std::to_string(n++)));
  EXPECT_TRUE(m.writer_idle()) << "one record short of the backlog";
  EXPECT_EQ(::sched_getscheduler(m.writer_tid()), SCHED_IDLE);
  m.record(rec(std::to_string(n++)));
  EXPECT_FALSE(m.writer_idle());
  EXPECT_EQ(::sched_getscheduler(m.writer_tid()), SCHED_OTHER);

  gate.unlock();
  ASSERT_TRUE(eventually([&] { return m.written() == static_cast<std::uint64_t>(n); }));
  EXPECT_TRUE(eventually([&] { return m.writer_idle(); })) << "caught up: back to idle priority";
  EXPECT_EQ(::sched_getscheduler(m.writer_tid()), SCHED_IDLE);
  EXPECT_EQ(s.size(), static_cast<std::size_t>(n));
}

TEST(Meter, WorksWithTheSqliteStore) {
  std::string tmpl = (fs::temp_directory_path() / "aifn-meter-XXXXXX").string();
  fs::path dir = mkdtemp(tmpl.data());
  {
    auto st = store::open_store("sqlite:" + (dir / "aifn.db").string());
    ASSERT_TRUE(st) << st.error().message;
    Meter m(**st);
    for (int i = 0; i < 50; ++i) {
      UsageRecord r = rec(std::to_string(i));
      r.memory_mb = 512;
      r.billed_ms = 100;
      r.gb_seconds = gb_seconds(512, 100);
      m.record(r);
    }
    m.flush();
    auto gs = (*st)->aggregate_usage(GroupBy::function, 0, 0);
    ASSERT_TRUE(gs);
    ASSERT_EQ(gs->size(), 1u);
    EXPECT_EQ(gs->front().calls, 50);
    EXPECT_NEAR(gs->front().gb_seconds, 50 * 0.05, 1e-9);
  }
  fs::remove_all(dir);
}

TEST(Pricing, GbSeconds) {
  EXPECT_DOUBLE_EQ(gb_seconds(1024, 1000), 1.0);
  EXPECT_DOUBLE_EQ(gb_seconds(256, 812), 0.203);
  EXPECT_DOUBLE_EQ(gb_seconds(128, 0), 0.0);
}

TEST(Pricing, RequestsGbSecondsAndTokens) {
  config::Pricing p;
  p.per_million_requests = 0.20;
  p.per_gb_second = 0.0000166667;
  p.tokens["openai/gpt"] = {2.0, 8.0};
  UsageGroup g;
  g.calls = 1'000'000;
  g.gb_seconds = 1000;
  g.by_model = {{"openai/gpt", 500'000, 250'000}, {"local/tiny", 1'000'000, 1'000'000}};
  // 0.20 + 1000 * 0.0000166667 + 0.5 * 2 + 0.25 * 8 (local/tiny has no price)
  EXPECT_NEAR(price(g, p), 0.20 + 0.0166667 + 1.0 + 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(price(UsageGroup{}, p), 0.0);
}

TEST(Report, RowsNamedAfterGroupBy) {
  config::Pricing p;
  UsageGroup g;
  g.group = "summarize";
  g.calls = 7;
  g.errors = 1;
  g.cold_starts = 1;
  g.billed_ms = 812;
  g.gb_seconds = 0.203;
  g.tokens_in = 3;
  g.tokens_out = 4;
  g.cache_hits = 2;
  auto report = usage_report({g}, GroupBy::function, p);
  const auto& rows = report.at("rows").as_array();
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0].as_object();
  EXPECT_EQ(row.at("function").as_string(), "summarize");
  EXPECT_EQ(row.at("calls").as_int64(), 7);
  EXPECT_EQ(row.at("errors").as_int64(), 1);
  EXPECT_EQ(row.at("cold_starts").as_int64(), 1);
  EXPECT_EQ(row.at("billed_ms").as_int64(), 812);
  EXPECT_DOUBLE_EQ(row.at("gb_seconds").as_double(), 0.203);
  EXPECT_EQ(row.at("tokens_in").as_int64(), 3);
  EXPECT_EQ(row.at("tokens_out").as_int64(), 4);
  EXPECT_EQ(row.at("cache_hits").as_int64(), 2);
  EXPECT_NEAR(row.at("cost").as_double(), 7 * 0.2 / 1e6 + 0.203 * 0.0000166667, 1e-15);
  EXPECT_EQ(row.size(), 10u);

  for (auto [by, field] : {std::pair{GroupBy::key, "key"}, {GroupBy::day, "day"}, {GroupBy::model, "model"}}) {
    auto r = usage_report({g}, by, p);
    EXPECT_TRUE(r.at("rows").as_array()[0].as_object().contains(field)) << boost::json::serialize(r);
  }
  EXPECT_TRUE(usage_report({}, GroupBy::day, p).at("rows").as_array().empty());
}

TEST(Report, ParseGroupBy) {
  EXPECT_EQ(parse_group_by("function").value(), GroupBy::function);
  EXPECT_EQ(parse_group_by("key").value(), GroupBy::key);
  EXPECT_EQ(parse_group_by("day").value(), GroupBy::day);
  EXPECT_EQ(parse_group_by("model").value(), GroupBy::model);
  auto bad = parse_group_by("week");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().type, ErrorType::bad_request);
  EXPECT_NE(bad.error().message.find("week"), std::string::npos);
}

}  // namespace
}  // namespace aifn::metering
