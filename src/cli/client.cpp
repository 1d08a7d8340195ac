#include "cli/client.h"

#include <iostream>

#include <boost/json.hpp>

namespace aifn::cli {

http::ClientRequest request(const ClientOptions& c, std::string method, const std::string& path) {
  http::ClientRequest r;
  r.method = std::move(method);
  r.url = c.server + path;
  if (!c.key.empty()) r.headers["Authorization"] = "Bearer " + c.key;
  return r;
}

int report(const Expected<http::ClientResponse>& r) {
  if (!r) {
    std::cerr << "aifn: " << r.error().message << "\n";
    return 2;
  }
  if (r->status >= 400) {
    boost::system::error_code ec;
    auto v = boost::json::parse(r->body, ec);
    if (!ec && v.is_object() && v.as_object().contains("error")) {
      auto& e = v.as_object().at("error").as_object();
      std::cerr << "aifn: " << r->status << " " << boost::json::value_to<std::string>(e.at("type")) << ": "
                << boost::json::value_to<std::string>(e.at("message")) << "\n";
      if (auto* d = e.if_contains("details"))
        for (auto& x : d->as_array())
          std::cerr << "  " << boost::json::value_to<std::string>(x.at("path")) << ": "
                    << boost::json::value_to<std::string>(x.at("message")) << "\n";
    } else {
      std::cerr << "aifn: HTTP " << r->status << "\n" << r->body << "\n";
    }
    return 1;
  }
  return 0;
}

}  // namespace aifn::cli
