// SqliteStore's jobs table (DESIGN.md §7). SQLite has one writer at a time,
// so a lease is one UPDATE ... RETURNING inside that writer's transaction:
// two workers can never lease the same job.
#include <sqlite3.h>

#include <fmt/format.h>

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace aifn::store {

const char* const kJobsSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id                TEXT    PRIMARY KEY,
  function          TEXT    NOT NULL,
  version           TEXT    NOT NULL DEFAULT '',
  input             TEXT    NOT NULL,
  status            TEXT    NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL DEFAULT 1,
  backoff_ms        INTEGER NOT NULL DEFAULT 0,
  timeout_ms        INTEGER NOT NULL DEFAULT 0,
  run_after_ms      INTEGER NOT NULL DEFAULT 0,
  lease_owner       TEXT    NOT NULL DEFAULT '',
  lease_expires_ms  INTEGER NOT NULL DEFAULT 0,
  result            TEXT    NOT NULL DEFAULT '',
  error             TEXT    NOT NULL DEFAULT '',
  callback_url      TEXT    NOT NULL DEFAULT '',
  callback_state    TEXT    NOT NULL DEFAULT '',
  callback_attempts INTEGER NOT NULL DEFAULT 0,
  idempotency_key   TEXT    NOT NULL DEFAULT '',
  created_ms        INTEGER NOT NULL,
  started_ms        INTEGER NOT NULL DEFAULT 0,
  finished_ms       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(function, status, run_after_ms);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs(status, lease_expires_ms);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_ms);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_ms) WHERE finished_ms > 0;
CREATE INDEX IF NOT EXISTS jobs_idempotency ON jobs(function, idempotency_key) WHERE idempotency_key <> '';
)sql";

namespace {

constexpr const char* kColumns =
    "id, function, version, input, status, attempts, max_attempts, backoff_ms, timeout_ms, run_after_ms, "
    "lease_owner, lease_expires_ms, result, error, callback_url, callback_state, callback_attempts, "
    "idempotency_key, created_ms, started_ms, finished_ms";

JobRecord read_job(const Stmt& st) {
  JobRecord j;
  j.id = st.col_text(0);
  j.function = st.col_text(1);
  j.version = st.col_text(2);
  j.input = st.col_text(3);
  j.status = st.col_text(4);
  j.attempts = static_cast<int>(st.col_i64(5));
  j.max_attempts = static_cast<int>(st.col_i64(6));
  j.backoff_ms = st.col_i64(7);
  j.timeout_ms = st.col_i64(8);
  j.run_after_ms = st.col_i64(9);
  j.lease_owner = st.col_text(10);
  j.lease_expires_ms = st.col_i64(11);
  j.result = st.col_text(12);
  j.error = st.col_text(13);
  j.callback_url = st.col_text(14);
  j.callback_state = st.col_text(15);
  j.callback_attempts = static_cast<int>(st.col_i64(16));
  j.idempotency_key = st.col_text(17);
  j.created_ms = st.col_i64(18);
  j.started_ms = st.col_i64(19);
  j.finished_ms = st.col_i64(20);
  return j;
}

bool is_final(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled";
}

}  // namespace

