// aifn::security::ApiKeys — API keys (DESIGN.md §9): created with scopes and
// limits, shown once, kept only as a hash, checked in constant time, revoked
// for good. A key reads "aifn_<id>.<secret>"; the id finds the row, the
// secret's BLAKE2b hash is compared with the stored one.
// Thread-safe: one mutex around the in-memory copy of the rows.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace aifn::security {

// A rate such as "20/s", "50000/min", "100/h", "1000/day"; 0 = unlimited.
struct Rate {
  double per_second = 0;
  double burst = 0;  // the bucket's size: one unit of the rate's period
};
Expected<Rate> parse_rate(std::string_view text);
// "5.00/day" → 5.0; nullopt for "".
Expected<std::optional<double>> parse_budget(std::string_view text);

struct ApiKey {
  store::ApiKeyRow row;
  Rate rate;
  Rate tokens;
  std::optional<double> budget_per_day;
};

struct NewKey {
  std::string name;
  std::vector<std::string> scopes;
  std::string rate, tokens, budget;
};

// admin allows everything; invoke:* allows every invoke:NAME.
bool scope_allows(const std::vector<std::string>& scopes, std::string_view needed);

class ApiKeys {
 public:
  explicit ApiKeys(store::Store& store) : store_(store) {}
  Expected<void> load();
  // Returns the stored row and the key text, which is never seen again.
  Expected<std::pair<store::ApiKeyRow, std::string>> create(const NewKey& req);
  // The key for an "aifn_<id>.<secret>" text, unless unknown or revoked.
  std::optional<ApiKey> authenticate(std::string_view key_text) const;
  std::optional<ApiKey> find(const std::string& id) const;  // a live key by id
  Expected<std::vector<store::ApiKeyRow>> list() { return store_.list_keys(); }
  Expected<bool> revoke(const std::string& id);
  bool any_created() const;

 private:
  store::Store& store_;
  mutable std::mutex mu_;
  std::map<std::string, ApiKey> live_;  // by id, revoked ones left out; guarded by mu_
  std::int64_t created_ = 0;            // guarded by mu_
};

// Hex BLAKE2b-256 of `text`, and a constant-time comparison of two such.
std::string key_hash(std::string_view text);
bool hashes_equal(std::string_view a, std::string_view b);
// 32 random bytes as URL-safe base64 without padding.
std::string random_token();

}  // namespace aifn::security
