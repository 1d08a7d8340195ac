// libFuzzer target for the HTTP request path: bytes from a client go through
// the same Beast parser settings the server uses (header limit, body limit,
// chunked bodies read piece by piece) and the host:port splitter.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/beast/http.hpp>

#include "http/server.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace bhttp = boost::beast::http;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  bhttp::request_parser<bhttp::string_body> p;
  p.header_limit(16 * 1024);
  p.body_limit(64 * 1024);
  p.eager(false);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (used < in.size() && !p.is_done()) {
    auto n = p.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
    if (ec == bhttp::error::need_more) break;
    if (ec) return 0;
    if (n == 0) break;
    used += n;
    if (p.is_header_done()) {
      (void)p.get().target();
      (void)p.content_length();
      p.get().body().clear();  // as read_body_some does between pieces
    }
  }
  (void)aifn::http::split_host_port(in.substr(0, 64));
  return 0;
}
