#include "config/toml_reader.h"

#include <cmath>

#include <fmt/format.h>

namespace aifn::config {
namespace {

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

}  // namespace

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

TomlReader::TomlReader(const std::string& file, const toml::table& table, std::string prefix)
    : file_(file), table_(table), prefix_(std::move(prefix)) {}

std::string TomlReader::full_key(std::string_view key) const { return prefix_ + std::string(key); }

void TomlReader::fail(std::string_view key, int line, const std::string& problem) const {
  throw ConfigError(file_, line, full_key(key), problem);
}

void TomlReader::fail_at(std::string_view key, const toml::node& n, const std::string& problem) const {
  fail(key, line_of(n), problem);
}

void TomlReader::fail_missing(std::string_view key, const std::string& problem) const {
  int line = line_of(table_);
  fail(key, line > 0 ? line : 1, problem);
}

bool TomlReader::has(std::string_view key) const { return table_.contains(key); }

const toml::node* TomlReader::node(std::string_view key) {
  known_.emplace(key);
  return table_.get(key);
}

std::optional<std::string> TomlReader::string(std::string_view key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_string()) fail_at(key, *n, fmt::format("expected a string, got {}", type_name(*n)));
  return n->as_string()->get();
}

std::optional<bool> TomlReader::boolean(std::string_view key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_boolean()) fail_at(key, *n, fmt::format("expected true or false, got {}", type_name(*n)));
  return n->as_boolean()->get();
}

std::optional<std::int64_t> TomlReader::integer(std::string_view key, std::int64_t min, std::int64_t max) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_integer()) fail_at(key, *n, fmt::format("expected an integer, got {}", type_name(*n)));
  std::int64_t v = n->as_integer()->get();
  if (v < min) fail_at(key, *n, fmt::format("{} is below the minimum of {}", v, min));
  if (v > max) fail_at(key, *n, fmt::format("{} is above the maximum of {}", v, max));
  return v;
}

std::optional<double> TomlReader::number(std::string_view key, double min) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  double v = 0;
  if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
  else if (n->is_floating_point()) v = n->as_floating_point()->get();
  else fail_at(key, *n, fmt::format("expected a number, got {}", type_name(*n)));
  if (!std::isfinite(v)) fail_at(key, *n, "must be a finite number");
  if (v < min) fail_at(key, *n, fmt::format("{} is below the minimum of {}", v, min));
  return v;
}

std::optional<Millis> TomlReader::duration(std::string_view key, Millis min) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_string())
    fail_at(key, *n, fmt::format("expected a duration string such as \"30s\", got {}", type_name(*n)));
  auto d = parse_duration(n->as_string()->get());
  if (!d) fail_at(key, *n, d.error().message);
  if (*d < min) fail_at(key, *n, fmt::format("{} is below the minimum of {}", format_duration(*d), format_duration(min)));
  return *d;
}

std::optional<std::uint64_t> TomlReader::size(std::string_view key, std::uint64_t min) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  std::uint64_t v = 0;
  if (n->is_integer()) {
    std::int64_t i = n->as_integer()->get();
    if (i < 0) fail_at(key, *n, fmt::format("size {} is negative", i));
    v = static_cast<std::uint64_t>(i);
  } else if (n->is_string()) {
    auto s = parse_size(n->as_string()->get());
    if (!s) fail_at(key, *n, s.error().message);
    v = *s;
  } else {
    fail_at(key, *n, fmt::format("expected a size such as \"1MiB\" or a number of bytes, got {}", type_name(*n)));
  }
  if (v < min) fail_at(key, *n, fmt::format("{} is below the minimum of {}", format_size(v), format_size(min)));
  return v;
}

std::optional<std::vector<std::string>> TomlReader::string_array(std::string_view key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_array()) fail_at(key, *n, fmt::format("expected an array of strings, got {}", type_name(*n)));
  std::vector<std::string> out;
  for (const toml::node& e : *n->as_array()) {
    if (!e.is_string())
      fail_at(key, e.source().begin.line ? e : *n, fmt::format("expected an array of strings, found {}", type_name(e)));
    out.push_back(e.as_string()->get());
  }
  return out;
}

std::optional<std::map<std::string, std::string>> TomlReader::string_map(std::string_view key) {
  const toml::node* n = node(key);
  if (!n) return std::nullopt;
  if (!n->is_table()) fail_at(key, *n, fmt::format("expected a table of strings, got {}", type_name(*n)));
  std::map<std::string, std::string> out;
  for (auto&& [k, v] : *n->as_table()) {
    std::string sub = fmt::format("{}.{}", key, k.str());
    if (!v.is_string()) fail_at(sub, v, fmt::format("expected a string, got {}", type_name(v)));
    out.emplace(std::string(k.str()), v.as_string()->get());
  }
  return out;
}

const toml::table* TomlReader::table(std::string_view key) {
  const toml::node* n = node(key);
  if (!n) return nullptr;
  if (!n->is_table()) fail_at(key, *n, fmt::format("expected a table, got {}", type_name(*n)));
  return n->as_table();
}

std::vector<const toml::table*> TomlReader::table_array(std::string_view key) {
  const toml::node* n = node(key);
  std::vector<const toml::table*> out;
  if (!n) return out;
  if (n->is_array() && n->as_array()->empty()) return out;
  if (!n->is_array_of_tables())
    fail_at(key, *n, fmt::format("expected an array of tables ([[{}]]), got {}", key, type_name(*n)));
  for (const toml::node& e : *n->as_array()) out.push_back(e.as_table());
  return out;
}

void TomlReader::finish() const {
  for (auto&& [k, v] : table_) {
    if (known_.find(k.str()) != known_.end()) continue;
    int line = static_cast<int>(k.source().begin.line);
    if (line == 0) line = line_of(v);
    fail(k.str(), line, "unknown key");
  }
}

}  // namespace aifn::config