Expected<std::vector<EnqueueOutcome>> SqliteStore::write_jobs(const std::vector<JobRecord>& inserts,
                                                              const std::vector<JobUpdate>& updates,
                                                              std::int64_t idempotent_since_ms,
                                                              std::vector<bool>* applied) {
  std::vector<EnqueueOutcome> out;
  if (applied) applied->assign(updates.size(), false);
  if (inserts.empty() && updates.empty()) return out;
  std::lock_guard lock(mu_);
  Stmt find, ins, fin, start, beat, cb;
  if (find.prepare(db_, "SELECT id FROM jobs WHERE function = ?1 AND idempotency_key = ?2 AND created_ms >= ?3 "
                        "ORDER BY created_ms LIMIT 1") != SQLITE_OK ||
      ins.prepare(db_, fmt::format("INSERT INTO jobs ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                   "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                                   kColumns)) != SQLITE_OK ||
      // A finished run hands its lease back; a final state with a callback
      // URL leaves a delivery pending.
      fin.prepare(db_, "UPDATE jobs SET status = ?2, result = ?3, error = ?4, run_after_ms = ?5, finished_ms = ?6, "
                       "lease_owner = '', lease_expires_ms = 0, attempts = attempts - ?8, "
                       "callback_state = CASE WHEN callback_url <> '' AND ?2 IN ('succeeded', 'failed') "
                       "THEN 'pending' ELSE callback_state END "
                       "WHERE id = ?1 AND status = 'running' AND lease_owner = ?7") != SQLITE_OK ||
      start.prepare(db_, "UPDATE jobs SET attempts = attempts + 1, started_ms = ?2 WHERE id = ?1 AND "
                         "status = 'running' AND lease_owner = ?3") != SQLITE_OK ||
      beat.prepare(db_, "UPDATE jobs SET lease_expires_ms = ?2 WHERE id = ?1 AND status = 'running' AND "
                        "lease_owner = ?3") != SQLITE_OK ||
      cb.prepare(db_, "UPDATE jobs SET callback_state = ?2, callback_attempts = ?3 WHERE id = ?1") != SQLITE_OK)
    return tl::unexpected(error("prepare job writes"));
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(r.error());
  auto rollback = [&](const std::string& what) {
    Error e = error(what);
    (void)exec("ROLLBACK");
    return tl::unexpected(e);
  };
  for (const JobRecord& j : inserts) {
    if (!j.idempotency_key.empty()) {
      find.text(1, j.function);
      find.text(2, j.idempotency_key);
      find.i64(3, idempotent_since_ms);
      int rc = find.step();
      if (rc == SQLITE_ROW) {
        out.push_back({find.col_text(0), true});
        find.reset();
        continue;
      }
      find.reset();
      if (rc != SQLITE_DONE) return rollback("idempotency lookup");
    }
    ins.text(1, j.id);
    ins.text(2, j.function);
    ins.text(3, j.version);
    ins.text(4, j.input);
    ins.text(5, j.status);
    ins.i64(6, j.attempts);
    ins.i64(7, j.max_attempts);
    ins.i64(8, j.backoff_ms);
    ins.i64(9, j.timeout_ms);
    ins.i64(10, j.run_after_ms);
    ins.text(11, j.lease_owner);
    ins.i64(12, j.lease_expires_ms);
    ins.text(13, j.result);
    ins.text(14, j.error);
    ins.text(15, j.callback_url);
    ins.text(16, j.callback_state);
    ins.i64(17, j.callback_attempts);
    ins.text(18, j.idempotency_key);
    ins.i64(19, j.created_ms);
    ins.i64(20, j.started_ms);
    ins.i64(21, j.finished_ms);
    if (ins.step() != SQLITE_DONE) return rollback(fmt::format("insert of job {}", j.id));
    ins.reset();
    out.push_back({j.id, false});
  }
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const JobUpdate& u = updates[i];
    Stmt* st = nullptr;
    switch (u.kind) {
      case JobUpdate::Kind::finish:
        st = &fin;
        fin.text(1, u.id);
        fin.text(2, u.status);
        fin.text(3, u.result);
        fin.text(4, u.error);
        fin.i64(5, u.run_after_ms);
        fin.i64(6, u.finished_ms);
        fin.text(7, u.owner);
        fin.i64(8, u.refund_attempt ? 1 : 0);
        break;
      case JobUpdate::Kind::start:
        st = &start;
        start.text(1, u.id);
        start.i64(2, u.finished_ms);
        start.text(3, u.owner);
        break;
      case JobUpdate::Kind::heartbeat:
        st = &beat;
        beat.text(1, u.id);
        beat.i64(2, u.lease_expires_ms);
        beat.text(3, u.owner);
        break;
      case JobUpdate::Kind::callback:
        st = &cb;
        cb.text(1, u.id);
        cb.text(2, u.callback_state);
        cb.i64(3, u.callback_attempts);
        break;
    }
    if (st->step() != SQLITE_DONE) return rollback(fmt::format("update of job {}", u.id));
    st->reset();
    if (applied) (*applied)[i] = sqlite3_changes(db_) > 0;
  }
  if (auto r = exec("COMMIT"); !r) {
    (void)exec("ROLLBACK");
    return tl::unexpected(r.error());
  }
  return out;
}

Expected<std::vector<JobRecord>> SqliteStore::lease_jobs(const std::string& function, const std::string& owner,
                                                         std::int64_t now_ms, std::int64_t lease_ms, int limit) {
  std::lock_guard lock(mu_);
  Stmt st;
  // Due jobs first by run_after (oldest first), then leases left behind by
  // a node that stopped heartbeating.
  if (st.prepare(db_, fmt::format("UPDATE jobs SET status = 'running', lease_owner = ?2, "
                                  "lease_expires_ms = ?3 + ?4, started_ms = 0 WHERE id IN ("
                                  "SELECT id FROM (SELECT id, run_after_ms FROM jobs WHERE function = ?1 AND "
                                  "status = 'queued' AND run_after_ms <= ?3 ORDER BY run_after_ms LIMIT ?5) "
                                  "UNION ALL SELECT id FROM (SELECT id FROM jobs WHERE status = 'running' AND "
                                  "lease_expires_ms < ?3 AND function = ?1 LIMIT ?5) LIMIT ?5) RETURNING {}",
                                  kColumns)) != SQLITE_OK)
    return tl::unexpected(error("prepare lease"));
  st.text(1, function);
  st.text(2, owner);
  st.i64(3, now_ms);
  st.i64(4, lease_ms);
  st.i64(5, limit);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(r.error());
  std::vector<JobRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_job(st));
  st.reset();
  if (rc != SQLITE_DONE) {
    Error e = error("lease jobs");
    (void)exec("ROLLBACK");
    return tl::unexpected(e);
  }
  if (auto r = exec("COMMIT"); !r) {
    (void)exec("ROLLBACK");
    return tl::unexpected(r.error());
  }
  return out;
}

