#include "config/config.h"

#include <cstring>
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "config/toml_reader.h"

namespace aifn::config {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kMaxInt = std::numeric_limits<int>::max();

std::string describe(const std::string& file, int line, const std::string& key, const std::string& problem) {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}", line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + problem;
}

// Reads and parses a TOML file; syntax errors become ConfigError with the line.
toml::table parse_toml(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw ConfigError(path, 0, "", "cannot read the file: not found or not a regular file");
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    int line = static_cast<int>(e.source().begin.line);
    throw ConfigError(path, line, "", fmt::format("TOML syntax error: {}", e.description()));
  }
}

bool valid_env_name(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// Names of providers and [[models]] entries: used in "provider/model"
// targets and URLs, so no slash, no spaces.
bool valid_ref_name(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '.'))
      return false;
  return true;
}

// "provider/model": a provider name, a slash, and a non-empty model id (which
// may itself contain slashes, as upstream ids such as "meta-llama/Llama-3" do).
bool valid_target(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos || slash + 1 >= s.size()) return false;
  return valid_ref_name(s.substr(0, slash));
}

// Checks "secret:NAME" | "env:NAME": provider keys never sit in config files.
bool valid_key_ref(const std::string& s) {
  if (s.empty()) return true;
  for (std::string_view prefix : {"secret:", "env:"})
    if (s.starts_with(prefix)) return valid_env_name(s.substr(prefix.size()));
  return false;
}

// A file named in function.toml: relative to the function folder, inside it,
// and present. Absolute paths and ".." are refused so a deployed folder
// cannot make the server read files outside it.
void check_function_file(TomlReader& r, std::string_view key, const std::string& dir, const std::string& rel) {
  const toml::node* n = r.node(key);
  fs::path p(rel);
  if (rel.empty()) r.fail_at(key, *n, "must not be empty");
  if (p.is_absolute()) r.fail_at(key, *n, fmt::format("\"{}\" must be a path relative to the function folder", rel));
  for (const auto& part : p)
    if (part == "..") r.fail_at(key, *n, fmt::format("\"{}\" must stay inside the function folder (no \"..\")", rel));
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / p, ec))
    r.fail_at(key, *n, fmt::format("file \"{}\" does not exist in {}", rel, dir));
}

Provider read_provider(const std::string& file, const toml::table& t, std::size_t index) {
  TomlReader r(file, t, fmt::format("providers[{}].", index));
  Provider p;
  auto name = r.string("name");
  if (!name) r.fail_missing("name", "is required");
  if (!valid_ref_name(*name))
    r.fail_at("name", *r.node("name"), fmt::format("\"{}\" is not a valid provider name (letters, digits, '-', '_', '.')", *name));
  p.name = *name;
  auto kind = r.string("kind");
  if (!kind) r.fail_missing("kind", "is required (gguf or openai)");
  if (*kind != "gguf" && *kind != "openai")
    r.fail_at("kind", *r.node("kind"), fmt::format("\"{}\" is not a provider kind; use gguf or openai", *kind));
  p.kind = *kind;
  if (auto v = r.string("path")) p.path = *v;
  if (auto v = r.integer("threads", 0, 1024)) p.threads = static_cast<int>(*v);
  if (auto v = r.string("base_url")) p.base_url = *v;
  if (auto v = r.string("api_key")) {
    if (!valid_key_ref(*v))
      r.fail_at("api_key", *r.node("api_key"),
                "must be \"secret:NAME\" or \"env:NAME\"; a provider key is never written in the config file");
    p.api_key = *v;
  }
  if (auto v = r.string("ca_file")) p.ca_file = *v;
  p.connect_timeout = r.duration("connect_timeout", Millis(1));
  p.first_byte_timeout = r.duration("first_byte_timeout", Millis(1));
  p.idle_timeout = r.duration("idle_timeout", Millis(1));
  if (auto v = r.integer("max_attempts", 1, 10)) p.max_attempts = static_cast<int>(*v);
  if (auto v = r.string("tokenizer")) p.tokenizer = *v;
  if (p.kind == "gguf") {
    if (p.path.empty()) r.fail_missing("path", "is required for a gguf provider");
    for (std::string_view k : {"base_url", "api_key", "ca_file", "connect_timeout", "first_byte_timeout",
                               "idle_timeout", "max_attempts", "tokenizer"})
      if (r.has(k)) r.fail_at(k, *r.node(k), "is only used by openai providers");
  } else {
    if (p.base_url.empty()) r.fail_missing("base_url", "is required for an openai provider");
    if (!p.base_url.starts_with("http://") && !p.base_url.starts_with("https://"))
      r.fail_at("base_url", *r.node("base_url"), fmt::format("\"{}\" must start with http:// or https://", p.base_url));
    for (std::string_view k : {"path", "threads"})
      if (r.has(k)) r.fail_at(k, *r.node(k), "is only used by gguf providers");
  }
  r.finish();
  return p;
}

