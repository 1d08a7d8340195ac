// Internal to aifn_store: a prepared SQLite statement that finalizes itself,
// with typed binds and column reads. Used under SqliteStore::mu_.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

namespace aifn::store {

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  int prepare(sqlite3* db, const std::string& sql) { return sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr); }
  sqlite3_stmt* get() const { return s_; }
  void text(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void i64(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void real(int i, double v) { sqlite3_bind_double(s_, i, v); }
  std::string col_text(int i) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, i))) : std::string();
  }
  std::int64_t col_i64(int i) const { return sqlite3_column_int64(s_, i); }
  double col_real(int i) const { return sqlite3_column_double(s_, i); }
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// Tables of sqlite_security.cpp (secrets, API keys), created at open.
extern const char* const kSecuritySchema;

}  // namespace aifn::store
