// Internal to aifn_config: typed, checked access to one TOML table. Every
// getter marks its key as known, so finish() can name the keys nobody asked
// for (typos such as `timout`). Every problem is thrown as ConfigError with the
// file, the line of the offending node and the dotted key ("limits.max_request",
// "providers[1].kind"). Not thread-safe; one reader per table while loading.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "base/units.h"
#include "config/config.h"

namespace aifn::config {

// The line toml++ recorded for a node; 0 when it has none (e.g. the root).
int line_of(const toml::node& n);

class TomlReader {
 public:
  // `prefix` is prepended to key names in messages ("limits." or "").
  TomlReader(const std::string& file, const toml::table& table, std::string prefix);

  bool has(std::string_view key) const;
  // The node of `key` (marked known) or nullptr when absent.
  const toml::node* node(std::string_view key);

  std::optional<std::string> string(std::string_view key);
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<double> number(std::string_view key, double min);  // integer or float
  std::optional<Millis> duration(std::string_view key, Millis min);  // "30s"
  std::optional<std::uint64_t> size(std::string_view key, std::uint64_t min);  // "1MiB" or bytes
  std::optional<std::vector<std::string>> string_array(std::string_view key);
  std::optional<std::map<std::string, std::string>> string_map(std::string_view key);
  // A sub-table; nullptr when absent.
  const toml::table* table(std::string_view key);
  // An array of tables ([[providers]]); empty when absent.
  std::vector<const toml::table*> table_array(std::string_view key);

  // Throws for the first key that no getter asked for.
  void finish() const;

  [[noreturn]] void fail(std::string_view key, int line, const std::string& problem) const;
  [[noreturn]] void fail_at(std::string_view key, const toml::node& n, const std::string& problem) const;
  // For a required key that is absent: the line of the table itself.
  [[noreturn]] void fail_missing(std::string_view key, const std::string& problem) const;

  std::string full_key(std::string_view key) const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  const toml::table& table_;
  std::string prefix_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace aifn::config
