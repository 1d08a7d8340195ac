#include "store/sqlite_store.h"
#include "store/sqlite_stmt.h"

#include <sqlite3.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::store {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// Schema v1. Every UsageRecord field is a column; the indexes serve the two
// questions asked: "since/until" (start_ms) and "one function" (function).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS usage (
  id          TEXT    NOT NULL,
  function    TEXT    NOT NULL,
  version     TEXT    NOT NULL DEFAULT '',
  key         TEXT    NOT NULL DEFAULT '',
  kind        TEXT    NOT NULL DEFAULT '',
  start_ms    INTEGER NOT NULL,
  init_ms     INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  billed_ms   INTEGER NOT NULL DEFAULT 0,
  memory_mb   INTEGER NOT NULL DEFAULT 0,
  gb_seconds  REAL    NOT NULL DEFAULT 0,
  model       TEXT    NOT NULL DEFAULT '',
  tokens_in   INTEGER NOT NULL DEFAULT 0,
  tokens_out  INTEGER NOT NULL DEFAULT 0,
  cache_hit   INTEGER NOT NULL DEFAULT 0,
  cold_start  INTEGER NOT NULL DEFAULT 0,
  status      INTEGER NOT NULL DEFAULT 200,
  error_type  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS usage_start ON usage(start_ms);
CREATE INDEX IF NOT EXISTS usage_function ON usage(function, start_ms);
)sql";

const char* group_expr(GroupBy by) {
  switch (by) {
    case GroupBy::function: return "function";
    case GroupBy::key: return "key";
    case GroupBy::day: return "date(start_ms / 1000, 'unixepoch')";
    case GroupBy::model: return "model";
  }
  return "function";
}

// 0 means unbounded on either side.
constexpr const char* kRange = "(?1 = 0 OR start_ms >= ?1) AND (?2 = 0 OR start_ms < ?2)";

}  // namespace

Expected<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, const std::string& url) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return fail(ErrorType::unavailable, fmt::format("store {}: cannot open {}: {}", url, path, msg));
  }
  std::unique_ptr<SqliteStore> s(new SqliteStore(db, url));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // synchronous=FULL: a commit is on disk (fsync) before it is acknowledged,
  // so an accepted job survives a power cut, not only a crash. Jobs are
  // written in batches (group commit), so the fsync is paid per batch, not
  // per row; usage batches skip it (insert_usage).
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", kSchema, kJobsSchema, kSecuritySchema}) {
    std::lock_guard lock(s->mu_);
    if (auto r = s->exec(sql); !r) return tl::unexpected(r.error());
  }
  return s;
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

Error SqliteStore::error(const std::string& what) const {
  return Error(ErrorType::unavailable, fmt::format("store {}: {}: {}", url_, what, sqlite3_errmsg(db_)));
}

Expected<void> SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return fail(ErrorType::unavailable, fmt::format("store {}: {}", url_, msg));
  }
  return {};
}

