// SqliteStore: secrets and API keys (DESIGN.md §9). Secrets arrive sealed
// and API keys as hashes: nothing here can reveal a value.
#include <sstream>

#include "store/sqlite_stmt.h"
#include "store/sqlite_store.h"

namespace aifn::store {

const char* const kSecuritySchema = R"sql(
CREATE TABLE IF NOT EXISTS secrets (
  name       TEXT    PRIMARY KEY,
  sealed     TEXT    NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
  id         TEXT    PRIMARY KEY,
  name       TEXT    NOT NULL DEFAULT '',
  hash       TEXT    NOT NULL,
  scopes     TEXT    NOT NULL,
  rate       TEXT    NOT NULL DEFAULT '',
  tokens     TEXT    NOT NULL DEFAULT '',
  budget     TEXT    NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  revoked    INTEGER NOT NULL DEFAULT 0
);
)sql";

namespace {

std::string join_scopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (auto& s : scopes) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::vector<std::string> split_scopes(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string s; in >> s;) out.push_back(s);
  return out;
}

}  // namespace

Expected<void> SqliteStore::put_secret(const SecretRow& s) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "INSERT INTO secrets (name, sealed, updated_ms) VALUES (?1, ?2, ?3) "
                      "ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms") !=
      SQLITE_OK)
    return tl::unexpected(error("prepare put_secret"));
  st.text(1, s.name);
  st.text(2, s.sealed);
  st.i64(3, s.updated_ms);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return tl::unexpected(error("put_secret"));
  return {};
}

Expected<std::optional<SecretRow>> SqliteStore::get_secret(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "SELECT name, sealed, updated_ms FROM secrets WHERE name = ?1") != SQLITE_OK)
    return tl::unexpected(error("prepare get_secret"));
  st.text(1, name);
  int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return std::optional<SecretRow>();
  if (rc != SQLITE_ROW) return tl::unexpected(error("get_secret"));
  return std::optional<SecretRow>(SecretRow{st.col_text(0), st.col_text(1), st.col_i64(2)});
}

Expected<std::vector<SecretRow>> SqliteStore::list_secrets() {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "SELECT name, updated_ms FROM secrets ORDER BY name") != SQLITE_OK)
    return tl::unexpected(error("prepare list_secrets"));
  std::vector<SecretRow> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back({st.col_text(0), "", st.col_i64(1)});
  if (rc != SQLITE_DONE) return tl::unexpected(error("list_secrets"));
  return out;
}

Expected<bool> SqliteStore::delete_secret(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "DELETE FROM secrets WHERE name = ?1") != SQLITE_OK)
    return tl::unexpected(error("prepare delete_secret"));
  st.text(1, name);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return tl::unexpected(error("delete_secret"));
  return sqlite3_changes(db_) > 0;
}

Expected<void> SqliteStore::insert_key(const ApiKeyRow& k) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "INSERT INTO api_keys (id, name, hash, scopes, rate, tokens, budget, created_ms, revoked) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)") != SQLITE_OK)
    return tl::unexpected(error("prepare insert_key"));
  st.text(1, k.id);
  st.text(2, k.name);
  st.text(3, k.hash);
  st.text(4, join_scopes(k.scopes));
  st.text(5, k.rate);
  st.text(6, k.tokens);
  st.text(7, k.budget);
  st.i64(8, k.created_ms);
  st.i64(9, k.revoked ? 1 : 0);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return tl::unexpected(error("insert_key"));
  return {};
}

Expected<std::vector<ApiKeyRow>> SqliteStore::list_keys() {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "SELECT id, name, hash, scopes, rate, tokens, budget, created_ms, revoked FROM api_keys "
                      "ORDER BY created_ms, id") != SQLITE_OK)
    return tl::unexpected(error("prepare list_keys"));
  std::vector<ApiKeyRow> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
    out.push_back({st.col_text(0), st.col_text(1), st.col_text(2), split_scopes(st.col_text(3)), st.col_text(4),
                   st.col_text(5), st.col_text(6), st.col_i64(7), st.col_i64(8) != 0});
  if (rc != SQLITE_DONE) return tl::unexpected(error("list_keys"));
  return out;
}

Expected<bool> SqliteStore::revoke_key(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "UPDATE api_keys SET revoked = 1 WHERE id = ?1") != SQLITE_OK)
    return tl::unexpected(error("prepare revoke_key"));
  st.text(1, id);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return tl::unexpected(error("revoke_key"));
  return sqlite3_changes(db_) > 0;
}

Expected<std::int64_t> SqliteStore::count_keys() {
  std::lock_guard lock(mu_);
  Stmt st;
  if (st.prepare(db_, "SELECT count(*) FROM api_keys") != SQLITE_OK) return tl::unexpected(error("prepare count_keys"));
  if (sqlite3_step(st.get()) != SQLITE_ROW) return tl::unexpected(error("count_keys"));
  return st.col_i64(0);
}

}  // namespace aifn::store