ModelRoute read_model(const std::string& file, const toml::table& t, std::size_t index) {
  TomlReader r(file, t, fmt::format("models[{}].", index));
  ModelRoute m;
  auto name = r.string("name");
  if (!name) r.fail_missing("name", "is required");
  if (!valid_ref_name(*name))
    r.fail_at("name", *r.node("name"), fmt::format("\"{}\" is not a valid model name (letters, digits, '-', '_', '.')", *name));
  m.name = *name;
  auto route = r.string_array("route");
  if (!route) r.fail_missing("route", "is required: a list of \"provider/model\" targets");
  if (route->empty()) r.fail_at("route", *r.node("route"), "must list at least one \"provider/model\" target");
  for (const auto& target : *route)
    if (!valid_target(target))
      r.fail_at("route", *r.node("route"), fmt::format("\"{}\" is not a \"provider/model\" target", target));
  m.route = std::move(*route);
  r.finish();
  return m;
}

void read_pricing(const std::string& file, const toml::table& t, Pricing& p) {
  TomlReader r(file, t, "pricing.");
  if (auto v = r.number("per_million_requests", 0)) p.per_million_requests = *v;
  if (auto v = r.number("per_gb_second", 0)) p.per_gb_second = *v;
  if (auto v = r.number("always_on_per_gb_hour", 0)) p.always_on_per_gb_hour = *v;
  if (const toml::table* tokens = r.table("tokens")) {
    for (auto&& [k, v] : *tokens) {
      std::string model(k.str());
      std::string key = fmt::format("tokens.\"{}\"", model);
      if (!valid_target(model))
        r.fail(key, static_cast<int>(k.source().begin.line), fmt::format("\"{}\" is not a \"provider/model\" target", model));
      if (!v.is_table()) r.fail_at(key, v, "expected a table with input_per_million and output_per_million");
      TomlReader tr(file, *v.as_table(), fmt::format("pricing.{}.", key));
      TokenPrice price;
      if (auto x = tr.number("input_per_million", 0)) price.input_per_million = *x;
      if (auto x = tr.number("output_per_million", 0)) price.output_per_million = *x;
      tr.finish();
      p.tokens[model] = price;
    }
  }
  r.finish();
}

}  // namespace

