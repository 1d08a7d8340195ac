// Test helper: a small HTTP/1.1 upstream over plain TCP or TLS (Beast +
// asio::ssl) on 127.0.0.1, on its own io thread. A handler sees each request
// and writes its answer as raw bytes (so tests control chunk boundaries,
// pauses, broken answers); connections are kept alive unless the handler says
// close. Counts accepted connections (keep-alive tests). Used by unit tests
// and bench/upstream_bench.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>

#include "models/upstream_test_certs.h"

namespace aifn::models::testing {

namespace net = boost::asio;

class TestExchange {
 public:
  boost::beast::http::request<boost::beast::http::string_body> request;
  // Writes raw bytes to the client; false once the client is gone.
  std::function<net::awaitable<bool>(std::string_view)> write;
  bool close = false;  // close the connection after this answer
  // Waits `ms` on the server's io thread.
  net::awaitable<void> sleep(int ms);
};

using TestHandler = std::function<net::awaitable<void>(TestExchange&)>;

class TestServer {
 public:
  // tls: serve with this certificate chain and key; nullopt = plain http.
  TestServer(TestHandler handler, std::optional<Pem> tls = std::nullopt);
  ~TestServer();
  int port() const { return port_; }
  std::string url(const std::string& host = "127.0.0.1") const;
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  // Closes every open connection (idle keep-alive ones included).
  void drop_connections();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::optional<Pem> tls_;
};

// Raw answers.
std::string response(int status, std::string_view content_type, std::string_view body,
                     const std::map<std::string, std::string>& headers = {});
std::string chunked_head(int status, std::string_view content_type);
std::string chunk(std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace aifn::models::testing
