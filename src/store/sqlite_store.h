// Internal to aifn_store: the SQLite implementation of Store. One connection
// (WAL, synchronous=FULL except for usage batches, busy_timeout) guarded by
// mu_; each method is one short transaction, so the lock is never held across
// I/O to a client.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "store/store.h"

struct sqlite3;

namespace aifn::store {

// The jobs table and its indexes (sqlite_jobs.cpp); run at open.
extern const char* const kJobsSchema;

class SqliteStore : public Store {
 public:
  // `path` is a file name or ":memory:". Errors name `url`.
  static Expected<std::unique_ptr<SqliteStore>> open(const std::string& path, const std::string& url);
  ~SqliteStore() override;

  Expected<void> insert_usage(const std::vector<UsageRecord>& batch) override;
  Expected<std::vector<UsageGroup>> aggregate_usage(GroupBy by, std::int64_t since_ms,
                                                    std::int64_t until_ms) override;
  Expected<std::vector<UsageRecord>> list_usage(const std::string& function, int limit) override;
  Expected<std::vector<CapacityRow>> usage_capacity(std::int64_t since_ms, std::int64_t until_ms) override;
  bool healthy() override;

  // Jobs: sqlite_jobs.cpp.
  Expected<std::vector<EnqueueOutcome>> write_jobs(const std::vector<JobRecord>& inserts,
                                                   const std::vector<JobUpdate>& updates,
                                                   std::int64_t idempotent_since_ms,
                                                   std::vector<bool>* applied) override;
  Expected<std::vector<JobRecord>> lease_jobs(const std::string& function, const std::string& owner,
                                              std::int64_t now_ms, std::int64_t lease_ms, int limit) override;
  Expected<int> release_leases(const std::string& owner) override;
  Expected<JobRecord> cancel_job(const std::string& id, std::int64_t now_ms) override;
  Expected<JobRecord> requeue_job(const std::string& id, std::int64_t now_ms) override;
  Expected<JobRecord> get_job(const std::string& id) override;
  Expected<std::vector<JobRecord>> list_jobs(const JobFilter& filter) override;
  Expected<int> purge_jobs(std::int64_t finished_before_ms, int limit) override;
  // sqlite_security.cpp
  Expected<void> put_secret(const SecretRow& s) override;
  Expected<std::optional<SecretRow>> get_secret(const std::string& name) override;
  Expected<std::vector<SecretRow>> list_secrets() override;
  Expected<bool> delete_secret(const std::string& name) override;
  Expected<void> insert_key(const ApiKeyRow& k) override;
  Expected<std::vector<ApiKeyRow>> list_keys() override;
  Expected<bool> revoke_key(const std::string& id) override;
  Expected<std::int64_t> count_keys() override;

 private:
  SqliteStore(sqlite3* db, std::string url) : db_(db), url_(std::move(url)) {}
  Expected<void> exec(const char* sql);
  Error error(const std::string& what) const;  // with sqlite3_errmsg; caller holds mu_
  Expected<JobRecord> get_job_locked(const std::string& id);

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
  const std::string url_;
};

}  // namespace aifn::store
