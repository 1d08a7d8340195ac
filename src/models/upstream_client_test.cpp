#include "models/upstream_client.h"

#include <atomic>
#include <chrono>
#include <future>

#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include "models/upstream_test_server.h"
#include "models/upstream_test_util.h"

namespace aifn::models {
namespace {

namespace net = boost::asio;
using namespace testing;
using Result = Expected<UpstreamResponse>;

// One CA for the whole suite (key generation is the slow part).
const Pem& test_ca() {
  static const Pem ca = make_ca("aifn test CA");
  return ca;
}
const TempPemFile& test_ca_file() {
  static const TempPemFile f(test_ca().cert);
  return f;
}

TestHandler answer(int status, std::string body, std::map<std::string, std::string> headers = {}) {
  return [=](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.write(response(status, "application/json", body, headers));
  };
}

class UpstreamClientTest : public ::testing::Test {
 protected:
  net::io_context io;

  std::shared_ptr<UpstreamClient> make_client(UpstreamOptions o = fast_options()) {
    auto c = UpstreamClient::create(io.get_executor(), std::move(o));
    EXPECT_TRUE(c.has_value()) << c.error().message;
    return *c;
  }
  Result fetch(UpstreamClient& c, const std::string& url) {
    UpstreamRequest req;
    req.url = url;
    return run_on<Result>(io, [&]() { return c.fetch(req); });
  }
  Result stream(UpstreamClient& c, const std::string& url, const BodySink& sink) {
    UpstreamRequest req;
    req.method = "POST";
    req.url = url;
    req.body = "{}";
    return run_on<Result>(io, [&]() { return c.stream(req, sink); });
  }
  UpstreamOptions with_ca() {
    auto o = fast_options();
    o.ca_file = test_ca_file().path();
    return o;
  }
};

TEST_F(UpstreamClientTest, TlsVerifiedAgainstPrivateCa) {
  TestServer server(answer(200, R"({"ok":true})"), make_server_cert(test_ca(), {"localhost"}));
  auto client = make_client(with_ca());
  auto r = fetch(*client, server.url("localhost") + "/v1/models");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"ok":true})");
}