Expected<void> SqliteStore::insert_usage(const std::vector<UsageRecord>& batch) {
  if (batch.empty()) return {};
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "INSERT INTO usage (id, function, version, key, kind, start_ms, init_ms, duration_ms, "
                      "billed_ms, memory_mb, gb_seconds, model, tokens_in, tokens_out, cache_hit, cold_start, "
                      "status, error_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                      "?15, ?16, ?17, ?18)") != SQLITE_OK)
    return tl::unexpected(error("prepare insert"));
  // A usage batch commits without its own fsync (synchronous=NORMAL for this
  // transaction only): in WAL mode it still survives a crash of aifn, and the
  // next job commit or checkpoint puts it on disk; a power cut can take the
  // last batches, as it takes the records still waiting in the Meter. Each
  // fsync had cost the writer thread ~7 us per call (exec hello at 16
  // connections: 10.9 -> 3.3 us of CPU per call, docs/PERFORMANCE.md).
  if (auto r = exec("PRAGMA synchronous=NORMAL"); !r) return r;
  struct RestoreFull {
    SqliteStore& s;
    ~RestoreFull() {
      if (auto r = s.exec("PRAGMA synchronous=FULL"); !r)
        spdlog::error("event=store_sync_restore_failed error=\"{}\"", r.error().message);
    }
  } restore{*this};
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
  for (const UsageRecord& u : batch) {
    st.text(1, u.id);
    st.text(2, u.function);
    st.text(3, u.version);
    st.text(4, u.key);
    st.text(5, u.kind);
    st.i64(6, u.start_ms);
    st.i64(7, u.init_ms);
    st.i64(8, u.duration_ms);
    st.i64(9, u.billed_ms);
    st.i64(10, u.memory_mb);
    st.real(11, u.gb_seconds);
    st.text(12, u.model);
    st.i64(13, u.tokens_in);
    st.i64(14, u.tokens_out);
    st.i64(15, u.cache_hit ? 1 : 0);
    st.i64(16, u.cold_start ? 1 : 0);
    st.i64(17, u.status);
    st.text(18, u.error_type);
    if (sqlite3_step(st.get()) != SQLITE_DONE) {
      Error e = error(fmt::format("insert of {} usage records", batch.size()));
      (void)exec("ROLLBACK");
      return tl::unexpected(e);
    }
    sqlite3_reset(st.get());
  }
  if (auto r = exec("COMMIT"); !r) {
    (void)exec("ROLLBACK");
    return r;
  }
  return {};
}

Expected<std::vector<UsageGroup>> SqliteStore::aggregate_usage(GroupBy by, std::int64_t since_ms,
                                                               std::int64_t until_ms) {
  const char* g = group_expr(by);
  std::lock_guard lock(mu_);
  // One read transaction so both queries see the same records.
  if (auto r = exec("BEGIN"); !r) return tl::unexpected(r.error());
  struct EndRead {
    SqliteStore* s;
    ~EndRead() { (void)s->exec("COMMIT"); }
  } end{this};

  std::vector<UsageGroup> out;
  {
    Stmt st;
    std::string sql = fmt::format(
        "SELECT {0} AS grp, COUNT(*), SUM(status >= 400 OR error_type <> ''), SUM(cold_start), SUM(billed_ms), "
        "TOTAL(gb_seconds), SUM(tokens_in), SUM(tokens_out), SUM(cache_hit) FROM usage WHERE {1} "
        "GROUP BY grp ORDER BY grp",
        g, kRange);
    if (st.prepare(db_, sql) != SQLITE_OK) return tl::unexpected(error("prepare aggregate"));
    st.i64(1, since_ms);
    st.i64(2, until_ms);
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      UsageGroup u;
      u.group = st.col_text(0);
      u.calls = st.col_i64(1);
      u.errors = st.col_i64(2);
      u.cold_starts = st.col_i64(3);
      u.billed_ms = st.col_i64(4);
      u.gb_seconds = st.col_real(5);
      u.tokens_in = st.col_i64(6);
      u.tokens_out = st.col_i64(7);
      u.cache_hits = st.col_i64(8);
      out.push_back(std::move(u));
    }
    if (rc != SQLITE_DONE) return tl::unexpected(error("aggregate usage"));
  }
  {
    Stmt st;
    std::string sql = fmt::format(
        "SELECT {0} AS grp, model, SUM(tokens_in), SUM(tokens_out) FROM usage WHERE {1} AND model <> '' "
        "GROUP BY grp, model ORDER BY grp, model",
        g, kRange);
    if (st.prepare(db_, sql) != SQLITE_OK) return tl::unexpected(error("prepare aggregate by model"));
    st.i64(1, since_ms);
    st.i64(2, until_ms);
    // Both result sets are ordered by grp: merge them in one pass.
    std::size_t i = 0;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      std::string grp = st.col_text(0);
      while (i < out.size() && out[i].group < grp) ++i;
      if (i == out.size() || out[i].group != grp) continue;
      out[i].by_model.push_back({st.col_text(1), st.col_i64(2), st.col_i64(3)});
    }
    if (rc != SQLITE_DONE) return tl::unexpected(error("aggregate usage by model"));
  }
  return out;
}

