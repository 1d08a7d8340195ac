#include "jobs/jobs.h"

#include <algorithm>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/units.h"
#include "jobs/job_db.h"
#include "jobs/webhooks.h"

namespace aifn::jobs {
namespace net = boost::asio;
using runtime::EventKind;

namespace {

// Jobs leased ahead of free slots, per slot, within [min, batch].
constexpr int kLeaseAheadPerSlot = 8;
constexpr int kLeaseAheadMin = 16;
constexpr int kLeaseBatch = 256;

std::string new_job_id() {
  // Time-ordered (ms since epoch) then 64 random bits: unique, not secret.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("job_{:011x}{:016x}", epoch_ms_now(), rng());
}

// Exponential backoff with jitter: backoff x 2^(attempt-1), then a random
// point in its upper half, so retries of many jobs that failed together
// spread out instead of hitting the function at once.
std::int64_t retry_delay_ms(std::int64_t backoff_ms, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double d = static_cast<double>(backoff_ms) * std::pow(2.0, std::min(attempt - 1, 20));
  d = std::min(d, 3'600'000.0);  // at most an hour between attempts
  std::uniform_real_distribution<double> half(0.5, 1.0);
  return static_cast<std::int64_t>(d * half(rng));
}

std::string error_json(const Error& e) { return error_body(e); }

}  // namespace

bool is_final_status(const std::string& s) { return s == "succeeded" || s == "failed" || s == "cancelled"; }

// One job this node is running.
struct Jobs::Running {
  store::JobRecord job;
  std::shared_ptr<runtime::Invocation> inv;
  bool cancelled = false;
  std::shared_ptr<void> carried_grant;    // adopted calls: their model grant
  std::unique_ptr<ModelAccess> models;  // this run's model-gateway access
};

Jobs::Jobs(net::io_context& io, store::Store& store, functions::Registry& registry, metering::Meter& meter,
           JobsOptions opts)
    : io_(io),
      store_(store),
      registry_(registry),
      meter_(meter),
      opts_(std::move(opts)),
      db_(std::make_unique<JobDb>(io.get_executor(), store, opts_.idempotency_window.count())),
      wake_(io),
      beat_(io),
      purge_timer_(io) {
  webhooks_ = std::make_unique<Webhooks>(*db_, WebhookOptions{opts_.webhook_secret, opts_.callback_backoff,
                                                             opts_.callback_max_attempts, opts_.callback_timeout,
                                                             opts_.callback_ca_file});
}

Jobs::~Jobs() {
  stop();
  webhooks_.reset();  // its thread may still hand updates to db_
  db_.reset();
}

int Jobs::job_slots(const runtime::Pool& pool) {
  // The sharing rule: jobs leave one instance's worth of slots to
  // synchronous calls (which also go first in the pool's queue); a
  // function with a single instance shares it, sync calls first.
  const auto& c = pool.spec().cfg;
  return std::max(1, c.max_instances - 1) * c.concurrency;
}

void Jobs::start() {
  stopped_ = false;
  draining_ = false;
  if (auto n = store_.release_leases(opts_.node_id); !n)
    spdlog::error("event=job_release_failed error=\"{}\"", n.error().message);
  else if (*n > 0)
    spdlog::info("event=jobs_reclaimed count={} node={}", *n, opts_.node_id);
  store::JobFilter pending;
  pending.callback_state = "pending";
  pending.limit = 0;
  if (auto js = store_.list_jobs(pending))
    for (auto& j : *js) webhooks_->deliver(j);
  net::co_spawn(io_, [this] { return worker(); }, net::detached);
  net::co_spawn(io_, [this] { return heartbeats(); }, net::detached);
  if (opts_.retention.count() > 0) net::co_spawn(io_, [this] { return purge(); }, net::detached);
}

void Jobs::drain() {
  draining_ = true;
  wake_.cancel();  // the worker sees it and leases no more
}

int Jobs::executing() const {
  int n = 0;
  for (const auto& [fn, active] : active_) n += active;
  return n;
}

void Jobs::stop() {
  if (stopped_) return;
  stopped_ = true;
  draining_ = true;
  wake_.cancel();
  beat_.cancel();
  purge_timer_.cancel();
  for (auto& [id, r] : running_)
    if (r->inv) r->inv->abort(Error(ErrorType::unavailable, "the server is stopping; the job will run again"));
  // After the writes already queued (results that committed in time).
  db_->call([owner = opts_.node_id](store::Store& s) {
    if (auto n = s.release_leases(owner); !n)
      spdlog::error("event=job_release_failed error=\"{}\"", n.error().message);
    else if (*n > 0)
      spdlog::info("event=jobs_released count={} node={}", *n, owner);
  });
}

void Jobs::poke() {
  poked_ = true;
  wake_.cancel();
}

net::awaitable<void> Jobs::worker() {
  while (!draining_) {
    poked_ = false;
    bool more = false;
    for (auto& d : registry_.all()) {
      if (!d->pool || draining_) continue;
      const std::string name = d->spec->cfg.name;
      const int slots = job_slots(*d->pool);
      dispatch(name);
      // Lease ahead, so a freed slot starts the next job without waiting
      // for a store round trip; refill when half of that is used up.
      const int target = std::clamp(slots * kLeaseAheadPerSlot, kLeaseAheadMin, kLeaseBatch);
      int in_hand = static_cast<int>(ready_[name].size());
      if (in_hand > target / 2) continue;
      int want = target - in_hand;
      std::string owner = opts_.node_id;
      std::int64_t lease_ms = opts_.lease.count();
      std::function<Expected<std::vector<store::JobRecord>>(store::Store&)> lease =
          [name, owner, lease_ms, want](store::Store& s) { return s.lease_jobs(name, owner, epoch_ms_now(), lease_ms, want); };
      auto got = co_await db_->call_async(lease);
      if (!got) {
        spdlog::error("event=job_lease_failed function={} error=\"{}\"", name, got.error().message);
        continue;
      }
      if (static_cast<int>(got->size()) == want) more = true;
      if (!got->empty()) spdlog::debug("event=jobs_leased function={} count={}", name, got->size());
      auto& ready = ready_[name];
      for (auto& j : *got) {
        auto r = std::make_shared<Running>();
        r->job = std::move(j);
        running_[r->job.id] = r;
        ready.push_back(r);
      }
      dispatch(name);
    }
    if (draining_) break;
    if (more || poked_) continue;
    wake_.expires_after(opts_.poll);
    boost::system::error_code ec;
    co_await wake_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

void Jobs::dispatch(const std::string& function) {
  auto dep = registry_.find(function);
  const int slots = dep && dep->pool ? job_slots(*dep->pool) : 1;
  auto& q = ready_[function];
  int& active = active_[function];
  while (!draining_ && active < slots && !q.empty()) {
    auto r = std::move(q.front());
    q.pop_front();
    if (r->cancelled) {  // cancelled while it waited here
      running_.erase(r->job.id);
      continue;
    }
    ++active;
    net::co_spawn(io_, [this, r] { return run(*r); }, net::detached);
  }
}

net::awaitable<void> Jobs::heartbeats() {
  while (!stopped_) {
    beat_.expires_after(opts_.heartbeat);
    boost::system::error_code ec;
    co_await beat_.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (stopped_) break;
    std::int64_t until = epoch_ms_now() + opts_.lease.count();
    for (auto& [id, r] : running_) {
      store::JobUpdate u;
      u.kind = store::JobUpdate::Kind::heartbeat;
      u.id = id;
      u.owner = opts_.node_id;
      u.lease_expires_ms = until;
      // A lease that no longer holds (cancelled, or taken over after this
      // node stalled past its expiry) stops the local run.
      db_->update(std::move(u), [this, id = id](bool applied) {
        if (applied) return;
        auto it = running_.find(id);
        if (it == running_.end()) return;
        it->second->cancelled = true;
        if (it->second->inv)
          it->second->inv->abort(Error(ErrorType::conflict, "the job's lease was lost (cancelled or taken over)"));
      });
    }
  }
}

net::awaitable<void> Jobs::purge() {
  // A tenth of the retention between sweeps (at least a second, at most an
  // hour); batches keep each delete short, so the writer thread that also
  // commits enqueues and results is never held for long.
  constexpr int kBatch = 1000;
  const Millis every = std::clamp(opts_.retention / 10, Millis(1000), Millis(3'600'000));
  while (!stopped_) {
    const std::int64_t before = epoch_ms_now() - opts_.retention.count();
    int purged = 0;
    for (;;) {
      std::function<Expected<int>(store::Store&)> sweep = [before](store::Store& s) {
        return s.purge_jobs(before, kBatch);
      };
      auto n = co_await db_->call_async(sweep);
      if (!n) {
        spdlog::error("event=job_purge_failed error=\"{}\"", n.error().message);
        break;
      }
      purged += *n;
      if (*n < kBatch || stopped_) break;
    }
    if (purged > 0) spdlog::info("event=jobs_purged count={} finished_before_ms={}", purged, before);
    purge_timer_.expires_after(every);
    boost::system::error_code ec;
    co_await purge_timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<void> Jobs::run(Running& ref) {
  auto keep = running_.at(ref.job.id);  // the map may drop it while we run
  Running& r = *keep;
  store::JobRecord& job = r.job;
  const std::int64_t started = epoch_ms_now();
  if (!r.inv) job.started_ms = started;
  publish(job.id, {"status", boost::json::serialize(job_json(job)), false});

  store::JobUpdate u;
  u.kind = store::JobUpdate::Kind::finish;
  u.id = job.id;
  u.owner = opts_.node_id;
  auto succeed = [&](std::string result) {
    u.status = "succeeded";
    u.result = std::move(result);
    u.finished_ms = epoch_ms_now();
  };
  auto failed = [&](const Error& e, bool retryable) {
    u.error = error_json(e);
    if (retryable && job.attempts < job.max_attempts) {
      u.status = "queued";
      u.run_after_ms = epoch_ms_now() + retry_delay_ms(job.backoff_ms, job.attempts);
    } else {
      u.status = "failed";
      u.finished_ms = epoch_ms_now();
    }
  };

  auto dep = registry_.find(job.function);
  if (!dep || !dep->pool) {
    failed(Error(ErrorType::not_found, fmt::format("function \"{}\" is no longer deployed", job.function)), false);
  } else if (!r.inv && job.attempts >= job.max_attempts) {
    // Every attempt has started and none committed an answer: the last one
    // ended with the node running it stopping.
    failed(Error(ErrorType::unavailable,
                 fmt::format("gave up after {} attempts; the last one ended when the node running it stopped",
                             job.max_attempts)),
           false);
  } else {
    Expected<std::shared_ptr<runtime::Invocation>> got = r.inv;  // adopted: already running
    if (!r.inv) {
      // The attempt counts from here; the commit needs no wait (it rides in
      // the next group, ahead of this run's result).
      ++job.attempts;
      store::JobUpdate start;
      start.kind = store::JobUpdate::Kind::start;
      start.id = job.id;
      start.owner = opts_.node_id;
      start.finished_ms = started;
      job.started_ms = started;
      db_->update(std::move(start));
      runtime::CallOptions co;
      co.timeout = Millis(job.timeout_ms > 0 ? job.timeout_ms : dep->spec->cfg.job_timeout.count());
      co.background = true;
      std::string input = job.input;
      got = co_await dep->pool->invoke(job.id, std::move(input), co);
    }
    if (!got) {
      if (got.error().type == ErrorType::throttled || got.error().type == ErrorType::unavailable) {
        // No instance now: not the function's fault, so not an attempt.
        u.status = "queued";
        u.refund_attempt = true;
        u.error = error_json(got.error());
        u.run_after_ms = epoch_ms_now() + 1000;
      } else {
        failed(got.error(), true);
      }
    } else {
      r.inv = *got;
      auto& inv = *r.inv;
      if (opts_.grant_models && !inv.token.empty())
        r.models = opts_.grant_models(*dep->spec, job.id, inv.token, r.carried_grant);
      std::string streamed;
      bool done = false;
      std::string usage_error;
      while (!done) {
        auto ev = co_await inv.next_event();
        switch (ev.kind) {
          case EventKind::result:
            succeed(std::move(ev.data));
            done = true;
            break;
          case EventKind::stream_start:
          case EventKind::handoff:
            break;
          case EventKind::chunk:
            if (ev.data == ": ping\n\n") break;  // our own SSE keep-alive, not the function's output
            publish(job.id, {"output", boost::json::serialize(boost::json::string(ev.data)), false});
            streamed += ev.data;
            break;
          case EventKind::done:
            succeed(boost::json::serialize(boost::json::string(streamed)));
            done = true;
            break;
          case EventKind::failed:
            usage_error = std::string(to_string(ev.error.type));
            failed(ev.error, !r.cancelled);
            done = true;
            break;
        }
      }
      store::UsageRecord ur;
      ur.id = job.id;
      ur.function = job.function;
      ur.version = dep->spec->version;
      ur.kind = "job";
      ur.start_ms = started;
      ur.status = usage_error.empty() ? 200 : 500;
      ur.error_type = usage_error;
      ur.memory_mb = static_cast<std::int64_t>(dep->spec->cfg.memory / (1024 * 1024));
      ur.cold_start = inv.cold_start;
      ur.init_ms = inv.init_ms;
      ur.duration_ms = inv.exec_ms();
      ur.billed_ms = inv.exec_started == runtime::Clock::time_point{} ? 0 : std::max<std::int64_t>(1, ur.duration_ms);
      ur.gb_seconds = metering::gb_seconds(ur.memory_mb, ur.billed_ms);
      if (r.models) r.models->fill_usage(ur);
      r.models.reset();  // the token stops working with the run
      meter_.record(std::move(ur));
    }
  }

  // The instance slot is free now: let the worker fill it while this
  // result commits (in a group with others).
  --active_[job.function];
  dispatch(job.function);
  poke();
  bool stopping = stopped_;
  std::string status = u.status;
  bool applied = stopping ? false : co_await db_->update_async(u);
  if (applied) {
    job.status = status;
    job.result = u.result;
    job.error = u.error;
    job.finished_ms = u.finished_ms;
    if (status == "queued") {
      job.run_after_ms = u.run_after_ms;
      if (u.refund_attempt) --job.attempts;
      publish(job.id, {"status", boost::json::serialize(job_json(job)), false});
    } else {
      if (!job.callback_url.empty()) job.callback_state = "pending";
      on_final(job);
    }
    if (status != "succeeded")
      spdlog::info("event=job_attempt_failed job={} function={} attempt={} next={}", job.id, job.function,
                   job.attempts, status);
  }
  running_.erase(job.id);
}

void Jobs::on_final(const store::JobRecord& job) {
  publish(job.id, {"status", boost::json::serialize(job_json(job)), true});
  if (!job.callback_url.empty()) webhooks_->deliver(job);
}

void Jobs::publish(const std::string& id, JobEvent ev) {
  auto it = feeds_.find(id);
  if (it == feeds_.end()) return;
  for (auto& w : it->second)
    if (auto f = w.lock()) {
      f->events.push_back(ev);
      f->wake.cancel();
    }
}

std::shared_ptr<JobFeed> Jobs::subscribe(const std::string& id) {
  auto f = std::make_shared<JobFeed>(io_.get_executor());
  auto& v = feeds_[id];
  std::erase_if(v, [](auto& w) { return w.expired(); });
  v.push_back(f);
  return f;
}

void Jobs::unsubscribe(const std::string& id, const std::shared_ptr<JobFeed>& feed) {
  auto it = feeds_.find(id);
  if (it == feeds_.end()) return;
  std::erase_if(it->second, [&](auto& w) { return w.expired() || w.lock() == feed; });
  if (it->second.empty()) feeds_.erase(it);
}

net::awaitable<Expected<std::pair<store::JobRecord, bool>>> Jobs::enqueue(const functions::Deployed& fn,
                                                                          EnqueueRequest& req) {
  const auto& cfg = fn.spec->cfg;
  store::JobRecord rec;
  rec.id = new_job_id();
  rec.function = cfg.name;
  rec.version = fn.spec->version;
  rec.input = std::move(req.input);
  rec.status = "queued";
  rec.max_attempts = cfg.retry.max_attempts;
  rec.backoff_ms = cfg.retry.backoff.count();
  rec.timeout_ms = cfg.job_timeout.count();
  rec.created_ms = epoch_ms_now();
  rec.run_after_ms = rec.created_ms;
  rec.callback_url = req.callback_url;
  rec.idempotency_key = req.idempotency_key;
  store::JobRecord copy = rec;
  auto out = co_await db_->insert_async(rec);
  if (!out) co_return tl::unexpected(out.error());
  if (out->existing) {
    auto old = co_await get(out->id);
    if (!old) co_return tl::unexpected(old.error());
    co_return std::pair<store::JobRecord, bool>(std::move(*old), true);
  }
  poke();
  co_return std::pair<store::JobRecord, bool>(std::move(copy), false);
}

net::awaitable<Expected<store::JobRecord>> Jobs::adopt(const functions::Deployed& fn,
                                                       const std::shared_ptr<runtime::Invocation>& inv,
                                                       const std::string& input,
                                                       const std::shared_ptr<void>& carried_grant) {
  const auto& cfg = fn.spec->cfg;
  store::JobRecord rec;
  rec.id = new_job_id();
  rec.function = cfg.name;
  rec.version = fn.spec->version;
  rec.input = input;
  rec.status = "running";
  rec.attempts = 1;
  rec.max_attempts = cfg.retry.max_attempts;
  rec.backoff_ms = cfg.retry.backoff.count();
  rec.timeout_ms = cfg.job_timeout.count();
  rec.created_ms = epoch_ms_now();
  rec.started_ms = rec.created_ms - inv->exec_ms();
  rec.lease_owner = opts_.node_id;
  rec.lease_expires_ms = rec.created_ms + opts_.lease.count();
  store::JobRecord copy = rec;
  auto out = co_await db_->insert_async(rec);
  if (!out) co_return tl::unexpected(out.error());
  auto r = std::make_shared<Running>();
  r->job = std::move(copy);
  r->inv = inv;
  r->carried_grant = carried_grant;
  ++active_[cfg.name];
  running_[r->job.id] = r;
  net::co_spawn(io_, [this, r] { return run(*r); }, net::detached);
  co_return r->job;
}

net::awaitable<Expected<store::JobRecord>> Jobs::get(const std::string& id) {
  std::string key = id;
  std::function<Expected<store::JobRecord>(store::Store&)> fn = [key](store::Store& s) { return s.get_job(key); };
  co_return co_await db_->call_async(fn);
}

net::awaitable<Expected<std::vector<store::JobRecord>>> Jobs::list(const store::JobFilter& filter) {
  store::JobFilter f = filter;
  std::function<Expected<std::vector<store::JobRecord>>(store::Store&)> fn = [f](store::Store& s) {
    return s.list_jobs(f);
  };
  co_return co_await db_->call_async(fn);
}

net::awaitable<Expected<store::JobRecord>> Jobs::cancel(const std::string& id) {
  std::string key = id;
  std::function<Expected<store::JobRecord>(store::Store&)> fn = [key](store::Store& s) {
    return s.cancel_job(key, epoch_ms_now());
  };
  auto j = co_await db_->call_async(fn);
  if (!j) co_return j;
  if (auto it = running_.find(key); it != running_.end()) {
    it->second->cancelled = true;  // a job leased ahead is dropped before it starts
    if (it->second->inv) it->second->inv->abort(Error(ErrorType::conflict, "the job was cancelled"));
  }
  spdlog::info("event=job_cancelled job={} function={}", key, j->function);
  on_final(*j);
  co_return j;
}

net::awaitable<Expected<store::JobRecord>> Jobs::retry(const std::string& id) {
  std::string key = id;
  std::function<Expected<store::JobRecord>(store::Store&)> fn = [key](store::Store& s) {
    return s.requeue_job(key, epoch_ms_now());
  };
  auto j = co_await db_->call_async(fn);
  if (j) {
    publish(key, {"status", boost::json::serialize(job_json(*j)), false});
    poke();
  }
  co_return j;
}

}  // namespace aifn::jobs
