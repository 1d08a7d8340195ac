#include "runtime/error_report.h"

#include <openssl/evp.h>

#include <boost/json/parse.hpp>

namespace aifn::runtime {

ErrorReport parse_error_report(std::string_view body, std::string_view header_type) {
  ErrorReport r{std::string(header_type), {}};
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);  // Boost.JSON's default depth limit (32) bounds nesting
  if (ec || !v.is_object()) return r;
  if (auto* t = v.get_object().if_contains("errorType"); t && t->is_string()) r.type = std::string(t->get_string());
  if (auto* m = v.get_object().if_contains("errorMessage"); m && m->is_string())
    r.message = std::string(m->get_string());
  return r;
}

std::string decode_error_trailer(std::string_view v) {
  if (v.empty() || v.front() == '{' || v.size() % 4 != 0) return std::string(v);
  std::string out(v.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(v.data()), static_cast<int>(v.size()));
  if (n < 0) return std::string(v);
  out.resize(static_cast<std::size_t>(n));
  // EVP_DecodeBlock counts padding as zero bytes.
  for (std::size_t pad = v.size() - v.find_last_not_of('=') - 1; pad > 0 && !out.empty(); --pad) out.pop_back();
  return out;
}

}  // namespace aifn::runtime
