#include "metering/metering.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <boost/json/array.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::metering {
namespace {

// At shutdown a failing store gets this many more tries before the pending
// records are given up (and counted and logged as dropped).
constexpr int kStopAttempts = 3;

constexpr int kCapSysNice = 23;  // <linux/capability.h>

// sched(7): leaving SCHED_IDLE takes CAP_SYS_NICE, or an RLIMIT_NICE that
// allows nice 0. Without either, a writer put at idle priority could never be
// raised again, so it stays at SCHED_OTHER.
bool may_leave_sched_idle() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NICE, &rl) == 0 && rl.rlim_cur >= 20) return true;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("CapEff:", 0) == 0) return (std::strtoull(line.c_str() + 7, nullptr, 16) >> kCapSysNice) & 1;
  return false;
}

bool set_policy(pid_t tid, int policy) {
  sched_param p{};
  return ::sched_setscheduler(tid, policy, &p) == 0;
}

}  // namespace

Meter::Meter(store::UsageWriter& store, std::chrono::milliseconds flush_interval, std::size_t max_batch)
    : store_(store),
      interval_(flush_interval),
      max_batch_(std::max<std::size_t>(max_batch, 1)),
      idle_capable_(may_leave_sched_idle()) {
  writer_ = std::thread([this] { run(); });
}

Meter::~Meter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    boost_locked();
  }
  cv_.notify_one();
  writer_.join();
}

void Meter::boost_locked() {
  if (!idle_now_) return;
  if (set_policy(writer_tid_.load(), SCHED_OTHER)) idle_now_ = false;
  else spdlog::warn("event=usage_writer_boost_failed errno={}", errno);
}

bool Meter::writer_idle() const {
  std::lock_guard lock(mu_);
  return idle_now_;
}

void Meter::record(store::UsageRecord r) {
  bool full;
  {
    std::lock_guard lock(mu_);
    pending_.push_back(std::move(r));
    ++recorded_;
    full = pending_.size() >= max_batch_;
    if (pending_.size() >= kBoostBatches * max_batch_) boost_locked();
  }
  if (full) cv_.notify_one();
}

void Meter::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = recorded_;
  const std::uint64_t failures = failures_;
  if (written_ + dropped_ >= target) return;
  boost_locked();  // someone waits for it now
  ++flush_waiters_;
  cv_.notify_one();
  flushed_.wait(lock, [&] { return written_ + dropped_ >= target || failures_ != failures; });
  --flush_waiters_;
}

std::uint64_t Meter::written() const {
  std::lock_guard lock(mu_);
  return written_;
}

std::uint64_t Meter::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

std::uint64_t Meter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void Meter::run() {
  writer_tid_ = ::gettid();
  // Measured (docs/PERFORMANCE.md, tenth session): at one connection a batch
  // written at normal priority held up 1-2 % of calls by ~2 ms (exec hello
  // p99 1.8 -> 0.4 ms at SCHED_IDLE); throughput at 16 connections did not
  // change beyond the noise.
  const bool idle = idle_capable_ && set_policy(0, SCHED_IDLE);
  std::unique_lock lock(mu_);
  idle_now_ = idle;
  bool failed = false;  // the last round failed: wait a full interval before retrying
  int stop_attempts = 0;
  for (;;) {
    if (failed) {
      // Not woken by record() or flush(): retrying a broken store in a loop
      // would only burn CPU. stop_ still ends the wait.
      bool was_stopping = stop_;
      cv_.wait_for(lock, interval_, [&] { return stop_ && !was_stopping; });
    } else {
      // A flush waiter only counts while there is something to write: with
      // nothing pending this loop would spin holding mu_ and starve it.
      cv_.wait_for(lock, interval_, [&] {
        return stop_ || pending_.size() >= max_batch_ || (flush_waiters_ > 0 && !pending_.empty());
      });
    }
    failed = false;
    // Write everything pending, max_batch_ records per transaction, oldest first.
    while (!pending_.empty()) {
      std::vector<store::UsageRecord> batch;
      if (pending_.size() <= max_batch_) {
        batch.swap(pending_);
      } else {
        auto end = pending_.begin() + static_cast<std::ptrdiff_t>(max_batch_);
        batch.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(end));
        pending_.erase(pending_.begin(), end);
      }
      lock.unlock();
      auto r = store_.insert_usage(batch);
      lock.lock();
      if (r) {
        written_ += batch.size();
        ++batches_;
        continue;
      }
      // Put the batch back in front so order (and flush()'s count) holds.
      pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      ++failures_;
      failed = true;
      spdlog::warn("usage write failed, will retry: pending={} error=\"{}\"", pending_.size(), r.error().message);
      break;
    }
    if (stop_ && failed && ++stop_attempts >= kStopAttempts) {
      dropped_ += pending_.size();
      spdlog::error("usage records lost at shutdown: dropped={} reason=\"store kept failing\"", pending_.size());
      pending_.clear();
    }
    flushed_.notify_all();
    if (stop_ && pending_.empty()) return;
    // Caught up and nobody waiting: back to idle priority.
    if (idle_capable_ && !idle_now_ && !stop_ && flush_waiters_ == 0 && pending_.size() < max_batch_ &&
        set_policy(0, SCHED_IDLE))
      idle_now_ = true;
  }
}

