// aifn::store — the durable state behind the server. Today: usage records
// (metering, DESIGN.md §9) in SQLite with WAL; jobs, keys, secrets and the
// PostgreSQL form come with their issues behind the same interface.
// A Store is safe to use from several threads (SQLite serialized mode; each
// method is one short transaction).
#pragma once

#include <cstdint>
#include <memory>
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

class Store {
 public:
  virtual ~Store() = default;
  // Inserts a batch in one transaction.
  virtual Expected<void> insert_usage(const std::vector<UsageRecord>& batch) = 0;
  // Aggregates records with since_ms <= start_ms < until_ms (0 = unbounded).
  virtual Expected<std::vector<UsageGroup>> aggregate_usage(GroupBy by, std::int64_t since_ms,
                                                            std::int64_t until_ms) = 0;
  virtual Expected<std::vector<UsageRecord>> list_usage(const std::string& function, int limit) = 0;
  virtual bool healthy() = 0;  // for /readyz
};

// "sqlite:PATH" (creates the file and its folder). Errors name the URL.
Expected<std::unique_ptr<Store>> open_store(const std::string& url);

}  // namespace aifn::store
