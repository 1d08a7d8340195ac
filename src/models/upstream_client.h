// aifn::models::UpstreamClient — the HTTP/1.1 client the `openai` provider
// uses to reach model upstreams (DESIGN.md §8). http and https (OpenSSL: the
// system trust store, or `ca_file` for a private CA; peer and host name
// verified, SNI sent); connections pooled per scheme+host+port and kept alive
// (a bounded number idle per host, closed after `pool_idle`); a pooled
// connection the server had already closed is retried once on a fresh one.
// Deadlines: connect (resolve + TCP + TLS), first byte (the response head),
// idle (between two body reads). Connect errors, 429 and 5xx are retried up to
// `max_attempts` with exponential backoff and full jitter (429 and 503:
// Retry-After is honoured up to `retry_after_cap`; a longer one is not waited
// for) — only while nothing has been handed to the caller.
//
// Transport failures come back as aifn::Error (`unavailable` for connect
// errors, `timeout` for deadlines, `upstream_error` for a broken answer) whose
// messages name the host and never a header: request headers carry the
// provider key and are never logged or echoed. HTTP statuses, also 4xx/5xx,
// come back as an UpstreamResponse for the caller to map.
//
// Thread-safety: the pool is guarded by a mutex; each request runs on the
// caller's executor. Coroutine parameters are references (GCC PR 99576).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "base/error.h"
#include "base/units.h"

namespace aifn::models {

struct UpstreamOptions {
  Millis connect_timeout{10'000};     // resolve + TCP connect + TLS handshake
  Millis first_byte_timeout{60'000};  // request written → response head read
  Millis idle_timeout{60'000};        // longest silence between body bytes
  int max_attempts = 3;               // tries per request (1 = no retry)
  Millis backoff_base{250};           // attempt n waits rand(0, min(max, base·2ⁿ⁻¹))
  Millis backoff_max{5'000};
  Millis retry_after_cap{10'000};     // a longer 429 Retry-After ends the retries
  std::size_t max_idle_per_host = 16;
  Millis pool_idle{60'000};           // idle pooled connections older than this are closed
  std::uint64_t max_body = 64ull << 20;   // whole (non-streamed) answers and error bodies
  std::string ca_file;                // PEM bundle; empty = the system trust store
};

struct UpstreamRequest {
  std::string method = "GET";
  std::string url;   // http(s)://host[:port]/path
  std::string body;  // sent with Content-Type: application/json when non-empty
  // Extra headers (Authorization lives here): never logged, never in an error.
  std::vector<std::pair<std::string, std::string>> headers;
  // Overrides UpstreamOptions::max_attempts for this request (e.g. 1 for a
  // model listing that should not hold /v1/models up while an upstream is down).
  std::optional<int> max_attempts;
};

struct UpstreamResponse {
  int status = 0;
  std::string content_type;
  std::string body;  // whole answer; for stream(): only a non-2xx answer's body
  std::optional<int> retry_after_seconds;
  bool stopped = false;  // stream(): the body sink returned false, connection closed
};

// Receives a streamed body piece by piece as it arrives; false = stop reading
// (the connection is closed, never pooled).
using BodySink = std::function<boost::asio::awaitable<bool>(std::string_view)>;

// Counters for tests and metrics.
struct UpstreamStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t connections_reused = 0;
  std::uint64_t retries = 0;
  std::uint64_t stale_retries = 0;
};

class UpstreamClient {
 public:
  // Fails (bad_request) when ca_file cannot be read as PEM certificates.
  static Expected<std::shared_ptr<UpstreamClient>> create(boost::asio::any_io_executor ex, UpstreamOptions opts);
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // The whole answer, at most max_body bytes (else upstream_error).
  boost::asio::awaitable<Expected<UpstreamResponse>> fetch(const UpstreamRequest& req);
  // A 2xx body goes to `sink` as it arrives (response.body stays empty); any
  // other status is read whole into response.body and the sink is not called.
  // Once the sink has been called, a failure is final (no retry).
  boost::asio::awaitable<Expected<UpstreamResponse>> stream(const UpstreamRequest& req, const BodySink& sink);

  UpstreamStats stats() const;
  const UpstreamOptions& options() const;

  struct Impl;

 private:
  explicit UpstreamClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Retry-After as seconds (delta-seconds or an HTTP date), if parseable.
std::optional<int> parse_retry_after(std::string_view value);

}  // namespace aifn::models
