#include "gateway/metrics.h"

#include <fmt/format.h>

namespace aifn::gateway {

void Metrics::call(const std::string& function, int status, const std::string& error_type, double seconds,
                   bool cold) {
  auto& f = fns_[function];
  ++f.by_status[status];
  if (!error_type.empty()) ++f.errors[error_type];
  if (cold) ++f.cold_starts;
  for (std::size_t i = 0; i < kBuckets.size(); ++i)
    if (seconds <= kBuckets[i]) ++f.buckets[i];
  ++f.count;
  f.sum += seconds;
}

std::string Metrics::render(const std::map<std::string, std::size_t>& live) const {
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "# HELP aifn_calls_total Calls answered, by function and HTTP status.\n# TYPE aifn_calls_total counter\n");
  for (auto& [fn, f] : fns_)
    for (auto& [st, n] : f.by_status) fmt::format_to(it, "aifn_calls_total{{function=\"{}\",status=\"{}\"}} {}\n", fn, st, n);
  fmt::format_to(it, "# HELP aifn_errors_total Failed calls, by function and error type.\n# TYPE aifn_errors_total counter\n");
  for (auto& [fn, f] : fns_)
    for (auto& [t, n] : f.errors) fmt::format_to(it, "aifn_errors_total{{function=\"{}\",type=\"{}\"}} {}\n", fn, t, n);
  fmt::format_to(it, "# HELP aifn_cold_starts_total Calls that started a new instance.\n# TYPE aifn_cold_starts_total counter\n");
  for (auto& [fn, f] : fns_) fmt::format_to(it, "aifn_cold_starts_total{{function=\"{}\"}} {}\n", fn, f.cold_starts);
  fmt::format_to(it, "# HELP aifn_call_duration_seconds Time from request to the last byte of the answer.\n"
       "# TYPE aifn_call_duration_seconds histogram\n");
  for (auto& [fn, f] : fns_) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      fmt::format_to(it, "aifn_call_duration_seconds_bucket{{function=\"{}\",le=\"{}\"}} {}\n", fn, kBuckets[i], f.buckets[i]);
    fmt::format_to(it, "aifn_call_duration_seconds_bucket{{function=\"{}\",le=\"+Inf\"}} {}\n", fn, f.count);
    fmt::format_to(it, "aifn_call_duration_seconds_sum{{function=\"{}\"}} {}\n", fn, f.sum);
    fmt::format_to(it, "aifn_call_duration_seconds_count{{function=\"{}\"}} {}\n", fn, f.count);
  }
  fmt::format_to(it, "# HELP aifn_live_instances Instances running now (starting, busy or idle).\n"
       "# TYPE aifn_live_instances gauge\n");
  for (auto& [fn, n] : live) fmt::format_to(it, "aifn_live_instances{{function=\"{}\"}} {}\n", fn, n);
  return out;
}

}  // namespace aifn::gateway
