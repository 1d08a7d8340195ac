// aifn::jobs — durable background jobs (DESIGN.md §7). Jobs live in the
// store; this node's worker leases due jobs, runs each through the
// function's instance Pool as a background call (behind synchronous calls,
// on at most max(1, max_instances - 1) x concurrency slots, so a flood of jobs
// cannot starve interactive calls), heartbeats its leases, retries failures
// with exponential backoff and jitter up to retry.max_attempts, and commits
// the result. Delivery is at-least-once: a node that dies leaves its leases
// to expire (or reclaims them itself at restart) and the job runs again; a
// job whose result was committed never runs again. Completions are POSTed to
// the job's callback URL, signed per Standard Webhooks.
//
// Store writes go through one writer thread that commits whatever has piled
// up in one transaction (group commit); an enqueue is acknowledged after its
// commit.
//
// Thread-safety: a Jobs object lives on the server's io thread; call every
// method from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "base/error.h"
#include "functions/registry.h"
#include "metering/metering.h"
#include "store/store.h"

namespace aifn::jobs {

class JobDb;
class Webhooks;

// A job run's access to the model gateway (DESIGN.md §5): set up for the
// run's invocation token when the run starts and released when it ends;
// it fills the run's usage record with the models and tokens used.
class ModelAccess {
 public:
  virtual ~ModelAccess() = default;
  virtual void fill_usage(store::UsageRecord& r) = 0;
};
// Provided by the server (serve.cpp), which owns the token registry.
// `carried` is what a call that became a job already had (see adopt()).
using GrantModels = std::function<std::unique_ptr<ModelAccess>(
    const runtime::FunctionSpec& spec, const std::string& request_id, const std::string& token,
    const std::shared_ptr<void>& carried)>;

struct JobsOptions {
  // Lease owner name of this node. Stable across restarts (kept in the data
  // dir), so a restarted node takes back its own leases at once.
  std::string node_id;
  Millis lease{30'000};      // a lease not renewed for this long is free to take
  Millis heartbeat{10'000};  // lease renewal period
  Millis poll{500};          // look for due jobs (retries, other nodes' enqueues) at least this often
  Millis idempotency_window{24 * 3'600'000};
  std::string webhook_secret;  // "whsec_<base64>"; "" = callbacks unsigned (tests of the signer only)
  Millis callback_backoff{1'000};
  int callback_max_attempts = 6;
  Millis callback_timeout{10'000};
  std::string callback_ca_file;  // PEM bundle for https receivers; "" = the system trust store
  Millis retention{0};           // finished jobs older than this are deleted; 0 = kept forever
  GrantModels grant_models;  // unset: job runs get no model access
};

// One event of a job's feed (GET /jobs/{id}/events): `status` with the job
// JSON, or `output` with a JSON string of bytes the function streamed.
struct JobEvent {
  std::string event;
  std::string data;
  bool final = false;  // the job reached a final state: the feed ends
};

// A reader of one job's feed. The reader drains `events` and waits on `wake`.
struct JobFeed {
  explicit JobFeed(boost::asio::any_io_executor ex) : wake(ex) {}
  std::deque<JobEvent> events;
  boost::asio::steady_timer wake;
};

class Jobs {
 public:
  Jobs(boost::asio::io_context& io, store::Store& store, functions::Registry& registry, metering::Meter& meter,
       JobsOptions opts);
  ~Jobs();
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;

  // Takes back this node's leases from an earlier run, queues undelivered
  // callbacks and starts the worker.
  void start();
  // The first step of a graceful stop: no new leases and no new runs;
  // running jobs go on and commit their results (executing() counts them).
  void drain();
  // Jobs still running are aborted (without a commit) and every lease this
  // node holds, running or leased ahead, goes back to the queue, so another
  // node or the next start takes them at once (at-least-once).
  void stop();
  // Jobs whose function is running now (not those leased ahead).
  int executing() const;

  struct EnqueueRequest {
    std::string input;  // validated JSON event
    std::string idempotency_key;
    std::string callback_url;
  };
  // Commits a queued job; returns it (or, for a repeated Idempotency-Key,
  // the earlier job, with `existing` set).
  boost::asio::awaitable<Expected<std::pair<store::JobRecord, bool>>> enqueue(const functions::Deployed& fn,
                                                                              EnqueueRequest& req);
  // Takes over a synchronous call that became a job (on_timeout /
  // on_disconnect = "job", DESIGN.md §4): commits a running job leased to
  // this node and follows the same execution to its end; nothing restarts.
  // `carried_grant` is the call's model-gateway grant, kept for the job.
  boost::asio::awaitable<Expected<store::JobRecord>> adopt(const functions::Deployed& fn,
                                                           const std::shared_ptr<runtime::Invocation>& inv,
                                                           const std::string& input,
                                                           const std::shared_ptr<void>& carried_grant);
  boost::asio::awaitable<Expected<store::JobRecord>> get(const std::string& id);
  boost::asio::awaitable<Expected<std::vector<store::JobRecord>>> list(const store::JobFilter& filter);
  // Cancels a queued or running job; a running one is killed.
  boost::asio::awaitable<Expected<store::JobRecord>> cancel(const std::string& id);
  // Runs a failed (or cancelled) job again from attempt 1.
  boost::asio::awaitable<Expected<store::JobRecord>> retry(const std::string& id);

  // A feed of the job's status changes and streamed output from now on.
  std::shared_ptr<JobFeed> subscribe(const std::string& id);
  void unsubscribe(const std::string& id, const std::shared_ptr<JobFeed>& feed);

  // Slots the worker may fill with jobs of a pool (the sharing rule).
  static int job_slots(const runtime::Pool& pool);
  std::size_t running() const { return running_.size(); }

 private:
  struct Running;
  boost::asio::awaitable<void> worker();
  boost::asio::awaitable<void> run(Running& r);
  boost::asio::awaitable<void> heartbeats();
  boost::asio::awaitable<void> purge();  // retention
  void poke();
  void dispatch(const std::string& function);  // starts ready jobs while slots are free
  void publish(const std::string& id, JobEvent ev);
  void on_final(const store::JobRecord& job);

  boost::asio::io_context& io_;
  store::Store& store_;
  functions::Registry& registry_;
  metering::Meter& meter_;
  const JobsOptions opts_;
  std::unique_ptr<JobDb> db_;
  std::unique_ptr<Webhooks> webhooks_;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer beat_;
  boost::asio::steady_timer purge_timer_;
  bool poked_ = false;
  bool stopped_ = true;
  bool draining_ = false;
  std::map<std::string, std::shared_ptr<Running>> running_;  // by job id
  std::map<std::string, int> active_;  // jobs executing, by function (the slot count)
  std::map<std::string, std::deque<std::shared_ptr<Running>>> ready_;  // leased ahead, not started
  std::map<std::string, std::vector<std::weak_ptr<JobFeed>>> feeds_;
};

// The job as the API shows it (DESIGN.md §6 GET /jobs/{id}).
boost::json::object job_json(const store::JobRecord& job);
bool is_final_status(const std::string& status);

// Standard Webhooks (https://www.standardwebhooks.com): the value of
// webhook-signature, "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed
// with the base64 part of `secret` ("whsec_<base64>"). Empty on a bad secret.
std::string sign_webhook(const std::string& secret, const std::string& id, std::int64_t timestamp,
                         const std::string& body);
// The secret from [jobs] webhook_secret ("env:NAME", or "secret:NAME" read
// through `secret`), or generated into DATA_DIR/webhook_secret (mode 0600)
// on first use.
using SecretLookup = std::function<Expected<std::optional<std::string>>(const std::string&)>;
Expected<std::string> load_or_create_webhook_secret(const std::string& configured, const std::string& data_dir,
                                                    const SecretLookup& secret = {});
// This node's lease owner name, kept in DATA_DIR/node_id.
Expected<std::string> load_or_create_node_id(const std::string& data_dir);

}  // namespace aifn::jobs