ConfigError::ConfigError(std::string file, int line, std::string key, const std::string& problem)
    : std::runtime_error(describe(file, line, key, problem)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

std::string store_url(const Server& s) {
  if (!s.store.empty()) return s.store;
  return fmt::format("sqlite:{}", (fs::path(s.data_dir) / "aifn.db").string());
}

Server load_server(const std::string& path) {
  Server s;
  if (path.empty()) return s;
  toml::table root = parse_toml(path);
  TomlReader r(path, root, "");

  if (auto v = r.string("listen")) {
    if (v->empty() || v->find(':') == std::string::npos)
      r.fail_at("listen", *r.node("listen"), fmt::format("\"{}\" must be HOST:PORT", *v));
    s.listen = *v;
  }
  if (auto v = r.string("data_dir")) {
    if (v->empty()) r.fail_at("data_dir", *r.node("data_dir"), "must not be empty");
    s.data_dir = *v;
  }
  if (auto v = r.string("functions_dir")) {
    if (v->empty()) r.fail_at("functions_dir", *r.node("functions_dir"), "must not be empty");
    s.functions_dir = *v;
    s.functions_dir_set = true;
  }
  if (auto v = r.string("store")) {
    if (!v->starts_with("sqlite:") && !v->starts_with("postgresql://") && !v->starts_with("postgres://"))
      r.fail_at("store", *r.node("store"), fmt::format("\"{}\" must start with sqlite: or postgresql://", *v));
    s.store = *v;
  }
  if (auto v = r.integer("io_threads", 1, 256)) s.io_threads = static_cast<int>(*v);
  if (auto v = r.string("auth")) {
    if (*v != "auto" && *v != "required" && *v != "off")
      r.fail_at("auth", *r.node("auth"), fmt::format("\"{}\" is not an auth mode; use auto, required or off", *v));
    s.auth = *v;
  }

  if (const toml::table* t = r.table("limits")) {
    TomlReader lr(path, *t, "limits.");
    if (auto v = lr.size("max_request", 1)) s.max_request = *v;
    if (auto v = lr.duration("read_timeout", Millis(1))) s.idle_read_timeout = *v;
    if (auto v = lr.size("max_header", 256)) s.max_header = *v;
    if (auto v = lr.duration("shutdown_grace", Millis(0))) s.shutdown_grace = *v;
    if (auto v = lr.duration("sse_heartbeat", Millis(1))) s.sse_heartbeat = *v;
    if (auto v = lr.size("cache_size", 0)) s.cache_size = *v;
    if (auto v = lr.duration("model_cache_ttl", Millis(0))) s.model_cache_ttl = *v;
    lr.finish();
  }
  if (const toml::table* t = r.table("instances")) {
    TomlReader ir(path, *t, "instances.");
    if (auto v = ir.string("cgroup_root")) s.cgroup_root = *v;
    if (auto v = ir.string("user")) s.instance_user = *v;
    if (auto v = ir.integer("max_open_files", 16, 1 << 20)) s.instance_max_open_files = static_cast<std::uint64_t>(*v);
    if (auto v = ir.integer("max_processes", 1, 1 << 22)) s.instance_max_processes = static_cast<std::uint64_t>(*v);
    if (auto v = ir.boolean("private_tmp")) s.private_tmp = *v;
    if (auto v = ir.string("scheduling")) {
      if (*v != "batch" && *v != "normal")
        ir.fail_at("scheduling", *ir.node("scheduling"),
                   fmt::format("\"{}\" is not a scheduling policy; use batch or normal", *v));
      s.instance_scheduling = *v;
    }
    ir.finish();
  }

  std::set<std::string> names;
  auto providers = r.table_array("providers");
  for (std::size_t i = 0; i < providers.size(); ++i) {
    Provider p = read_provider(path, *providers[i], i);
    if (!names.insert(p.name).second)
      throw ConfigError(path, line_of(*providers[i]), fmt::format("providers[{}].name", i),
                        fmt::format("provider \"{}\" is defined twice", p.name));
    s.providers.push_back(std::move(p));
  }
  for (std::size_t i = 0; i < s.providers.size(); ++i) {
    const std::string& tok = s.providers[i].tokenizer;
    if (tok.empty()) continue;
    auto it = std::find_if(s.providers.begin(), s.providers.end(), [&](const Provider& q) { return q.name == tok; });
    if (it == s.providers.end() || it->kind != "gguf")
      throw ConfigError(path, line_of(*providers[i]), fmt::format("providers[{}].tokenizer", i),
                        fmt::format("\"{}\" is not a gguf provider of this file", tok));
  }
  names.clear();
  auto models = r.table_array("models");
  for (std::size_t i = 0; i < models.size(); ++i) {
    ModelRoute m = read_model(path, *models[i], i);
    if (!names.insert(m.name).second)
      throw ConfigError(path, line_of(*models[i]), fmt::format("models[{}].name", i),
                        fmt::format("model \"{}\" is defined twice", m.name));
    s.models.push_back(std::move(m));
  }

  if (const toml::table* t = r.table("jobs")) {
    TomlReader jr(path, *t, "jobs.");
    if (auto v = jr.string("webhook_secret")) {
      if (!valid_key_ref(*v))
        jr.fail_at("webhook_secret", *jr.node("webhook_secret"), "must be \"secret:NAME\" or \"env:NAME\"");
      s.webhook_secret = *v;
    }
    if (auto v = jr.string("callback_ca_file")) s.callback_ca_file = *v;
    if (auto v = jr.duration("retention", Millis(0))) s.job_retention = *v;
    jr.finish();
  }
  if (const toml::table* t = r.table("pricing")) read_pricing(path, *t, s.pricing);

  r.finish();
  return s;
}

void apply_env(Server& s, char** envp) {
  if (!envp) return;
  const std::string file = "environment";
  for (char** e = envp; *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with("AIFN_")) continue;
    std::string name(entry.substr(0, eq));
    std::string value(entry.substr(eq + 1));
    auto bad = [&](const std::string& problem) { throw ConfigError(file, 0, name, problem); };
    if (name == "AIFN_LISTEN") {
      if (value.find(':') == std::string::npos) bad(fmt::format("\"{}\" must be HOST:PORT", value));
      s.listen = value;
    } else if (name == "AIFN_DATA_DIR") {
      if (value.empty()) bad("must not be empty");
      s.data_dir = value;
    } else if (name == "AIFN_FUNCTIONS_DIR") {
      if (value.empty()) bad("must not be empty");
      s.functions_dir = value;
      s.functions_dir_set = true;
    } else if (name == "AIFN_STORE") {
      if (!value.starts_with("sqlite:") && !value.starts_with("postgresql://") && !value.starts_with("postgres://"))
        bad(fmt::format("\"{}\" must start with sqlite: or postgresql://", value));
      s.store = value;
    } else if (name == "AIFN_MAX_REQUEST") {
      auto v = parse_size(value);
      if (!v) bad(v.error().message);
      if (*v == 0) bad("must be at least 1 byte");
      s.max_request = *v;
    } else if (name == "AIFN_AUTH") {
      if (value != "auto" && value != "required" && value != "off") bad(fmt::format("\"{}\": use auto, required or off", value));
      s.auth = value;
    } else if (name == "AIFN_IO_THREADS") {
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > 256)
        bad(fmt::format("\"{}\" must be a number of threads from 1 to 256", value));
      s.io_threads = n;
    } else if (name == "AIFN_READ_TIMEOUT") {
      auto v = parse_duration(value);
      if (!v) bad(v.error().message);
      if (v->count() < 1) bad("must be at least 1ms");
      s.idle_read_timeout = *v;
    } else if (name == "AIFN_SHUTDOWN_GRACE") {
      auto v = parse_duration(value);
      if (!v) bad(v.error().message);
      s.shutdown_grace = *v;
    } else if (name == "AIFN_CGROUP_ROOT") {
      s.cgroup_root = value;
    }
    // Other AIFN_* variables (AIFN_KEY, AIFN_SERVER, AIFN_ADMIN_KEY,
    // AIFN_MASTER_KEY, ...) belong to other parts of the program.
  }
}

