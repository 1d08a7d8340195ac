#include "functions/registry.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config/config.h"
#include "functions/archive.h"

namespace aifn::functions {
namespace fs = std::filesystem;

Registry::Registry(runtime::RuntimeContext& ctx, std::string data_dir, std::uint64_t server_max_request)
    : ctx_(ctx), data_dir_(std::move(data_dir)), server_max_request_(server_max_request) {}

Registry::~Registry() { stop_all(); }

void Registry::load_dir(const std::string& dir) {
  std::vector<fs::path> folders;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && fs::exists(e.path() / "function.toml")) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  for (auto& f : folders) {
    config::load_function(f.string());  // throws ConfigError naming file, line, key
    auto d = install(f.string(), false);
    if (!d) throw config::ConfigError((f / "function.toml").string(), 0, "", d.error().message);
  }
}

void Registry::load_deployed() {
  fs::path root = fs::path(data_dir_) / "deployments";
  if (!fs::exists(root)) return;
  for (auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    std::ifstream cur(e.path() / "current");
    std::string v;
    if (!(cur >> v)) continue;
    auto dir = e.path() / ("v" + v);
    if (!fs::exists(dir / "function.toml")) continue;
    auto name = e.path().filename().string();
    versions_[name] = std::max<std::uint64_t>(versions_[name], std::stoull(v));
    auto d = build(dir.string(), v, name);
    if (!d) {
      spdlog::error("event=deployed_function_unusable function={} error=\"{}\"", name, d.error().message);
      continue;
    }
    activate(*d);
  }
}

std::string Registry::next_version(const std::string& name) { return std::to_string(++versions_[name]); }

Expected<std::shared_ptr<const Deployed>> Registry::build(const std::string& dir, const std::string& version,
                                                          const std::string& name) {
  auto spec = std::make_shared<runtime::FunctionSpec>();
  try {
    spec->cfg = config::load_function(dir, name);
  } catch (const config::ConfigError& e) {
    return fail(ErrorType::bad_request, e.what());
  }
  spec->dir = fs::canonical(dir).string();
  spec->version = version;
  auto d = std::make_shared<Deployed>();
  if (!spec->cfg.input_schema.empty()) {
    fs::path p = spec->cfg.input_schema;
    if (p.is_relative()) p = fs::path(spec->dir) / p;
    auto s = InputSchema::load(p.string());
    if (!s) return tl::unexpected(s.error());
    d->schema = *s;
  }
  if (spec->cfg.prompt && !spec->cfg.prompt->output_schema.empty()) {
    fs::path p = spec->cfg.prompt->output_schema;
    if (p.is_relative()) p = fs::path(spec->dir) / p;
    auto s = InputSchema::load(p.string());
    if (!s) return tl::unexpected(s.error());
    d->output_schema = *s;
  }
  d->max_request = std::min(spec->cfg.max_request.value_or(server_max_request_), server_max_request_);
  d->spec = spec;
  if (spec->cfg.runtime != "prompt") d->pool = std::make_shared<runtime::Pool>(ctx_, spec);
  return std::shared_ptr<const Deployed>(std::move(d));
}

Expected<std::shared_ptr<const Deployed>> Registry::install(const std::string& dir, bool) {
  std::string name;
  try {
    name = config::load_function(dir).name;
  } catch (const config::ConfigError& e) {
    return fail(ErrorType::bad_request, e.what());
  }
  auto d = build(dir, next_version(name));
  if (!d) return d;
  activate(*d);
  return d;
}

void Registry::activate(std::shared_ptr<const Deployed> d) {
  auto& slot = current_[d->spec->cfg.name];
  auto old = std::move(slot);
  slot = d;
  if (d->pool) d->pool->start();
  if (old && old->pool) {
    old->pool->drain();
    old_pools_.push_back(old->pool);
  }
  std::erase_if(old_pools_, [](auto& w) { return w.expired(); });
  spdlog::info("event=function_active function={} version={} runtime={}", d->spec->cfg.name, d->spec->version,
               d->spec->cfg.runtime);
}

Expected<std::shared_ptr<const Deployed>> Registry::deploy_archive(const std::string& name, std::string_view tar_gz) {
  if (!config::valid_function_name(name))
    return fail(ErrorType::bad_request, fmt::format("\"{}\" is not a valid function name ([a-z0-9-]{{1,63}})", name));
  fs::path root = fs::path(data_dir_) / "deployments" / name;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return fail(ErrorType::internal, fmt::format("cannot create {}: {}", root.string(), ec.message()));
  std::random_device rd;
  fs::path tmp = root / fmt::format(".incoming-{:08x}", rd());
  fs::create_directory(tmp, ec);
  auto cleanup = [&] { fs::remove_all(tmp, ec); };
  if (auto r = extract_tar_gz(tar_gz, tmp.string()); !r) {
    cleanup();
    return tl::unexpected(r.error());
  }
  if (!fs::exists(tmp / "function.toml")) {
    cleanup();
    return fail(ErrorType::bad_request, "the archive has no function.toml at its top level");
  }
  config::Function cfg;
  try {
    cfg = config::load_function(tmp.string(), name);  // a manifest without `name` takes the URL's
  } catch (const config::ConfigError& e) {
    cleanup();
    return fail(ErrorType::bad_request, e.what());
  }
  if (cfg.name != name) {
    cleanup();
    return fail(ErrorType::bad_request,
                fmt::format("function.toml names \"{}\" but the upload is for \"{}\"", cfg.name, name));
  }
  auto version = next_version(name);
  fs::path final_dir = root / ("v" + version);
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    cleanup();
    return fail(ErrorType::internal, fmt::format("cannot install {}: {}", final_dir.string(), ec.message()));
  }
  auto d = build(final_dir.string(), version, name);
  if (!d) {
    fs::remove_all(final_dir, ec);
    return d;
  }
  // Point "current" at the new version atomically (rename over the old file).
  {
    std::ofstream f(root / "current.tmp");
    f << version << "\n";
  }
  fs::rename(root / "current.tmp", root / "current", ec);
  activate(*d);
  return d;
}

Expected<void> Registry::remove(const std::string& name) {
  auto it = current_.find(name);
  if (it == current_.end()) return fail(ErrorType::not_found, fmt::format("no function named \"{}\"", name));
  if (it->second->pool) {
    it->second->pool->drain();
    old_pools_.push_back(it->second->pool);
  }
  current_.erase(it);
  std::error_code ec;
  fs::remove(fs::path(data_dir_) / "deployments" / name / "current", ec);
  return {};
}

std::shared_ptr<const Deployed> Registry::find(const std::string& name) const {
  auto it = current_.find(name);
  return it == current_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Deployed>> Registry::all() const {
  std::vector<std::shared_ptr<const Deployed>> out;
  for (auto& [_, d] : current_) out.push_back(d);
  return out;
}

std::size_t Registry::draining() const {
  std::size_t n = 0;
  for (auto& w : old_pools_)
    if (auto p = w.lock(); p && p->live_instances()) ++n;
  return n;
}

void Registry::stop_all() {
  for (auto& [_, d] : current_)
    if (d->pool) d->pool->stop_all();
  for (auto& w : old_pools_)
    if (auto p = w.lock()) p->stop_all();
}

}  // namespace aifn::functions
