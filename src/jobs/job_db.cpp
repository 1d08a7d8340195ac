#include "jobs/job_db.h"

#include <spdlog/spdlog.h>

#include "base/units.h"

namespace aifn::jobs {
namespace net = boost::asio;

JobDb::JobDb(net::any_io_executor io, store::Store& store, std::int64_t window_ms)
    : io_(std::move(io)), store_(store), window_ms_(window_ms), thread_([this] { run(); }) {}

JobDb::~JobDb() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void JobDb::insert(store::JobRecord rec, InsertDone done) {
  {
    std::lock_guard lk(mu_);
    inserts_.push_back({std::move(rec), std::move(done)});
  }
  cv_.notify_one();
}

void JobDb::update(store::JobUpdate u, UpdateDone done) {
  {
    std::lock_guard lk(mu_);
    updates_.push_back({std::move(u), std::move(done)});
  }
  cv_.notify_one();
}

void JobDb::call(std::function<void(store::Store&)> fn) {
  {
    std::lock_guard lk(mu_);
    calls_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

std::uint64_t JobDb::commits() const {
  std::lock_guard lk(mu_);
  return commits_;
}

net::awaitable<Expected<store::EnqueueOutcome>> JobDb::insert_async(store::JobRecord& rec) {
  return await_callback<Expected<store::EnqueueOutcome>>(
      [this, &rec](std::function<void(Expected<store::EnqueueOutcome>)> deliver) {
        insert(std::move(rec), std::move(deliver));
      });
}

net::awaitable<bool> JobDb::update_async(store::JobUpdate& u) {
  return await_callback<bool>(
      [this, &u](std::function<void(bool)> deliver) { update(std::move(u), std::move(deliver)); });
}

void JobDb::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !inserts_.empty() || !updates_.empty() || !calls_.empty(); });
    if (inserts_.empty() && updates_.empty() && calls_.empty()) break;  // stop_ and drained
    auto inserts = std::move(inserts_);
    auto updates = std::move(updates_);
    auto calls = std::move(calls_);
    inserts_.clear();
    updates_.clear();
    calls_.clear();
    lk.unlock();
    if (!inserts.empty() || !updates.empty()) {
      std::vector<store::JobRecord> recs;
      recs.reserve(inserts.size());
      for (auto& i : inserts) recs.push_back(std::move(i.rec));
      std::vector<store::JobUpdate> ups;
      ups.reserve(updates.size());
      for (auto& u : updates) ups.push_back(std::move(u.u));
      const std::int64_t now = epoch_ms_now();
      std::vector<bool> applied;
      auto r = store_.write_jobs(recs, ups, now - window_ms_, &applied);
      if (!r) spdlog::error("event=job_commit_failed inserts={} updates={} error=\"{}\"", recs.size(), ups.size(),
                            r.error().message);
      // Answers go back to the io thread only now: each write is on disk.
      std::vector<Expected<store::EnqueueOutcome>> outs;
      for (std::size_t i = 0; i < inserts.size(); ++i)
        outs.push_back(r ? Expected<store::EnqueueOutcome>((*r)[i]) : tl::unexpected(r.error()));
      net::post(io_, [inserts = std::move(inserts), updates = std::move(updates), outs = std::move(outs),
                        applied = std::move(applied)]() mutable {
          for (std::size_t i = 0; i < inserts.size(); ++i)
            if (inserts[i].done) inserts[i].done(std::move(outs[i]));
          for (std::size_t i = 0; i < updates.size(); ++i)
            if (updates[i].done) updates[i].done(i < applied.size() && applied[i]);
        });
    }
    for (auto& c : calls) c(store_);
    lk.lock();
    ++commits_;
  }
}

}  // namespace aifn::jobs
