// aifn::metering — `aifn cost` (DESIGN.md §9): what the recorded traffic cost
// serverless against always-on instances sized for it, over the same window.
#pragma once
#include <cstdint>
#include <vector>

#include <boost/json/object.hpp>

#include "config/config.h"
#include "store/store.h"

namespace aifn::metering {

// Always-on capacity for a function = its peak concurrency x its memory,
// running for the whole window [since_ms, until_ms) at
// Pricing::always_on_per_gb_second(). Serverless = requests + GB-seconds at
// [pricing] (tokens cost the same either way and are left out). since_ms 0 =
// the first recorded call. Body of GET /admin/cost:
// {"since_ms", "until_ms", "hours", "rows": [{"function", "calls",
//  "peak_concurrency", "memory_mb", "gb_seconds", "utilization",
//  "serverless_cost", "always_on_cost", "cheaper", "break_even_traffic"}],
//  "total": {same fields but function, peak and memory}}
// utilization = busy GB-seconds / always-on GB-seconds; break_even_traffic =
// the multiple of the recorded traffic at which serverless would cost as much
// as the always-on capacity (null when serverless cost nothing).
boost::json::object cost_report(const std::vector<store::CapacityRow>& rows, const config::Pricing& p,
                                std::int64_t since_ms, std::int64_t until_ms);

}  // namespace aifn::metering
