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

enum class GroupBy { function, key, day, model };

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
  virtual bool healthy() = 0;  // for /readyz

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
