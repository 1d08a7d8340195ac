// Internal to aifn_cli: what every client verb shares — the server and key
// to use, a request builder, and one way to print a server's error.
#pragma once

#include <string>

#include "http/client.h"

namespace aifn::cli {

struct ClientOptions {
  std::string server;
  std::string key;
};

http::ClientRequest request(const ClientOptions& c, std::string method, const std::string& path);

// Prints the server's error body in one line and returns the exit code
// (0 success, 1 an error answer, 2 no answer).
int report(const Expected<http::ClientResponse>& r);

}  // namespace aifn::cli
