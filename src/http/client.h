// aifn::http client — a small blocking HTTP/1.1 client for the CLI and tests:
// one request per call, its own io_context, a deadline on the whole exchange,
// and an optional callback that receives a chunked/streamed body piece by
// piece as it arrives. Plain http only (TLS to model upstreams lives in the
// model gateway). Safe to call from any thread; no shared state.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/units.h"

namespace aifn::http {

struct ClientRequest {
  std::string method = "GET";
  std::string url;  // http://host:port/path?query
  std::string body;
  std::map<std::string, std::string> headers;
  Millis timeout{60'000};
  // When set, a successful (< 400) answer's body is handed over as it
  // arrives and not kept in body; an error answer's body is kept whole.
  std::function<void(std::string_view)> on_data;
};

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Transport failures (connect refused, deadline) are `unavailable`/`timeout`.
Expected<ClientResponse> fetch(const ClientRequest& req);

}  // namespace aifn::http