TEST_F(UpstreamClientTest, CertificateFromUnknownCaRefused) {
  Pem other = make_ca("someone else's CA");
  TestServer server(answer(200, "{}"), make_server_cert(other, {"localhost"}));
  auto client = make_client(with_ca());
  auto r = fetch(*client, server.url("localhost") + "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::upstream_error);
  EXPECT_NE(r.error().message.find("localhost:" + std::to_string(server.port())), std::string::npos);
  EXPECT_NE(r.error().message.find("TLS handshake failed"), std::string::npos) << r.error().message;
  EXPECT_EQ(server.requests(), 0);
  // Nor does the system trust store know it.
  auto plain = make_client();
  EXPECT_FALSE(fetch(*plain, server.url("localhost") + "/x"));
}

TEST_F(UpstreamClientTest, HostNameMismatchRefused) {
  TestServer server(answer(200, "{}"), make_server_cert(test_ca(), {"other.example"}));
  auto client = make_client(with_ca());
  auto r = fetch(*client, server.url("localhost") + "/x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("TLS handshake failed"), std::string::npos) << r.error().message;
  EXPECT_EQ(server.requests(), 0);
  // The same certificate names 127.0.0.1: verified by IP address.
  auto ok = fetch(*client, server.url("127.0.0.1") + "/x");
  EXPECT_TRUE(ok) << ok.error().message;
}

TEST_F(UpstreamClientTest, BadCaFileIsAClearError) {
  auto c = UpstreamClient::create(io.get_executor(), [] {
    auto o = fast_options();
    o.ca_file = "/nonexistent/ca.pem";
    return o;
  }());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST_F(UpstreamClientTest, KeepAliveReusesOneConnection) {
  for (bool tls : {false, true}) {
    std::optional<Pem> cert;
    if (tls) cert = make_server_cert(test_ca(), {"localhost"});
    TestServer server(answer(200, "{}"), cert);
    auto client = make_client(with_ca());
    for (int i = 0; i < 5; ++i) {
      auto r = fetch(*client, server.url("localhost") + "/x");
      ASSERT_TRUE(r) << r.error().message;
    }
    EXPECT_EQ(server.requests(), 5);
    EXPECT_EQ(server.connections(), 1) << (tls ? "https" : "http");
    EXPECT_EQ(client->stats().connections_reused, 4u);
  }
}

TEST_F(UpstreamClientTest, StalePooledConnectionRetriedOnAFreshOne) {
  TestServer server(answer(200, "{}"));
  auto client = make_client();
  ASSERT_TRUE(fetch(*client, server.url() + "/x"));
  server.drop_connections();  // the upstream closes the idle keep-alive connection
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(client->stats().retries, 0u);
}

TEST_F(UpstreamClientTest, PoolBoundAndIdleExpiry) {
  TestServer server(answer(200, "{}"));
  auto o = fast_options();
  o.max_idle_per_host = 0;  // nothing kept: every request connects
  auto client = make_client(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fetch(*client, server.url() + "/x"));
  EXPECT_EQ(server.connections(), 3);

  TestServer server2(answer(200, "{}"));
  o = fast_options();
  o.pool_idle = Millis(0);  // expired at once
  auto client2 = make_client(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fetch(*client2, server2.url() + "/x"));
  EXPECT_EQ(server2.connections(), 3);
}

TEST_F(UpstreamClientTest, ConcurrentRequestsOpenConnectionsAndTheIdleBoundHolds) {
  TestServer server([](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.sleep(50);  // long enough for all six to be in flight at once
    co_await ex.write(response(200, "application/json", "{}"));
  });
  auto o = fast_options();
  o.max_idle_per_host = 3;
  auto client = make_client(o);
  UpstreamRequest req;
  req.url = server.url() + "/x";
  std::vector<std::future<Result>> calls;
  for (int i = 0; i < 6; ++i)
    calls.push_back(net::co_spawn(io, [&]() { return client->fetch(req); }, net::use_future));
  io.restart();
  io.run();
  for (auto& f : calls) EXPECT_TRUE(f.get());
  EXPECT_EQ(server.connections(), 6);
  // Three were kept: four concurrent calls now reuse them and open one more.
  calls.clear();
  for (int i = 0; i < 4; ++i)
    calls.push_back(net::co_spawn(io, [&]() { return client->fetch(req); }, net::use_future));
  io.restart();
  io.run();
  for (auto& f : calls) EXPECT_TRUE(f.get());
  EXPECT_EQ(server.connections(), 7);
  EXPECT_EQ(client->stats().connections_reused, 3u);
}

TEST_F(UpstreamClientTest, StreamedPiecesArriveBeforeTheServerFinishes) {
  std::atomic<bool> client_saw_first{false};
  std::atomic<bool> server_waited_ok{false};
  TestServer server([&](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.write(chunked_head(200, "text/event-stream") + chunk("first;"));
    // Hold the rest until the client has the first piece (or give up after 10 s).
    for (int i = 0; i < 1000 && !client_saw_first; ++i) co_await ex.sleep(10);
    server_waited_ok = client_saw_first.load();
    co_await ex.write(chunk("second;") + std::string(kLastChunk));
  });
  auto client = make_client();
  std::vector<std::string> pieces;
  BodySink sink = [&](std::string_view p) -> net::awaitable<bool> {
    pieces.emplace_back(p);
    client_saw_first = true;
    co_return true;
  };
  auto r = stream(*client, server.url() + "/s", sink);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(server_waited_ok);
  std::string all;
  for (auto& p : pieces) all += p;
  EXPECT_EQ(all, "first;second;");
  EXPECT_GE(pieces.size(), 2u);
  EXPECT_TRUE(r->body.empty());
}

TEST_F(UpstreamClientTest, SinkReturningFalseClosesTheConnection) {
  std::atomic<bool> client_gone{false};
  TestServer server([&](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.write(chunked_head(200, "text/event-stream"));
    for (int i = 0; i < 2000; ++i) {
      if (!co_await ex.write(chunk(std::string(1024, 'x')))) {
        client_gone = true;
        break;
      }
      co_await ex.sleep(5);
    }
    ex.close = true;
  });
  auto client = make_client();
  int calls = 0;
  BodySink sink = [&](std::string_view) -> net::awaitable<bool> { co_return ++calls < 2; };
  auto r = stream(*client, server.url() + "/s", sink);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(calls, 2);
  for (int i = 0; i < 1000 && !client_gone; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(client_gone);
}

TEST_F(UpstreamClientTest, ErrorStatusOfAStreamIsReadWholeNotSunk) {
  TestServer server(answer(400, R"({"error":{"message":"bad"}})"));
  auto client = make_client();
  int calls = 0;
  BodySink sink = [&](std::string_view) -> net::awaitable<bool> { co_return ++calls > 0; };
  auto r = stream(*client, server.url() + "/s", sink);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, R"({"error":{"message":"bad"}})");
  EXPECT_EQ(calls, 0);
}

TEST_F(UpstreamClientTest, ServiceUnavailableThenOkRetriesOnce) {
  std::atomic<int> n{0};
  TestServer server([&](TestExchange& ex) -> net::awaitable<void> {
    if (n++ == 0) co_await ex.write(response(503, "application/json", R"({"error":"busy"})"));
    else co_await ex.write(response(200, "application/json", "{}"));
  });
  auto client = make_client();
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(client->stats().retries, 1u);
}

TEST_F(UpstreamClientTest, RetriesStopAtMaxAttempts) {
  TestServer server(answer(502, "{}"));
  auto o = fast_options();
  o.max_attempts = 4;
  auto client = make_client(o);
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(server.requests(), 4);

  UpstreamRequest once;  // a per-request override
  once.url = server.url() + "/x";
  once.max_attempts = 1;
  auto r1 = run_on<Result>(io, [&]() { return client->fetch(once); });
  ASSERT_TRUE(r1);
  EXPECT_EQ(server.requests(), 5);
}

TEST_F(UpstreamClientTest, TooManyRequestsHonoursRetryAfter) {
  std::atomic<int> n{0};
  TestServer server([&](TestExchange& ex) -> net::awaitable<void> {
    std::map<std::string, std::string> retry_after{{"Retry-After", "1"}};  // not inside co_await: GCC 12
    if (n++ == 0) co_await ex.write(response(429, "application/json", "{}", retry_after));
    else co_await ex.write(response(200, "application/json", "{}"));
  });
  auto client = make_client();
  auto t0 = std::chrono::steady_clock::now();
  auto r = fetch(*client, server.url() + "/x");
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(waited, std::chrono::milliseconds(950));
}

TEST_F(UpstreamClientTest, RetryAfterBeyondTheCapIsNotWaitedFor) {
  TestServer server(answer(429, "{}", {{"Retry-After", "3600"}}));
  auto client = make_client();
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->retry_after_seconds, 3600);
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(UpstreamClientTest, ConnectionRefusedIsUnavailableAfterRetries) {
  int port = 0;
  {
    net::ip::tcp::acceptor a(io, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto client = make_client();
  auto r = fetch(*client, "http://127.0.0.1:" + std::to_string(port) + "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::unavailable);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << r.error().message;
  EXPECT_EQ(client->stats().retries, 2u);  // 3 attempts
}

TEST_F(UpstreamClientTest, FirstByteTimeout) {
  TestServer server([](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.sleep(3000);
    co_await ex.write(response(200, "application/json", "{}"));
  });
  auto o = fast_options();
  o.first_byte_timeout = Millis(200);
  auto client = make_client(o);
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::timeout);
  EXPECT_NE(r.error().message.find("first-byte"), std::string::npos) << r.error().message;
  EXPECT_EQ(server.requests(), 1);  // a request that may be running is not sent twice
}

TEST_F(UpstreamClientTest, IdleTimeoutBetweenBodyPieces) {
  TestServer server([](TestExchange& ex) -> net::awaitable<void> {
    co_await ex.write(chunked_head(200, "text/event-stream") + chunk("one"));
    co_await ex.sleep(3000);
    co_await ex.write(chunk("two") + std::string(kLastChunk));
  });
  auto o = fast_options();
  o.idle_timeout = Millis(200);
  auto client = make_client(o);
  std::string got;
  BodySink sink = [&](std::string_view p) -> net::awaitable<bool> {
    got += p;
    co_return true;
  };
  auto r = stream(*client, server.url() + "/s", sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::timeout);
  EXPECT_NE(r.error().message.find("idle"), std::string::npos) << r.error().message;
  EXPECT_EQ(got, "one");
}

TEST_F(UpstreamClientTest, WholeBodyIsCapped) {
  TestServer server(answer(200, std::string(1000, 'a')));
  auto o = fast_options();
  o.max_body = 100;
  auto client = make_client(o);
  auto r = fetch(*client, server.url() + "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::upstream_error);
}

TEST(RetryAfter, Parses) {
  EXPECT_EQ(parse_retry_after("5"), 5);
  EXPECT_EQ(parse_retry_after(" 12 "), 12);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), 0);  // in the past
  EXPECT_EQ(parse_retry_after("soon"), std::nullopt);
}

}  // namespace
}  // namespace aifn::models
