#include "metering/cost.h"

#include <gtest/gtest.h>

namespace aifn::metering {
namespace {

store::CapacityRow row(std::string fn, std::int64_t calls, double gb_s, std::int64_t mem, std::int64_t peak) {
  store::CapacityRow r;
  r.function = std::move(fn);
  r.calls = calls;
  r.gb_seconds = gb_s;
  r.memory_mb = mem;
  r.peak_concurrency = peak;
  r.first_ms = 1'000'000;
  r.last_ms = 1'000'000 + 3'600'000;
  return r;
}

TEST(Cost, ComparesServerlessWithAlwaysOnCapacityForTheWindow) {
  config::Pricing p;
  p.per_million_requests = 0.20;
  p.per_gb_second = 0.0000166667;
  p.always_on_per_gb_hour = 0.01;
  // One hour. "busy": 1 GiB, peak 2, 1,000,000 calls, 3,000 GB-s.
  // "idle": 2 GiB, peak 1, 10 calls, 1 GB-s.
  auto report = cost_report({row("busy", 1'000'000, 3000, 1024, 2), row("idle", 10, 1, 2048, 1)}, p, 0,
                            1'000'000 + 3'600'000);
  EXPECT_EQ(report.at("since_ms").to_number<std::int64_t>(), 1'000'000);  // first call
  EXPECT_DOUBLE_EQ(report.at("hours").to_number<double>(), 1.0);
  const auto& rows = report.at("rows").as_array();
  const auto& busy = rows[0].as_object();
  EXPECT_NEAR(busy.at("serverless_cost").to_number<double>(), 0.20 + 3000 * 0.0000166667, 1e-12);
  EXPECT_NEAR(busy.at("always_on_cost").to_number<double>(), 2 * 1.0 * 0.01, 1e-12);  // 2 GB for 1 h
  EXPECT_EQ(busy.at("cheaper").as_string(), "always_on");
  EXPECT_NEAR(busy.at("utilization").to_number<double>(), 3000.0 / (2 * 3600), 1e-12);
  EXPECT_NEAR(busy.at("break_even_traffic").to_number<double>(), 0.02 / (0.20 + 0.05), 1e-6);
  const auto& idle = rows[1].as_object();
  EXPECT_EQ(idle.at("cheaper").as_string(), "serverless");
  EXPECT_GT(idle.at("break_even_traffic").to_number<double>(), 1000.0);
  const auto& total = report.at("total").as_object();
  EXPECT_EQ(total.at("calls").to_number<std::int64_t>(), 1'000'010);
  EXPECT_NEAR(total.at("always_on_cost").to_number<double>(), 0.02 + 0.02, 1e-12);
}

TEST(Cost, AlwaysOnDefaultsToTheServerlessGbRateAndZeroCostHasNoBreakEven) {
  config::Pricing p;
  p.per_million_requests = 0;
  p.per_gb_second = 0;
  auto report = cost_report({row("free", 5, 0.5, 1024, 1)}, p, 0, 1'000'000 + 3'600'000);
  const auto& r = report.at("rows").as_array()[0].as_object();
  EXPECT_EQ(r.at("always_on_cost").to_number<double>(), 0.0);
  EXPECT_TRUE(r.at("break_even_traffic").is_null());
  EXPECT_EQ(r.at("cheaper").as_string(), "serverless");
  config::Pricing q;
  EXPECT_DOUBLE_EQ(q.always_on_per_gb_second(), q.per_gb_second);
}

TEST(Cost, EmptyWindowGivesEmptyRowsAndZeroTotals) {
  auto report = cost_report({}, config::Pricing{}, 5'000, 5'000);
  EXPECT_TRUE(report.at("rows").as_array().empty());
  EXPECT_EQ(report.at("total").at("calls").to_number<std::int64_t>(), 0);
  EXPECT_EQ(report.at("hours").to_number<double>(), 0.0);
}

}  // namespace
}  // namespace aifn::metering
