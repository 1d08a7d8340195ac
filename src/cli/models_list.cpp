#include "cli/models_list.h"

#include <iostream>
#include <string_view>

#include <boost/json.hpp>

namespace aifn::cli {

int list_models(const ClientOptions& client) {
  auto res = http::fetch(request(client, "GET", "/v1/models"));
  if (int rc = report(res)) return rc;
  boost::system::error_code ec;
  auto v = boost::json::parse(res->body, ec);
  const boost::json::array* data = nullptr;
  if (!ec && v.is_object())
    if (auto* d = v.as_object().if_contains("data")) data = d->if_array();
  if (data == nullptr) {
    std::cerr << "aifn models: the server's /v1/models answer has no \"data\" list\n";
    return 1;
  }
  for (auto& m : *data)
    if (auto* id = m.is_object() ? m.as_object().if_contains("id") : nullptr; id && id->is_string())
      std::cout << std::string_view(id->get_string()) << "\n";
  return 0;
}

}  // namespace aifn::cli