Expected<int> SqliteStore::release_leases(const std::string& owner) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "UPDATE jobs SET status = 'queued', lease_owner = '', lease_expires_ms = 0, run_after_ms = 0 "
                      "WHERE status = 'running' AND lease_owner = ?1") != SQLITE_OK)
    return tl::unexpected(error("prepare release"));
  st.text(1, owner);
  if (st.step() != SQLITE_DONE) return tl::unexpected(error("release leases"));
  return sqlite3_changes(db_);
}

Expected<int> SqliteStore::purge_jobs(std::int64_t finished_before_ms, int limit) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE finished_ms > 0 AND "
                      "finished_ms < ?1 AND status IN ('succeeded', 'failed', 'cancelled') AND "
                      "callback_state <> 'pending' LIMIT ?2)") != SQLITE_OK)
    return tl::unexpected(error("prepare purge"));
  st.i64(1, finished_before_ms);
  st.i64(2, limit);
  if (st.step() != SQLITE_DONE) return tl::unexpected(error("purge jobs"));
  return sqlite3_changes(db_);
}

Expected<JobRecord> SqliteStore::get_job_locked(const std::string& id) {
  Stmt st;
  if (st.prepare(db_, fmt::format("SELECT {} FROM jobs WHERE id = ?1", kColumns)) != SQLITE_OK)
    return tl::unexpected(error("prepare get job"));
  st.text(1, id);
  int rc = st.step();
  if (rc == SQLITE_ROW) return read_job(st);
  if (rc == SQLITE_DONE) return fail(ErrorType::not_found, fmt::format("no job with id \"{}\"", id));
  return tl::unexpected(error("get job"));
}

Expected<JobRecord> SqliteStore::get_job(const std::string& id) {
  std::lock_guard lock(mu_);
  return get_job_locked(id);
}

Expected<JobRecord> SqliteStore::cancel_job(const std::string& id, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(r.error());
  auto j = get_job_locked(id);
  if (j && is_final(j->status))
    j = fail(ErrorType::conflict, fmt::format("job {} has already finished ({})", id, j->status));
  if (!j) {
    (void)exec("ROLLBACK");
    return j;
  }
  Stmt st;
  if (st.prepare(db_, "UPDATE jobs SET status = 'cancelled', finished_ms = ?2, lease_owner = '', "
                      "lease_expires_ms = 0, error = ?3, callback_state = CASE WHEN callback_url <> '' "
                      "THEN 'pending' ELSE callback_state END WHERE id = ?1") != SQLITE_OK) {
    (void)exec("ROLLBACK");
    return tl::unexpected(error("prepare cancel"));
  }
  st.text(1, id);
  st.i64(2, now_ms);
  st.text(3, R"({"type":"cancelled","message":"the job was cancelled"})");
  if (st.step() != SQLITE_DONE) {
    Error e = error("cancel job");
    (void)exec("ROLLBACK");
    return tl::unexpected(e);
  }
  if (auto r = exec("COMMIT"); !r) {
    (void)exec("ROLLBACK");
    return tl::unexpected(r.error());
  }
  return get_job_locked(id);
}

Expected<JobRecord> SqliteStore::requeue_job(const std::string& id, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(r.error());
  auto j = get_job_locked(id);
  if (j && j->status != "failed" && j->status != "cancelled")
    j = fail(ErrorType::conflict,
             fmt::format("job {} is {}; only a failed or cancelled job can be retried", id, j->status));
  if (!j) {
    (void)exec("ROLLBACK");
    return j;
  }
  Stmt st;
  if (st.prepare(db_, "UPDATE jobs SET status = 'queued', attempts = 0, run_after_ms = ?2, result = '', "
                      "error = '', started_ms = 0, finished_ms = 0, callback_state = '', callback_attempts = 0 "
                      "WHERE id = ?1") != SQLITE_OK) {
    (void)exec("ROLLBACK");
    return tl::unexpected(error("prepare retry"));
  }
  st.text(1, id);
  st.i64(2, now_ms);
  if (st.step() != SQLITE_DONE) {
    Error e = error("retry job");
    (void)exec("ROLLBACK");
    return tl::unexpected(e);
  }
  if (auto r = exec("COMMIT"); !r) {
    (void)exec("ROLLBACK");
    return tl::unexpected(r.error());
  }
  return get_job_locked(id);
}

Expected<std::vector<JobRecord>> SqliteStore::list_jobs(const JobFilter& f) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, fmt::format("SELECT {} FROM jobs WHERE (?1 = '' OR function = ?1) AND (?2 = '' OR "
                                  "(CASE WHEN status = 'running' AND started_ms = 0 THEN 'queued' ELSE status END) = ?2) "
                                  "AND (?3 = '' OR callback_state = ?3) ORDER BY created_ms DESC, id LIMIT ?4",
                                  kColumns)) != SQLITE_OK)
    return tl::unexpected(error("prepare list jobs"));
  st.text(1, f.function);
  st.text(2, f.status);
  st.text(3, f.callback_state);
  st.i64(4, f.limit > 0 ? f.limit : -1);
  std::vector<JobRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_job(st));
  if (rc != SQLITE_DONE) return tl::unexpected(error("list jobs"));
  return out;
}

}  // namespace aifn::store
