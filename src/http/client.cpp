#include "http/client.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>

namespace aifn::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

net::awaitable<Expected<ClientResponse>> run(const ClientRequest& r, const std::string& host, const std::string& port,
                                             const std::string& target) {
  auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  beast::tcp_stream stream(ex);
  stream.expires_after(r.timeout);
  error_code ec;
  auto eps = co_await resolver.async_resolve(host, port, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return fail(ErrorType::unavailable, fmt::format("cannot resolve {}: {}", host, ec.message()));
  co_await stream.async_connect(eps, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return fail(ErrorType::unavailable, fmt::format("cannot connect to {}:{}: {}", host, port, ec.message()));

  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(r.method), target, 11};
  req.set(bhttp::field::host, host + ":" + port);
  req.set(bhttp::field::user_agent, "aifn-cli");
  for (auto& [k, v] : r.headers) req.set(k, v);
  req.body() = r.body;
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT") req.prepare_payload();
  co_await bhttp::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return fail(ErrorType::unavailable, fmt::format("cannot send the request: {}", ec.message()));

  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(boost::none);
  co_await bhttp::async_read_header(stream, buf, p, net::redirect_error(net::use_awaitable, ec));
  // Error answers are small JSON documents the caller wants whole.
  bool stream_body = r.on_data && !ec && p.get().result_int() < 400;
  while (!ec && !p.is_done()) {
    co_await bhttp::async_read_some(stream, buf, p, net::redirect_error(net::use_awaitable, ec));
    if (stream_body && !p.get().body().empty()) {
      r.on_data(p.get().body());
      p.get().body().clear();
    }
  }
  if (ec == beast::error::timeout)
    co_return fail(ErrorType::timeout, fmt::format("no complete answer within {}", format_duration(r.timeout)));
  if (ec) co_return fail(ErrorType::unavailable, fmt::format("cannot read the response: {}", ec.message()));
  ClientResponse out;
  out.status = static_cast<int>(p.get().result_int());
  for (auto& f : p.get()) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out.headers[name] = std::string(f.value());
  }
  out.body = std::move(p.get().body());
  co_return out;
}

}  // namespace

Expected<ClientResponse> fetch(const ClientRequest& r) {
  auto u = boost::urls::parse_uri(r.url);
  if (!u || u->scheme() != "http")
    return fail(ErrorType::bad_request, fmt::format("\"{}\" is not an http:// URL", r.url));
  std::string host(u->host());
  std::string port = u->has_port() ? std::string(u->port()) : "80";
  std::string target(u->encoded_target());
  if (target.empty()) target = "/";
  net::io_context io;
  Expected<ClientResponse> result = fail(ErrorType::internal, "request did not run");
  net::co_spawn(io, run(r, host, port, target), [&](std::exception_ptr e, Expected<ClientResponse> v) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        result = fail(ErrorType::internal, ex.what());
      }
    } else {
      result = std::move(v);
    }
  });
  io.run();
  return result;
}

}  // namespace aifn::http
