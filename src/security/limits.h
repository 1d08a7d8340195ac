// aifn::security::Limits — per-key request rate and token rate (token
// buckets) and the daily budget (DESIGN.md §9). A call reserves its
// worst-case cost before it is dispatched and settles to the real cost after,
// so a burst of parallel calls cannot spend past the budget.
// Thread-safe: one mutex.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "base/error.h"
#include "security/api_keys.h"

namespace aifn::security {

class Limits {
 public:
  using Clock = std::chrono::steady_clock;

  // One request against the key's `rate`: 429 rate_limited with Retry-After.
  Expected<void> take_request(const ApiKey& key, Clock::time_point now = Clock::now());
  // Tokens about to be generated or read, against the key's `tokens` rate.
  Expected<void> take_tokens(const ApiKey& key, double tokens, Clock::time_point now = Clock::now());
  // Tokens used beyond what was taken: the bucket goes into debt.
  void charge_tokens(const ApiKey& key, double tokens);

  // Reserves `worst_case` against today's budget: 429 budget_exceeded (with
  // Retry-After to the next UTC midnight) when spent + reserved + it > budget.
  Expected<void> reserve(const ApiKey& key, double worst_case);
  // Replaces a reservation by what the call really cost.
  void settle(const ApiKey& key, double reserved, double actual);
  // Spending already recorded today (from the usage records, at start).
  void set_spent_today(const std::string& key_id, double spent);
  double spent_today(const std::string& key_id);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
    bool init = false;
  };
  struct Day {
    std::int64_t day = 0;  // days since the epoch (UTC)
    double spent = 0;
    double reserved = 0;
  };
  static Expected<void> take(Bucket& b, const Rate& r, double n, Clock::time_point now, ErrorType type,
                             const char* what);
  Day& today(const std::string& key_id);  // REQUIRES: mu_ held

  std::mutex mu_;
  std::map<std::string, Bucket> requests_;  // guarded by mu_
  std::map<std::string, Bucket> tokens_;    // guarded by mu_
  std::map<std::string, Day> days_;         // guarded by mu_
};

}  // namespace aifn::security
