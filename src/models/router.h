// aifn::models::Router — resolves a request's `model` to provider targets and
// asks them in order (DESIGN.md §8). `model` is either a [[models]] name,
// whose `route` lists "provider/model" targets in fallback order, or a direct
// "provider/model" target. A target failing with ProviderError::retryable
// before any text was streamed moves the request on to the next target;
// other failures, and failures after text reached the client, are final.
//
// Defaults (DESIGN.md §3): with no [[providers]] configured, provider `local`
// (kind gguf, models/tiny.gguf) and model `default` -> ["local/tiny"]; when
// that file does not exist the provider is skipped quietly: /v1/models then
// lists nothing and calls answer 503 unavailable.
//
// io thread only.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "config/config.h"
#include "models/provider.h"

namespace aifn::models {

struct Target {
  Provider* provider = nullptr;  // null: the provider is configured but not available
  std::string provider_name;
  std::string model_id;  // the provider's own id ("tiny")
  std::string name() const { return provider_name + "/" + model_id; }
};

// A listed model: a [[models]] name (owned_by "aifn") or a provider target.
struct ModelEntry {
  std::string id;
  std::string owned_by;
};

template <typename T>
struct Served {
  T value;
  std::string target;  // "provider/model" that answered (priced and metered under this name)
};

class Router {
 public:
  // `unavailable`: names of configured providers that could not be created
  // (their targets answer 503 rather than 404).
  Router(std::vector<config::ModelRoute> models, std::vector<std::unique_ptr<Provider>> providers,
         std::set<std::string> unavailable = {});

  // [[models]] names and provider targets, as /v1/models lists them.
  boost::asio::awaitable<std::vector<ModelEntry>> list();

  // not_found for an unknown name; unavailable when no target's provider exists.
  Expected<std::vector<Target>> resolve(const std::string& model) const;

  // Tries the model's targets in order. `req.model` is overwritten per target.
  boost::asio::awaitable<ProviderResult<Served<Completion>>> complete(const std::string& model,
                                                                      CompletionRequest& req, TextSink* sink);
  boost::asio::awaitable<ProviderResult<Served<Embeddings>>> embed(const std::string& model,
                                                                   const std::vector<std::string>& inputs);

  Provider* provider(const std::string& name) const;

  // The secret `name` was set or removed: providers whose key comes from it
  // resolve it again (rotation without a restart). Returns how many.
  int reload_keys(const std::string& secret_name);

 private:
  std::vector<config::ModelRoute> models_;
  std::vector<std::unique_ptr<Provider>> providers_;
  std::set<std::string> unavailable_;
};

// Builds the providers of a server config (defaults applied as above) on the
// io executor. Kinds this build cannot serve are logged and left unavailable.
// `resolve_key` turns an `openai` provider's api_key reference into the key
// (empty: env_key_resolver(), "env:" only).
std::unique_ptr<Router> make_router(
    const config::Server& cfg, const boost::asio::any_io_executor& io,
    const std::function<Expected<std::string>(std::string_view)>& resolve_key = {});

}  // namespace aifn::models
