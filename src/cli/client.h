// aifn::cli client helpers: how the client verbs reach a server (--server /
// AIFN_SERVER, AIFN_KEY as a bearer key) and report its errors.
#pragma once

#include <string>

#include "base/error.h"
#include "http/client.h"

namespace aifn::cli {

struct ClientOptions {
  std::string server;
  std::string key;
};

http::ClientRequest request(const ClientOptions& c, std::string method, const std::string& path);

// Prints a transport failure or the server's error body on stderr and
// returns the exit code (0 = success, 1 = the server refused, 2 = no answer).
int report(const Expected<http::ClientResponse>& r);

}  // namespace aifn::cli
