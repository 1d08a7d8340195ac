#include "models/upstream_test_server.h"

#include <future>
#include <mutex>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <fmt/format.h>

namespace aifn::models::testing {

namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);

// Declared so that the io_context (and with it every suspended session
// coroutine) goes before what those coroutines use.
struct TestServer::Impl {
  TestHandler handler;
  ssl::context tls_ctx{ssl::context::tls_server};
  std::mutex mu;
  std::set<tcp::socket*> open;  // live connections, closed by drop_connections()
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
};

net::awaitable<void> TestExchange::sleep(int ms) {
  net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(kNoThrow);
}

namespace {

template <class Stream>
net::awaitable<void> serve(Stream& s, TestServer::Impl& impl, std::atomic<int>& requests) {
  beast::flat_buffer buf;
  for (;;) {
    TestExchange ex;
    auto [ec, n] = co_await bhttp::async_read(s, buf, ex.request, kNoThrow);
    if (ec) co_return;
    requests.fetch_add(1);
    ex.write = [&s](std::string_view data) -> net::awaitable<bool> {
      auto [wec, wn] = co_await net::async_write(s, net::buffer(data.data(), data.size()), kNoThrow);
      co_return !wec;
    };
    co_await impl.handler(ex);
    if (ex.close) co_return;
  }
}

// Owns `owned` (a raw pointer: by-value class arguments trip GCC PR 99576).
net::awaitable<void> session(tcp::socket* owned, TestServer::Impl& impl, bool tls, std::atomic<int>& requests) {
  std::unique_ptr<tcp::socket> holder(owned);
  tcp::socket& sock = *owned;
  tcp::socket* raw = owned;
  {
    std::lock_guard lock(impl.mu);
    impl.open.insert(raw);
  }
  if (tls) {
    ssl::stream<tcp::socket&> s(sock, impl.tls_ctx);
    auto [ec] = co_await s.async_handshake(ssl::stream_base::server, kNoThrow);
    if (!ec) co_await serve(s, impl, requests);
  } else {
    co_await serve(sock, impl, requests);
  }
  std::lock_guard lock(impl.mu);
  impl.open.erase(raw);
  boost::system::error_code ec;
  sock.close(ec);
}

net::awaitable<void> accept_loop(TestServer::Impl& impl, bool tls, std::atomic<int>& conns, std::atomic<int>& requests) {
  for (;;) {
    auto [ec, sock] = co_await impl.acceptor.async_accept(kNoThrow);
    if (ec) co_return;
    conns.fetch_add(1);
    net::co_spawn(impl.io, session(new tcp::socket(std::move(sock)), impl, tls, requests), net::detached);
  }
}

}  // namespace

TestServer::TestServer(TestHandler handler, std::optional<Pem> tls) : impl_(std::make_unique<Impl>()), tls_(tls) {
  impl_->handler = std::move(handler);
  if (tls) {
    impl_->tls_ctx.use_certificate_chain(net::buffer(tls->cert));
    impl_->tls_ctx.use_private_key(net::buffer(tls->key), ssl::context::pem);
  }
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  net::co_spawn(impl_->io, accept_loop(*impl_, tls.has_value(), connections_, requests_), net::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TestServer::~TestServer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string TestServer::url(const std::string& host) const {
  return fmt::format("{}://{}:{}", tls_ ? "https" : "http", host, port_);
}

void TestServer::drop_connections() {
  std::promise<void> done;
  net::post(impl_->io, [&] {
    std::lock_guard lock(impl_->mu);
    for (auto* s : impl_->open) {
      boost::system::error_code ec;
      s->shutdown(tcp::socket::shutdown_both, ec);
      s->close(ec);
    }
    done.set_value();
  });
  done.get_future().wait();
}

std::string response(int status, std::string_view content_type, std::string_view body,
                     const std::map<std::string, std::string>& headers) {
  std::string out = fmt::format("HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n", status, content_type,
                                body.size());
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  out += body;
  return out;
}

std::string chunked_head(int status, std::string_view content_type) {
  return fmt::format("HTTP/1.1 {} X\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n", status, content_type);
}

std::string chunk(std::string_view data) { return fmt::format("{:x}\r\n{}\r\n", data.size(), data); }

}  // namespace aifn::models::testing