Expected<std::vector<CapacityRow>> SqliteStore::usage_capacity(std::int64_t since_ms, std::int64_t until_ms) {
  std::lock_guard lock(mu_);
  // Peak concurrency by a sweep: +1 at each start, -1 at each end, running sum
  // in time order; at equal times ends come first, so back-to-back calls on
  // one instance do not count as two. A call holds its instance at least 1 ms
  // (what it is billed), so sub-millisecond calls still count.
  const std::string sql = fmt::format(
      "WITH calls AS (SELECT function, start_ms, start_ms + MAX(duration_ms, billed_ms, 1) AS end_ms, memory_mb, "
      "  gb_seconds "
      "  FROM usage WHERE {0} AND memory_mb > 0), "
      "ev AS (SELECT function, start_ms AS t, 1 AS d FROM calls UNION ALL SELECT function, end_ms, -1 FROM calls), "
      "live AS (SELECT function, SUM(d) OVER (PARTITION BY function ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS n "
      "  FROM ev), "
      "peak AS (SELECT function, MAX(n) AS n FROM live GROUP BY function) "
      "SELECT c.function, COUNT(*), TOTAL(c.gb_seconds), MAX(c.memory_mb), p.n, MIN(c.start_ms), MAX(c.end_ms) "
      "FROM calls c JOIN peak p ON p.function = c.function GROUP BY c.function ORDER BY c.function",
      kRange);
  Stmt st;
  if (st.prepare(db_, sql) != SQLITE_OK) return tl::unexpected(error("prepare capacity"));
  st.i64(1, since_ms);
  st.i64(2, until_ms);
  std::vector<CapacityRow> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    CapacityRow c;
    c.function = st.col_text(0);
    c.calls = st.col_i64(1);
    c.gb_seconds = st.col_real(2);
    c.memory_mb = st.col_i64(3);
    c.peak_concurrency = st.col_i64(4);
    c.first_ms = st.col_i64(5);
    c.last_ms = st.col_i64(6);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return tl::unexpected(error("usage capacity"));
  return out;
}

Expected<std::vector<UsageRecord>> SqliteStore::list_usage(const std::string& function, int limit) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "SELECT id, function, version, key, kind, start_ms, init_ms, duration_ms, billed_ms, memory_mb, "
                      "gb_seconds, model, tokens_in, tokens_out, cache_hit, cold_start, status, error_type "
                      "FROM usage WHERE (?1 = '' OR function = ?1) ORDER BY start_ms DESC, rowid DESC LIMIT ?2") !=
      SQLITE_OK)
    return tl::unexpected(error("prepare list"));
  st.text(1, function);
  st.i64(2, limit > 0 ? limit : -1);
  std::vector<UsageRecord> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    UsageRecord u;
    u.id = st.col_text(0);
    u.function = st.col_text(1);
    u.version = st.col_text(2);
    u.key = st.col_text(3);
    u.kind = st.col_text(4);
    u.start_ms = st.col_i64(5);
    u.init_ms = st.col_i64(6);
    u.duration_ms = st.col_i64(7);
    u.billed_ms = st.col_i64(8);
    u.memory_mb = st.col_i64(9);
    u.gb_seconds = st.col_real(10);
    u.model = st.col_text(11);
    u.tokens_in = st.col_i64(12);
    u.tokens_out = st.col_i64(13);
    u.cache_hit = st.col_i64(14) != 0;
    u.cold_start = st.col_i64(15) != 0;
    u.status = static_cast<int>(st.col_i64(16));
    u.error_type = st.col_text(17);
    out.push_back(std::move(u));
  }
  if (rc != SQLITE_DONE) return tl::unexpected(error("list usage"));
  return out;
}

bool SqliteStore::healthy() {
  std::lock_guard lock(mu_);
  Stmt st;
  return st.prepare(db_, "SELECT 1") == SQLITE_OK && sqlite3_step(st.get()) == SQLITE_ROW;
}

}  // namespace aifn::store
