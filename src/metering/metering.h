// aifn::metering — records one UsageRecord per call without touching the disk
// on the caller's thread: record() appends to an in-memory batch that a
// background thread writes in one transaction every flush interval (or when
// the batch is full). Pricing turns aggregates into money with [pricing].
// record() and flush() are safe from any thread.
//
// The writer thread runs under SCHED_IDLE where the process may raise it
// again (CAP_SYS_NICE): it then only takes CPU time that calls leave over,
// and a woken call preempts it at once. A backlog of kBoostBatches batches,
// a flush() or shutdown raises it to SCHED_OTHER until it has caught up.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/object.hpp>

#include "config/config.h"
#include "store/store.h"

namespace aifn::metering {

class Meter {
 public:
  Meter(store::UsageWriter& store, std::chrono::milliseconds flush_interval = std::chrono::milliseconds(100),
        std::size_t max_batch = 1024);
  ~Meter();  // flushes what is pending
  Meter(const Meter&) = delete;
  Meter& operator=(const Meter&) = delete;

  void record(store::UsageRecord r);
  // Blocks until everything recorded before the call is in the store, or
  // until a write attempt fails (the records then stay pending, are logged
  // and retried next round), so a broken store never hangs the caller.
  void flush();
  std::uint64_t written() const;  // records in the store
  std::uint64_t batches() const;  // transactions written (tests: batching works)
  std::uint64_t dropped() const;  // records given up at shutdown (store down)
  // The writer thread's id (0 until it runs) and whether it runs at idle
  // priority now (tests).
  pid_t writer_tid() const { return writer_tid_.load(); }
  bool writer_idle() const;
  bool uses_idle_priority() const { return idle_capable_; }

  // Pending batches that raise the writer out of SCHED_IDLE.
  static constexpr std::size_t kBoostBatches = 4;

 private:
  void run();
  // Raises the idle writer to SCHED_OTHER. REQUIRES: mu_ held.
  void boost_locked();
  store::UsageWriter& store_;
  const std::chrono::milliseconds interval_;
  const std::size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // wakes the writer
  std::condition_variable flushed_;  // wakes flush() callers
  std::vector<store::UsageRecord> pending_;  // guarded by mu_
  std::uint64_t recorded_ = 0;               // guarded by mu_
  std::uint64_t written_ = 0;                // guarded by mu_
  std::uint64_t batches_ = 0;                // guarded by mu_
  std::uint64_t failures_ = 0;               // failed write rounds; guarded by mu_
  std::uint64_t dropped_ = 0;                // guarded by mu_
  int flush_waiters_ = 0;                    // guarded by mu_: write now, don't wait the interval
  bool stop_ = false;                        // guarded by mu_
  bool idle_capable_ = false;                // SCHED_IDLE is used; set before writer_ starts
  bool idle_now_ = false;                    // the writer is at SCHED_IDLE; guarded by mu_
  std::atomic<pid_t> writer_tid_{0};
  std::thread writer_;
};

// Billed GB-seconds for a call: memory in GB (MiB/1024) x billed seconds.
double gb_seconds(std::int64_t memory_mb, std::int64_t billed_ms);

// Cost of one aggregate row with the configured prices.
double price(const store::UsageGroup& g, const config::Pricing& p);
// Cost of one call's record (for budgets settled call by call).
double record_cost(const store::UsageRecord& r, const config::Pricing& p);

// DESIGN.md §6: {"rows": [{"<group_by>": ..., "calls": ..., ..., "cost": ...}]}
boost::json::object usage_report(const std::vector<store::UsageGroup>& groups, store::GroupBy by,
                                 const config::Pricing& p);

// "function" | "key" | "day" | "model"
Expected<store::GroupBy> parse_group_by(const std::string& s);

}  // namespace aifn::metering