Function load_function(const std::string& dir, const std::string& default_name) {
  const std::string path = (fs::path(dir) / "function.toml").string();
  toml::table root = parse_toml(path);
  TomlReader r(path, root, "");
  Function f;

  if (auto v = r.string("name")) {
    if (!valid_function_name(*v))
      r.fail_at("name", *r.node("name"), fmt::format("\"{}\" is not a valid function name ([a-z0-9-], 1 to 63 characters)", *v));
    f.name = *v;
  } else {
    fs::path p(dir);
    std::string folder = !default_name.empty() ? default_name
                         : p.has_filename()    ? p.filename().string()
                                               : p.parent_path().filename().string();
    if (!valid_function_name(folder))
      r.fail_missing("name", fmt::format("is absent and the folder name \"{}\" is not a valid function name "
                                         "([a-z0-9-], 1 to 63 characters); set name", folder));
    f.name = folder;
  }

  auto runtime = r.string("runtime");
  if (!runtime) r.fail_missing("runtime", "is required (node, python, exec or prompt)");
  if (*runtime != "node" && *runtime != "python" && *runtime != "exec" && *runtime != "prompt")
    r.fail_at("runtime", *r.node("runtime"), fmt::format("\"{}\" is not a runtime; use node, python, exec or prompt", *runtime));
  f.runtime = *runtime;

  if (auto v = r.string("handler")) f.handler = *v;
  if (f.runtime != "prompt" && f.handler.empty()) {
    if (r.has("handler")) r.fail_at("handler", *r.node("handler"), "must not be empty");
    r.fail_missing("handler", fmt::format("is required for runtime {}", f.runtime));
  }

  if (auto v = r.duration("timeout", Millis(1))) f.timeout = *v;
  if (auto v = r.duration("job_timeout", Millis(1))) f.job_timeout = *v;
  if (auto v = r.size("memory", 1024 * 1024)) f.memory = *v;
  if (auto v = r.size("max_request", 1)) f.max_request = *v;
  if (auto v = r.integer("concurrency", 1, kMaxInt)) f.concurrency = static_cast<int>(*v);
  if (auto v = r.integer("min_instances", 0, kMaxInt)) f.min_instances = static_cast<int>(*v);
  if (auto v = r.integer("max_instances", 1, kMaxInt)) f.max_instances = static_cast<int>(*v);
  if (auto v = r.integer("max_concurrency", 0, kMaxInt)) f.max_concurrency = static_cast<int>(*v);
  if (f.min_instances > f.max_instances)
    r.fail_at("min_instances", *r.node("min_instances"),
              fmt::format("{} is above max_instances ({})", f.min_instances, f.max_instances));
  if (auto v = r.duration("idle_timeout", Millis(1))) f.idle_timeout = *v;
  if (auto v = r.duration("queue_timeout", Millis(0))) f.queue_timeout = *v;
  if (auto v = r.string("on_timeout")) {
    if (*v != "fail" && *v != "job")
      r.fail_at("on_timeout", *r.node("on_timeout"), fmt::format("\"{}\" must be fail or job", *v));
    f.on_timeout = *v;
  }
  if (auto v = r.string("on_disconnect")) {
    if (*v != "cancel" && *v != "finish" && *v != "job")
      r.fail_at("on_disconnect", *r.node("on_disconnect"), fmt::format("\"{}\" must be cancel, finish or job", *v));
    f.on_disconnect = *v;
  }
  if (auto v = r.string("network")) {
    if (*v != "host" && *v != "gateway-only")
      r.fail_at("network", *r.node("network"), fmt::format("\"{}\" must be host or gateway-only", *v));
    f.network = *v;
  }
  if (auto v = r.string_map("env")) {
    for (const auto& [k, _] : *v)
      if (!valid_env_name(k))
        r.fail_at("env", *r.node("env"), fmt::format("\"{}\" is not a valid environment variable name", k));
    f.env = std::move(*v);
  }
  if (auto v = r.string_array("secrets")) {
    for (const auto& s : *v)
      if (!valid_env_name(s))
        r.fail_at("secrets", *r.node("secrets"), fmt::format("\"{}\" is not a valid secret name ([A-Za-z_][A-Za-z0-9_]*)", s));
    f.secrets = std::move(*v);
  }
  if (auto v = r.string_array("models")) {
    for (const auto& m : *v)
      if (!valid_ref_name(m) && !valid_target(m))
        r.fail_at("models", *r.node("models"), fmt::format("\"{}\" is neither a model name nor a \"provider/model\" target", m));
    f.models = std::move(*v);
  }

  if (const toml::table* t = r.table("input")) {
    TomlReader ir(path, *t, "input.");
    if (auto v = ir.string("schema")) {
      check_function_file(ir, "schema", dir, *v);
      f.input_schema = *v;
    }
    ir.finish();
  }
  if (const toml::table* t = r.table("cache")) {
    TomlReader cr(path, *t, "cache.");
    f.cache_ttl = cr.duration("ttl", Millis(1));
    if (!f.cache_ttl) cr.fail_missing("ttl", "is required in [cache]");
    cr.finish();
  }
  if (const toml::table* t = r.table("retry")) {
    TomlReader rr(path, *t, "retry.");
    if (auto v = rr.integer("max_attempts", 1, 1000)) f.retry.max_attempts = static_cast<int>(*v);
    if (auto v = rr.duration("backoff", Millis(0))) f.retry.backoff = *v;
    rr.finish();
  }
  if (const toml::table* t = r.table("prompt")) {
    TomlReader pr(path, *t, "prompt.");
    if (f.runtime != "prompt") r.fail_at("prompt", *t, fmt::format("[prompt] is only for runtime = \"prompt\", not {}", f.runtime));
    Prompt p;
    if (auto v = pr.string("model")) {
      if (v->empty()) pr.fail_at("model", *pr.node("model"), "must not be empty");
      p.model = *v;
    }
    if (auto v = pr.string("system")) p.system = *v;
    auto tmpl = pr.string("template");
    if (!tmpl || tmpl->empty()) pr.fail_missing("template", "is required in [prompt]");
    p.template_text = *tmpl;
    if (auto v = pr.string("output")) {
      if (*v != "text" && *v != "json") pr.fail_at("output", *pr.node("output"), fmt::format("\"{}\" must be text or json", *v));
      p.output = *v;
    }
    if (auto v = pr.string("output_schema")) {
      if (p.output != "json") pr.fail_at("output_schema", *pr.node("output_schema"), "needs output = \"json\"");
      check_function_file(pr, "output_schema", dir, *v);
      p.output_schema = *v;
    }
    if (auto v = pr.integer("max_tokens", 1, 1'000'000)) p.max_tokens = static_cast<int>(*v);
    if (auto v = pr.number("temperature", 0)) p.temperature = *v;
    pr.finish();
    f.prompt = std::move(p);
  } else if (f.runtime == "prompt") {
    r.fail_missing("prompt", "runtime = \"prompt\" needs a [prompt] table with at least template");
  }

  r.finish();
  return f;
}

}  // namespace aifn::config
