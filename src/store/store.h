// aifn::store — the durable state behind the server. Today: usage records
// (metering, DESIGN.md §9) in SQLite with WAL; jobs, keys, secrets and the
// PostgreSQL form come with their issues behind the same interface.
// A Store is safe to use from several threads (SQLite serialized mode; each
// method is one short transaction).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace aifn::store {

// One finished call (DESIGN.md §9).
struct UsageRecord {
  std::string id;        // request id
  std::string function;
  std::string version;
  std::string key;       // API key id, "" when anonymous
  std::string kind;      // sync | stream | job
  std::int64_t start_ms = 0;     // epoch ms
  std::int64_t init_ms = 0;      // cold start init time, 0 when warm
  std::int64_t duration_ms = 0;
  std::int64_t billed_ms = 0;    // duration rounded up to the next 1 ms (Lambda style)
  std::int64_t memory_mb = 0;
  double gb_seconds = 0;         // memory GB * billed seconds
  std::string model;             // "" when no model was called
  std::int64_t tokens_in = 0;
  std::int64_t tokens_out = 0;
  bool cache_hit = false;
  bool cold_start = false;
  int status = 200;              // HTTP status given to the caller
  std::string error_type;        // "" on success
};

// One row of an aggregate, before pricing. `group` is the value of the
// group_by field (function name, key id, "YYYY-MM-DD" day, or model).
struct UsageGroup {
  std::string group;
  std::int64_t calls = 0;
  std::int64_t errors = 0;
  std::int64_t cold_starts = 0;
  std::int64_t billed_ms = 0;
  double gb_seconds = 0;
  std::int64_t tokens_in = 0;
  std::int64_t tokens_out = 0;
  std::int64_t cache_hits = 0;
  // Tokens of this group split by model, for per-model token prices.
  struct ModelTokens { std::string model; std::int64_t tokens_in = 0, tokens_out = 0; };
  std::vector<ModelTokens> by_model;
};

// What one function's recorded calls needed of always-on capacity (aifn cost):
// the most calls running at once and the largest memory size.
struct CapacityRow {
  std::string function;
  std::int64_t calls = 0;
  double gb_seconds = 0;
  std::int64_t memory_mb = 0;         // largest of its records
  std::int64_t peak_concurrency = 0;  // most calls overlapping in time
  std::int64_t first_ms = 0;          // earliest start
  std::int64_t last_ms = 0;           // latest end (start + duration)
};

enum class GroupBy { function, key, day, model };

// One background job (DESIGN.md §7). Times are epoch ms, 0 = not yet.
// `result` and `error` hold JSON text ("" = none).
struct JobRecord {
  std::string id;
  std::string function;
  std::string version;
  std::string input;             // the JSON event
  std::string status = "queued"; // queued | running | succeeded | failed | cancelled
  int attempts = 0;              // runs started so far (committed by JobUpdate::start)
  int max_attempts = 1;
  std::int64_t backoff_ms = 0;   // first retry delay; doubles per attempt
  std::int64_t timeout_ms = 0;   // job_timeout at enqueue
  std::int64_t run_after_ms = 0;
  std::string lease_owner;       // node that runs it; "" when not leased
  std::int64_t lease_expires_ms = 0;
  std::string result;
  std::string error;
  std::string callback_url;
  std::string callback_state;    // "" (none) | pending | delivered | failed
  int callback_attempts = 0;
  std::string idempotency_key;
  std::int64_t created_ms = 0;
  std::int64_t started_ms = 0;   // start of the latest run; 0 while leased ahead of a free slot
  std::int64_t finished_ms = 0;
};

// What enqueue_jobs did with one record: inserted it, or found the job an
// earlier request with the same function and idempotency key created.
struct EnqueueOutcome {
  std::string id;
  bool existing = false;
};

// A state change of one job, applied only when its guard holds, so a late
// writer (a worker whose lease expired, a job cancelled meanwhile) never
// overwrites a newer state.
struct JobUpdate {
  enum class Kind {
    finish,     // running job of `owner` -> status (succeeded | failed | queued for a retry)
    start,      // running job of `owner` starts a run: attempts + 1, started_ms = finished_ms field
    heartbeat,  // running job of `owner`: lease_expires_ms
    callback,   // any job: callback_state, callback_attempts
  };
  Kind kind = Kind::finish;
  std::string id;
  std::string owner;
  std::string status;
  std::string result;
  std::string error;
  std::int64_t run_after_ms = 0;
  std::int64_t finished_ms = 0;
  std::int64_t lease_expires_ms = 0;
  bool refund_attempt = false;  // finish as queued without counting the run (throttled)
  std::string callback_state;
  int callback_attempts = 0;
};

struct JobFilter {
  std::string function;  // "" = any
  std::string status;    // "" = any; a job leased ahead but not started counts as queued
  std::string callback_state;  // "" = any
  int limit = 100;
};

