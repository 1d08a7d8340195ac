// aifn::gateway — the public HTTP API (DESIGN.md §6): routes requests to
// function invocation, admin, health and metrics handlers. Input is checked
// (size, JSON depth, schema) before a function's pool is asked for an
// instance, so bad input never pays for a cold start. Every response
// carries X-Request-Id; every call is metered and counted.
// io thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include "cache/lru_cache.h"
#include "cache/single_flight.h"
#include "config/config.h"
#include "functions/registry.h"
#include "gateway/log_store.h"
#include "gateway/metrics.h"
#include "http/server.h"
#include "jobs/jobs.h"
#include "metering/metering.h"
#include "models/router.h"
#include "models/token_registry.h"
#include "security/api_keys.h"
#include "security/auth.h"
#include "security/limits.h"
#include "security/secrets.h"
#include "store/store.h"

namespace aifn::gateway {

struct GatewayDeps {
  const config::Server& config;
  functions::Registry& registry;
  store::Store& store;
  metering::Meter& meter;
  LogStore& logs;
  security::Auth& auth;
  security::ApiKeys& keys;
  security::Limits& limits;
  security::Secrets& secrets;
  // The model gateway (/v1/*); null: /v1 answers 503.
  models::Router* router = nullptr;
  models::TokenRegistry* tokens = nullptr;
  jobs::Jobs* jobs = nullptr;  // background jobs (jobs_routes.cpp); null = job routes answer 503
};

// What a prompt function call used, for its usage record.
struct PromptCallMeter {
  int status = 200;
  std::string error_type;
  bool streamed = false;
  std::string model;  // "provider/model" that answered
  std::int64_t tokens_in = 0;
  std::int64_t tokens_out = 0;
  bool cacheable = false;    // in: the function has [cache] ttl (answers say X-Aifn-Cache: miss)
  std::string answer;        // out, on success: the whole answer, to cache
  std::string answer_type;   // its content type
};

// How a synchronous call reports a function's failure: aifn's error shape
// (DESIGN.md §6), or AWS Lambda's Invoke API (200 + X-Amz-Function-Error).
enum class CallShape { aifn, lambda };

class Gateway {
 public:
  explicit Gateway(GatewayDeps deps) : d_(deps), responses_(deps.config.cache_size) {}
  boost::asio::awaitable<void> handle(http::Exchange& ex);
  Metrics& metrics() { return metrics_; }

 private:
  boost::asio::awaitable<void> invoke(http::Exchange& ex, const std::string& name,
                                      CallShape shape = CallShape::aifn);
  // Jobs and the Lambda-compatible invoke (jobs_routes.cpp).
  boost::asio::awaitable<bool> route_jobs(http::Exchange& ex, std::string_view path);
  boost::asio::awaitable<void> enqueue(http::Exchange& ex, const std::string& name, bool lambda_event);
  boost::asio::awaitable<void> job_events(http::Exchange& ex, const std::string& id);
  boost::asio::awaitable<void> lambda_invoke(http::Exchange& ex, const std::string& name);
  // Reads and checks a call's JSON event (size, JSON, schema); the error is
  // answered already when it returns none.
  boost::asio::awaitable<std::optional<std::string>> read_event(http::Exchange& ex, const functions::Deployed& fn);
  boost::asio::awaitable<void> admin(http::Exchange& ex, std::string_view rest);
  boost::asio::awaitable<void> admin_logs(http::Exchange& ex, const std::string& name);
  boost::asio::awaitable<void> ready(http::Exchange& ex);
  // admin_security.cpp: /admin/keys and /admin/secrets
  boost::asio::awaitable<void> admin_keys(http::Exchange& ex, std::string_view rest);
  boost::asio::awaitable<void> admin_secrets(http::Exchange& ex, std::string_view rest);
  // runtime = "prompt" (prompt_call.cpp): answers the call; `meter` gets what it used.
  boost::asio::awaitable<void> invoke_prompt(http::Exchange& ex, const functions::Deployed& dep,
                                             const boost::json::value& input, PromptCallMeter& meter);
  // /v1/*: the OpenAI-compatible model routes (models_api.cpp).
  boost::asio::awaitable<void> v1(http::Exchange& ex, std::string_view rest);

  GatewayDeps d_;
  Metrics metrics_;
  std::map<std::string, int> in_flight_;  // calls per function, for max_concurrency
  cache::LruCache responses_;  // functions' [cache] ttl answers and deterministic /v1 answers
  // Identical cacheable /v1 completions in flight share one model call.
  cache::SingleFlight<models::ProviderResult<models::Served<models::Completion>>> model_flights_;
};

// The value of `key` in a URL query string ("" when absent), percent-decoded.
std::string query_param(std::string_view query, std::string_view key);

// A request id from the client when it is sane, else a new one.
std::string request_id_for(std::string_view client_value);
std::string new_request_id();

}  // namespace aifn::gateway
