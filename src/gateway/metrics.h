// Per-function counters for GET /metrics in the Prometheus text exposition
// format: calls by status, errors by type, cold starts, a call-duration
// histogram, and live instances (read from the pools at scrape time).
// io thread only.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace aifn::gateway {

class Metrics {
 public:
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1,     2.5,  5,    10};
  void call(const std::string& function, int status, const std::string& error_type, double seconds, bool cold);
  // `live` gives the instance count per function at scrape time.
  std::string render(const std::map<std::string, std::size_t>& live) const;

 private:
  struct Fn {
    std::map<int, std::uint64_t> by_status;
    std::map<std::string, std::uint64_t> errors;
    std::uint64_t cold_starts = 0;
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  std::map<std::string, Fn> fns_;
};

}  // namespace aifn::gateway
