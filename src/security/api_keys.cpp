#include "security/api_keys.h"

#include <sodium.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "base/units.h"
#include "config/config.h"

namespace aifn::security {

std::string key_hash(std::string_view text) {
  unsigned char h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(text.data()), text.size(), nullptr, 0);
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return hex;
}

bool hashes_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_token() {
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char b64[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return b64;
}

namespace {

Expected<std::pair<double, double>> amount_per_period(std::string_view text, const char* what) {
  auto slash = text.find('/');
  double amount = 0;
  auto num = text.substr(0, slash);
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), amount);
  if (slash == std::string_view::npos || ec != std::errc() || p != num.data() + num.size() || amount <= 0)
    return fail(ErrorType::bad_request, fmt::format("{} \"{}\" is not AMOUNT/PERIOD (for example 20/s)", what, text));
  auto unit = text.substr(slash + 1);
  double seconds = unit == "s" ? 1 : unit == "min" ? 60 : unit == "h" ? 3600 : unit == "day" ? 86400 : 0;
  if (seconds == 0)
    return fail(ErrorType::bad_request, fmt::format("{} \"{}\": the period must be s, min, h or day", what, text));
  return std::pair(amount, seconds);
}

}  // namespace

Expected<Rate> parse_rate(std::string_view text) {
  if (text.empty()) return Rate{};
  auto r = amount_per_period(text, "rate");
  if (!r) return tl::unexpected(r.error());
  return Rate{r->first / r->second, r->first};
}

Expected<std::optional<double>> parse_budget(std::string_view text) {
  if (text.empty()) return std::optional<double>();
  auto r = amount_per_period(text, "budget");
  if (!r) return tl::unexpected(r.error());
  if (r->second != 86400) return fail(ErrorType::bad_request, "a budget is per day, for example 5.00/day");
  return std::optional<double>(r->first);
}

bool scope_allows(const std::vector<std::string>& scopes, std::string_view needed) {
  for (auto& s : scopes) {
    if (s == "admin" || s == needed) return true;
    if (s == "invoke:*" && needed.rfind("invoke:", 0) == 0) return true;
  }
  return false;
}

namespace {

Expected<ApiKey> to_key(const store::ApiKeyRow& row) {
  ApiKey k{row, {}, {}, {}};
  auto rate = parse_rate(row.rate);
  auto tokens = parse_rate(row.tokens);
  auto budget = parse_budget(row.budget);
  if (!rate) return tl::unexpected(rate.error());
  if (!tokens) return tl::unexpected(tokens.error());
  if (!budget) return tl::unexpected(budget.error());
  k.rate = *rate;
  k.tokens = *tokens;
  k.budget_per_day = *budget;
  return k;
}

Expected<void> check_scope(const std::string& s) {
  if (s == "admin" || s == "models" || s == "invoke:*") return {};
  if (s.rfind("invoke:", 0) == 0 && config::valid_function_name(s.substr(7))) return {};
  return fail(ErrorType::bad_request,
              fmt::format("\"{}\" is not a scope (invoke:NAME, invoke:*, models or admin)", s));
}

}  // namespace

Expected<void> ApiKeys::load() {
  auto rows = store_.list_keys();
  if (!rows) return tl::unexpected(rows.error());
  std::lock_guard lk(mu_);
  live_.clear();
  created_ = static_cast<std::int64_t>(rows->size());
  for (auto& row : *rows) {
    if (row.revoked) continue;
    auto k = to_key(row);
    if (!k) return tl::unexpected(k.error());
    live_[row.id] = std::move(*k);
  }
  return {};
}

Expected<std::pair<store::ApiKeyRow, std::string>> ApiKeys::create(const NewKey& req) {
  if (req.scopes.empty()) return fail(ErrorType::bad_request, "a key needs at least one scope");
  for (auto& s : req.scopes)
    if (auto r = check_scope(s); !r) return tl::unexpected(r.error());
  if (req.name.size() > 128) return fail(ErrorType::bad_request, "a key name has at most 128 characters");
  unsigned char raw[6];
  randombytes_buf(raw, sizeof raw);
  char hex[2 * sizeof raw + 1];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  store::ApiKeyRow row;
  row.id = std::string("k") + hex;
  row.name = req.name;
  row.scopes = req.scopes;
  row.rate = req.rate;
  row.tokens = req.tokens;
  row.budget = req.budget;
  row.created_ms = epoch_ms_now();
  auto key = to_key(row);
  if (!key) return tl::unexpected(key.error());
  std::string secret = random_token();
  row.hash = key_hash(secret);
  key->row.hash = row.hash;
  if (auto r = store_.insert_key(row); !r) return tl::unexpected(r.error());
  std::lock_guard lk(mu_);
  live_[row.id] = std::move(*key);
  ++created_;
  return std::pair(row, "aifn_" + row.id + "." + secret);
}

std::optional<ApiKey> ApiKeys::authenticate(std::string_view text) const {
  if (text.rfind("aifn_", 0) != 0) return std::nullopt;
  text.remove_prefix(5);
  auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string id(text.substr(0, dot));
  auto hash = key_hash(text.substr(dot + 1));
  std::lock_guard lk(mu_);
  auto it = live_.find(id);
  if (it == live_.end() || !hashes_equal(hash, it->second.row.hash)) return std::nullopt;
  return it->second;
}

std::optional<ApiKey> ApiKeys::find(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  return it->second;
}

Expected<bool> ApiKeys::revoke(const std::string& id) {
  auto r = store_.revoke_key(id);
  if (!r) return r;
  std::lock_guard lk(mu_);
  live_.erase(id);
  return r;
}

bool ApiKeys::any_created() const {
  std::lock_guard lk(mu_);
  return created_ > 0;
}

}  // namespace aifn::security
