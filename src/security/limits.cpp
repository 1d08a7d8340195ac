#include "security/limits.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace aifn::security {
namespace {

std::int64_t epoch_day() {
  return std::chrono::duration_cast<std::chrono::days>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int seconds_to_midnight() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto next = std::chrono::duration_cast<std::chrono::days>(now) + std::chrono::days(1);
  return static_cast<int>(std::chrono::ceil<std::chrono::seconds>(next - now).count());
}

}  // namespace

Expected<void> Limits::take(Bucket& b, const Rate& r, double n, Clock::time_point now, ErrorType type,
                            const char* what) {
  if (r.per_second <= 0) return {};
  if (!b.init) {
    b.tokens = r.burst;
    b.last = now;
    b.init = true;
  }
  b.tokens = std::min(r.burst, b.tokens + std::chrono::duration<double>(now - b.last).count() * r.per_second);
  b.last = now;
  if (b.tokens >= n) {
    b.tokens -= n;
    return {};
  }
  Error e(type, fmt::format("this key's {} limit is reached", what));
  e.retry_after_seconds = std::max(1, static_cast<int>(std::ceil((n - b.tokens) / r.per_second)));
  return tl::unexpected(std::move(e));
}

Expected<void> Limits::take_request(const ApiKey& key, Clock::time_point now) {
  std::lock_guard lk(mu_);
  return take(requests_[key.row.id], key.rate, 1, now, ErrorType::rate_limited, "request rate");
}

Expected<void> Limits::take_tokens(const ApiKey& key, double tokens, Clock::time_point now) {
  std::lock_guard lk(mu_);
  // A request larger than the whole bucket could never pass: it may start
  // when the bucket is full, and the debt is paid by waiting.
  double n = key.tokens.per_second > 0 ? std::min(tokens, key.tokens.burst) : tokens;
  return take(tokens_[key.row.id], key.tokens, n, now, ErrorType::rate_limited, "token rate");
}

void Limits::charge_tokens(const ApiKey& key, double tokens) {
  if (key.tokens.per_second <= 0) return;
  std::lock_guard lk(mu_);
  tokens_[key.row.id].tokens -= tokens;
}

Limits::Day& Limits::today(const std::string& key_id) {
  auto& d = days_[key_id];
  auto now = epoch_day();
  if (d.day != now) d = Day{now, 0, 0};
  return d;
}

Expected<void> Limits::reserve(const ApiKey& key, double worst_case) {
  if (!key.budget_per_day) return {};
  std::lock_guard lk(mu_);
  auto& d = today(key.row.id);
  if (d.spent + d.reserved + worst_case > *key.budget_per_day) {
    Error e(ErrorType::budget_exceeded,
            fmt::format("this key's budget of {:.2f} a day is spent ({:.6f} spent, {:.6f} held by calls in flight, "
                        "this call may cost up to {:.6f})",
                        *key.budget_per_day, d.spent, d.reserved, worst_case));
    e.retry_after_seconds = seconds_to_midnight();
    return tl::unexpected(std::move(e));
  }
  d.reserved += worst_case;
  return {};
}

void Limits::settle(const ApiKey& key, double reserved, double actual) {
  if (!key.budget_per_day) return;
  std::lock_guard lk(mu_);
  auto& d = today(key.row.id);
  d.reserved = std::max(0.0, d.reserved - reserved);
  d.spent += actual;
}

void Limits::set_spent_today(const std::string& key_id, double spent) {
  std::lock_guard lk(mu_);
  today(key_id).spent = spent;
}

double Limits::spent_today(const std::string& key_id) {
  std::lock_guard lk(mu_);
  return today(key_id).spent;
}

}  // namespace aifn::security
