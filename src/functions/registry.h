// aifn::functions::Registry — the deployed functions: for each name the
// current version (its FunctionSpec, compiled input schema and instance
// Pool). Loaded from functions_dir and the data dir at start; deploy()
// installs a new version atomically: new calls get it at once, calls in
// flight finish on the old version, whose instances drain and stop.
// io thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "functions/schema.h"
#include "runtime/runtime.h"

namespace aifn::functions {

struct Deployed {
  std::shared_ptr<const runtime::FunctionSpec> spec;
  std::shared_ptr<const InputSchema> schema;  // null: no [input] schema
  std::shared_ptr<const InputSchema> output_schema;  // prompt functions: [prompt] output_schema
  std::shared_ptr<runtime::Pool> pool;
  std::uint64_t max_request = 0;  // effective: min(function, server)
};

class Registry {
 public:
  Registry(runtime::RuntimeContext& ctx, std::string data_dir, std::uint64_t server_max_request);
  ~Registry();

  // Loads every folder with a function.toml under `dir`. Throws
  // config::ConfigError on a bad manifest (startup stops).
  void load_dir(const std::string& dir);
  // Loads versions deployed through the API in earlier runs.
  void load_deployed();

  // Installs the function in `dir` as the next version of its name.
  Expected<std::shared_ptr<const Deployed>> install(const std::string& dir, bool from_api);
  // Unpacks a tar.gz into the data dir and installs it; the manifest's name
  // must match `name`. Errors name the problem (bad archive, bad manifest).
  Expected<std::shared_ptr<const Deployed>> deploy_archive(const std::string& name, std::string_view tar_gz);
  Expected<void> remove(const std::string& name);

  std::shared_ptr<const Deployed> find(const std::string& name) const;
  std::vector<std::shared_ptr<const Deployed>> all() const;
  // Pools of replaced versions still finishing calls.
  std::size_t draining() const;
  void stop_all();

 private:
  // `name`: used when the manifest has none ("" = the folder's name).
  Expected<std::shared_ptr<const Deployed>> build(const std::string& dir, const std::string& version,
                                                  const std::string& name = "");
  void activate(std::shared_ptr<const Deployed> d);
  std::string next_version(const std::string& name);

  runtime::RuntimeContext& ctx_;
  std::string data_dir_;
  std::uint64_t server_max_request_;
  std::map<std::string, std::shared_ptr<const Deployed>> current_;
  std::map<std::string, std::uint64_t> versions_;
  std::vector<std::weak_ptr<runtime::Pool>> old_pools_;
};

}  // namespace aifn::functions