// A secret as stored: `sealed` is nonce + ciphertext (src/security seals and
// opens it); the store never sees the value.
struct SecretRow {
  std::string name;
  std::string sealed;
  std::int64_t updated_ms = 0;
};

// An API key as stored: only a hash of its secret part.
struct ApiKeyRow {
  std::string id;
  std::string name;
  std::string hash;                 // hex digest of the key's secret part
  std::vector<std::string> scopes;  // invoke:<fn>|invoke:*|models|admin
  std::string rate;                 // "20/s", "" = unlimited
  std::string tokens;               // "50000/min"
  std::string budget;               // "5.00/day"
  std::int64_t created_ms = 0;
  bool revoked = false;
};

// What the meter needs of a store: one batch of records per transaction.
class UsageWriter {
 public:
  virtual ~UsageWriter() = default;
  virtual Expected<void> insert_usage(const std::vector<UsageRecord>& batch) = 0;
};

class Store : public UsageWriter {
 public:
  // Aggregates records with since_ms <= start_ms < until_ms (0 = unbounded).
  virtual Expected<std::vector<UsageGroup>> aggregate_usage(GroupBy by, std::int64_t since_ms,
                                                            std::int64_t until_ms) = 0;
  virtual Expected<std::vector<UsageRecord>> list_usage(const std::string& function, int limit) = 0;
  // Per function, over records with since_ms <= start_ms < until_ms (0 =
  // unbounded) that ran on an instance (memory_mb > 0).
  virtual Expected<std::vector<CapacityRow>> usage_capacity(std::int64_t since_ms, std::int64_t until_ms) = 0;
  virtual bool healthy() = 0;  // for /readyz

  // Jobs (DESIGN.md §7). The defaults answer `unavailable` (a store
  // without jobs, such as a test double of the usage table). Writes come in batches, each batch one
  // transaction (group commit): inserts first, then updates. An insert whose
  // (function, idempotency_key) matches a job created after
  // idempotent_since_ms is not inserted; its outcome names the older job.
  // `applied` gets one flag per update: whether its guard held.
  virtual Expected<std::vector<EnqueueOutcome>> write_jobs(const std::vector<JobRecord>& inserts,
                                                           const std::vector<JobUpdate>& updates,
                                                           std::int64_t idempotent_since_ms,
                                                           std::vector<bool>* applied);
  // Leases up to `limit` jobs of `function` that are due (queued with
  // run_after_ms <= now) or whose lease expired (a node died): status
  // running, lease to `owner` until now + lease_ms. Attempts are counted
  // when a run starts (JobUpdate::start), so a job leased ahead and never
  // started costs none.
  virtual Expected<std::vector<JobRecord>> lease_jobs(const std::string& function, const std::string& owner,
                                                      std::int64_t now_ms, std::int64_t lease_ms, int limit);
  // Puts every running job leased by `owner` back in the queue (a restarted
  // node reclaims its own leases without waiting for them to expire).
  virtual Expected<int> release_leases(const std::string& owner);
  // queued | running -> cancelled. The job after the change (not_found when
  // there is none; conflict when it had already finished).
  virtual Expected<JobRecord> cancel_job(const std::string& id, std::int64_t now_ms);
  // failed | cancelled -> queued with attempts 0 (a dead-letter replay).
  virtual Expected<JobRecord> requeue_job(const std::string& id, std::int64_t now_ms);
  virtual Expected<JobRecord> get_job(const std::string& id);
  virtual Expected<std::vector<JobRecord>> list_jobs(const JobFilter& filter);
  // Deletes up to `limit` jobs that reached a final state before
  // finished_before_ms and have no callback still to deliver (retention).
  // Returns how many went.
  virtual Expected<int> purge_jobs(std::int64_t finished_before_ms, int limit);

  // Secrets (DESIGN.md §9). list_secrets leaves `sealed` empty.
  virtual Expected<void> put_secret(const SecretRow& s) = 0;
  virtual Expected<std::optional<SecretRow>> get_secret(const std::string& name) = 0;
  virtual Expected<std::vector<SecretRow>> list_secrets() = 0;
  virtual Expected<bool> delete_secret(const std::string& name) = 0;  // false: there was none

  // API keys. count_keys counts every key ever created, revoked ones too.
  virtual Expected<void> insert_key(const ApiKeyRow& k) = 0;
  virtual Expected<std::vector<ApiKeyRow>> list_keys() = 0;
  virtual Expected<bool> revoke_key(const std::string& id) = 0;  // false: no such key
  virtual Expected<std::int64_t> count_keys() = 0;
};

// "sqlite:PATH" (creates the file and its folder). Errors name the URL.
Expected<std::unique_ptr<Store>> open_store(const std::string& url);

}  // namespace aifn::store