double gb_seconds(std::int64_t memory_mb, std::int64_t billed_ms) {
  return (static_cast<double>(memory_mb) / 1024.0) * (static_cast<double>(billed_ms) / 1000.0);
}

double price(const store::UsageGroup& g, const config::Pricing& p) {
  double cost = static_cast<double>(g.calls) * p.per_million_requests / 1e6 + g.gb_seconds * p.per_gb_second;
  for (const auto& m : g.by_model) {
    auto it = p.tokens.find(m.model);
    if (it == p.tokens.end()) continue;  // unpriced models cost nothing
    cost += static_cast<double>(m.tokens_in) * it->second.input_per_million / 1e6 +
            static_cast<double>(m.tokens_out) * it->second.output_per_million / 1e6;
  }
  return cost;
}

double record_cost(const store::UsageRecord& r, const config::Pricing& p) {
  store::UsageGroup g;
  g.calls = 1;
  g.gb_seconds = r.gb_seconds;
  if (!r.model.empty()) g.by_model.push_back({r.model, r.tokens_in, r.tokens_out});
  return price(g, p);
}

namespace {

const char* group_field(store::GroupBy by) {
  switch (by) {
    case store::GroupBy::function: return "function";
    case store::GroupBy::key: return "key";
    case store::GroupBy::day: return "day";
    case store::GroupBy::model: return "model";
  }
  return "function";
}

}  // namespace

boost::json::object usage_report(const std::vector<store::UsageGroup>& groups, store::GroupBy by,
                                 const config::Pricing& p) {
  boost::json::array rows;
  rows.reserve(groups.size());
  for (const auto& g : groups) {
    boost::json::object row;
    row[group_field(by)] = g.group;
    row["calls"] = g.calls;
    row["errors"] = g.errors;
    row["cold_starts"] = g.cold_starts;
    row["billed_ms"] = g.billed_ms;
    row["gb_seconds"] = g.gb_seconds;
    row["tokens_in"] = g.tokens_in;
    row["tokens_out"] = g.tokens_out;
    row["cache_hits"] = g.cache_hits;
    row["cost"] = price(g, p);
    rows.push_back(std::move(row));
  }
  boost::json::object out;
  out["rows"] = std::move(rows);
  return out;
}

Expected<store::GroupBy> parse_group_by(const std::string& s) {
  if (s == "function") return store::GroupBy::function;
  if (s == "key") return store::GroupBy::key;
  if (s == "day") return store::GroupBy::day;
  if (s == "model") return store::GroupBy::model;
  return fail(ErrorType::bad_request, fmt::format("group_by \"{}\" is not one of function, key, day, model", s));
}

}  // namespace aifn::metering
