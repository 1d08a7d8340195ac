#include "metering/cost.h"

#include <algorithm>

#include "metering/metering.h"

namespace aifn::metering {
namespace {

struct Costs {
  double serverless = 0;
  double always_on = 0;
  double busy_gb_s = 0;
  double capacity_gb_s = 0;
};

void put_comparison(boost::json::object& o, const Costs& c) {
  o["utilization"] = c.capacity_gb_s > 0 ? c.busy_gb_s / c.capacity_gb_s : 0.0;
  o["serverless_cost"] = c.serverless;
  o["always_on_cost"] = c.always_on;
  o["cheaper"] = c.serverless <= c.always_on ? "serverless" : "always_on";
  if (c.serverless > 0) o["break_even_traffic"] = c.always_on / c.serverless;
  else o["break_even_traffic"] = nullptr;
}

}  // namespace

boost::json::object cost_report(const std::vector<store::CapacityRow>& rows, const config::Pricing& p,
                                std::int64_t since_ms, std::int64_t until_ms) {
  if (since_ms == 0 && !rows.empty()) {
    since_ms = std::min_element(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.first_ms < b.first_ms; })
                   ->first_ms;
  }
  const double seconds = std::max<double>(0.0, double(until_ms - since_ms) / 1000.0);
  boost::json::array out;
  Costs total;
  std::int64_t calls = 0;
  for (const store::CapacityRow& r : rows) {
    Costs c;
    store::UsageGroup g;  // no tokens: they cost the same either way
    g.calls = r.calls;
    g.gb_seconds = r.gb_seconds;
    c.serverless = price(g, p);
    c.busy_gb_s = r.gb_seconds;
    c.capacity_gb_s = double(r.peak_concurrency) * (double(r.memory_mb) / 1024.0) * seconds;
    c.always_on = c.capacity_gb_s * p.always_on_per_gb_second();
    boost::json::object o{{"function", r.function},
                          {"calls", r.calls},
                          {"peak_concurrency", r.peak_concurrency},
                          {"memory_mb", r.memory_mb},
                          {"gb_seconds", r.gb_seconds}};
    put_comparison(o, c);
    out.push_back(std::move(o));
    total.serverless += c.serverless;
    total.always_on += c.always_on;
    total.busy_gb_s += c.busy_gb_s;
    total.capacity_gb_s += c.capacity_gb_s;
    calls += r.calls;
  }
  boost::json::object t{{"calls", calls}, {"gb_seconds", total.busy_gb_s}};
  put_comparison(t, total);
  return {{"since_ms", since_ms},
          {"until_ms", until_ms},
          {"hours", seconds / 3600.0},
          {"rows", std::move(out)},
          {"total", std::move(t)}};
}

}  // namespace aifn::metering
