#include "http/server.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "http/client.h"

namespace aifn::http {
namespace {

// Runs a Server on its own io thread with a handler that echoes or streams.
class ServerFixture : public ::testing::Test {
 protected:
  void start(ServerOptions opts) {
    server_ = std::make_unique<Server>(io_, opts, [this](Exchange& ex) -> net::awaitable<void> {
      ex.request_id = "req-1";
      if (ex.field("X-Hold") == "1") ex.hold_for_next();
      if (ex.path() == "/echo") {
        auto body = co_await ex.read_body(1024);
        if (!body) {
          co_await ex.respond_error(body.error());
          co_return;
        }
        co_await ex.respond(200, "text/plain", *body);
      } else if (ex.path() == "/stream") {
        StreamHead head{bhttp::status::ok, 11};
        head.set(bhttp::field::content_type, "text/plain");
        co_await ex.start_stream(head);
        for (int i = 0; i < 3; ++i) co_await ex.write_chunk("chunk" + std::to_string(i) + ";");
        co_await ex.end_stream();
      } else if (ex.path() == "/pieces") {
        std::string all;
        for (;;) {
          auto p = co_await ex.read_body_some(1 << 20);
          if (!p || !*p) break;
          all += **p;
        }
        all += "|trailer=" + std::string(ex.field("X-Trailer"));
        co_await ex.respond(200, "text/plain", all);
      } else if (ex.path() == "/slow") {
        if (ex.field("X-Release") == "1" && ex.holding()) co_await ex.release_held();
        net::steady_timer t(io_, std::chrono::milliseconds(1500));
        co_await t.async_wait(net::use_awaitable);
        co_await ex.respond(200, "text/plain", "slow");
      } else if (ex.path() == "/watch") {
        // Waits up to 1.5 s, or until the client is seen leaving.
        net::steady_timer t(io_, std::chrono::milliseconds(1500));
        ex.watch_disconnect([this, &t] {
          left_at_ = std::chrono::steady_clock::now().time_since_epoch().count();
          t.cancel();
        });
        boost::system::error_code ec;
        co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        co_await ex.respond(200, "text/plain", "watched");
      } else {
        co_await ex.respond_error(Error(ErrorType::not_found, "no route"));
      }
    });
    ASSERT_TRUE(server_->listen("127.0.0.1", 0));
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    net::post(io_, [this] { server_->stop(); server_->close_all(); });
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(server_->port()) + path; }

  // A blocking socket on `cio`, connected to the server, that has sent `out`.
  tcp::socket connect_and_send(net::io_context& cio, const std::string& out) {
    tcp::socket s(cio);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    net::write(s, net::buffer(out));
    return s;
  }

  // Raw exchange over one socket: writes `out`, reads until EOF or timeout.
  std::string raw(const std::string& out, std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    net::io_context cio;
    auto s = connect_and_send(cio, out);
    std::string in;
    boost::system::error_code ec;
    auto until = std::chrono::steady_clock::now() + wait;
    s.non_blocking(true);
    while (std::chrono::steady_clock::now() < until) {
      char buf[4096];
      size_t n = s.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (ec) break;
      in.append(buf, n);
    }
    return in;
  }

  // The body of a single answer, checked against its Content-Length.
  static std::string body_of(const std::string& answer) {
    auto end = answer.find("\r\n\r\n");
    auto at = answer.find("Content-Length: ");
    EXPECT_NE(end, std::string::npos) << answer;
    EXPECT_LT(at, end) << answer;
    if (end == std::string::npos || at >= end) return {};
    std::string body = answer.substr(end + 4);
    EXPECT_EQ(std::stoul(answer.substr(at + 16)), body.size()) << answer;
    return body;
  }

  // /watch's client closed at `closed`: the handler must learn of it soon after.
  void expect_seen_leaving(std::chrono::steady_clock::time_point closed) {
    while (left_at_ == 0 && std::chrono::steady_clock::now() - closed < std::chrono::seconds(2))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_NE(left_at_, 0);
    auto seen = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(left_at_.load()));
    EXPECT_LT(seen - closed, std::chrono::milliseconds(200));
  }

  std::atomic<std::chrono::steady_clock::rep> left_at_{0};  // /watch: when its client was seen leaving
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ServerFixture, EchoesBodyAndCarriesRequestId) {
  start({});
  auto r = fetch({.method = "POST", .url = url("/echo"), .body = "hello"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("x-request-id"), "req-1");
}

TEST_F(ServerFixture, KeepAliveServesSeveralRequestsOnOneConnection) {
  start({});
  std::string two =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb";
  auto in = raw(two);
  EXPECT_NE(in.find("\r\n\r\na"), std::string::npos);
  EXPECT_NE(in.find("\r\n\r\nb"), std::string::npos);
}

// respond() writes the head itself: status line, every field, Content-Length.
TEST_F(ServerFixture, WholeResponseHeadIsWellFormed) {
  start({});
  auto in = raw("POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(in.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << in;
  EXPECT_NE(in.find("\r\nContent-Type: text/plain\r\n"), std::string::npos) << in;
  EXPECT_NE(in.find("\r\nX-Request-Id: req-1\r\n"), std::string::npos) << in;
  EXPECT_NE(in.find("\r\nContent-Length: 2\r\n\r\nhi"), std::string::npos) << in;
  in = raw("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(in.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << in;
  EXPECT_NE(in.find("\r\nConnection: close\r\n"), std::string::npos) << in;
  auto body = in.substr(in.find("\r\n\r\n") + 4);
  auto cl = in.find("Content-Length: ");
  ASSERT_NE(cl, std::string::npos) << in;
  EXPECT_EQ(std::to_string(body.size()), in.substr(cl + 16, in.find("\r\n", cl) - cl - 16)) << in;
}

TEST_F(ServerFixture, OversizedContentLengthGets413BeforeTheBodyIsSent) {
  start({});
  // Only the header is sent: the answer must come without waiting for 5000 bytes.
  auto in = raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", std::chrono::milliseconds(1000));
  EXPECT_EQ(in.rfind("HTTP/1.1 413", 0), 0u) << in;
  EXPECT_NE(in.find("payload_too_large"), std::string::npos);
}

TEST_F(ServerFixture, ChunkedBodyOverTheLimitGets413) {
  start({});
  std::string chunk(900, 'x');
  std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 2; ++i) req += "384\r\n" + chunk + "\r\n";
  req += "0\r\n\r\n";
  auto in = raw(req);
  EXPECT_EQ(in.rfind("HTTP/1.1 413", 0), 0u) << in;
}

TEST_F(ServerFixture, OversizedHeaderGets431AndClose) {
  ServerOptions o;
  o.max_header = 1024;
  start(o);
  auto in = raw("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(in.rfind("HTTP/1.1 431", 0), 0u) << in;
  EXPECT_EQ(body_of(in), R"({"error":{"type":"bad_request","message":"request header is larger than the server's limit"}})");
}

TEST_F(ServerFixture, MalformedRequestGets400) {
  start({});
  auto in = raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(in.rfind("HTTP/1.1 400", 0), 0u) << in;
  EXPECT_EQ(body_of(in), R"({"error":{"type":"bad_request","message":"malformed HTTP request"}})");
}

TEST_F(ServerFixture, SlowLorisClientIsCutOff) {
  ServerOptions o;
  o.read_timeout = Millis(200);
  o.idle_timeout = Millis(200);
  start(o);
  net::io_context cio;
  tcp::socket s(cio);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  net::write(s, net::buffer(std::string("GET /echo HTTP/1.1\r\nHo")));
  auto t0 = std::chrono::steady_clock::now();
  char buf[16];
  boost::system::error_code ec;
  s.read_some(net::buffer(buf), ec);  // blocks until the server closes
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(ec);
  EXPECT_LT(waited, std::chrono::seconds(3));
}

TEST_F(ServerFixture, StreamsChunks) {
  start({});
  std::vector<std::string> pieces;
  auto r = fetch({.url = url("/stream"), .on_data = [&](std::string_view d) { pieces.emplace_back(d); }});
  ASSERT_TRUE(r);
  std::string all;
  for (auto& p : pieces) all += p;
  EXPECT_EQ(all, "chunk0;chunk1;chunk2;");
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
}

TEST_F(ServerFixture, ReadsChunkedBodyPieceByPieceWithTrailers) {
  start({});
  auto in = raw(
      "POST /pieces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n"
      "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: yes\r\n\r\n");
  EXPECT_NE(in.find("abcde|trailer=yes"), std::string::npos) << in;
}

// Reads from `s` until `until` holds or 5 s pass; records when each answer
// body (`bodies`, in order) first showed up, measured from `t0`.
std::vector<std::chrono::milliseconds> arrival_times(tcp::socket& s, std::chrono::steady_clock::time_point t0,
                                                     const std::vector<std::string>& bodies, std::string& in) {
  std::vector<std::chrono::milliseconds> at(bodies.size(), std::chrono::milliseconds(-1));
  auto all_seen = [&] { return std::none_of(at.begin(), at.end(), [](auto t) { return t.count() < 0; }); };
  while (!all_seen() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    char buf[4096];
    boost::system::error_code ec;
    size_t n = s.read_some(net::buffer(buf), ec);
    if (ec) break;
    in.append(buf, n);
    for (size_t i = 0; i < bodies.size(); ++i)
      if (at[i].count() < 0 && in.find("\r\n\r\n" + bodies[i]) != std::string::npos)
        at[i] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }
  return at;
}

// A Runtime API client pipelines GET /next behind POST /response: the answer
// held for the next one (hold_for_next) leaves with it, in order.
TEST_F(ServerFixture, HeldPipelinedAnswerLeavesWithTheNextOne) {
  start({});
  net::io_context cio;
  auto t0 = std::chrono::steady_clock::now();
  auto s = connect_and_send(cio, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Hold: 1\r\nContent-Length: 1\r\n\r\na"
                                 "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string in;
  auto at = arrival_times(s, t0, {"a", "slow"}, in);
  ASSERT_GE(at[0].count(), 0) << in;
  ASSERT_GE(at[1].count(), 0) << in;
  EXPECT_GE(at[0], std::chrono::milliseconds(1400)) << "held until the next answer";
  EXPECT_LT(in.find("\r\n\r\na"), in.find("\r\n\r\nslow"));
}

// A handler about to wait on something else calls release_held(): the held
// answer goes at once (the Runtime API's /next with no event queued).
TEST_F(ServerFixture, ReleaseHeldSendsTheHeldAnswerBeforeAWait) {
  start({});
  net::io_context cio;
  auto t0 = std::chrono::steady_clock::now();
  auto s = connect_and_send(cio, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Hold: 1\r\nContent-Length: 1\r\n\r\na"
                                 "GET /slow HTTP/1.1\r\nHost: x\r\nX-Release: 1\r\n\r\n");
  std::string in;
  auto at = arrival_times(s, t0, {"a", "slow"}, in);
  ASSERT_GE(at[0].count(), 0) << in;
  ASSERT_GE(at[1].count(), 0) << in;
  EXPECT_LT(at[0], std::chrono::milliseconds(1000));
  EXPECT_GE(at[1], std::chrono::milliseconds(1400));
}

// Only part of the next request has arrived: the server must wait for the
// client, so the held answer goes before that read (the client may be
// waiting for it before it sends the rest).
TEST_F(ServerFixture, HeldAnswerIsSentBeforeABlockingRead) {
  start({});
  net::io_context cio;
  auto t0 = std::chrono::steady_clock::now();
  auto s = connect_and_send(cio, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Hold: 1\r\nContent-Length: 1\r\n\r\na"
                                 "POST /echo HTTP/1.1\r\nHo");
  std::string in;
  auto first = arrival_times(s, t0, {"a"}, in);
  ASSERT_GE(first[0].count(), 0) << in;
  EXPECT_LT(first[0], std::chrono::milliseconds(1000));
  net::write(s, net::buffer(std::string("st: x\r\nContent-Length: 1\r\n\r\nb")));
  auto second = arrival_times(s, t0, {"b"}, in);
  EXPECT_GE(second[0].count(), 0) << in;
}

// The watch starts at the server's next 10 ms sweep (short calls pay
// nothing for it), yet a client that leaves is noticed within milliseconds.
TEST_F(ServerFixture, ClientLeavingMidCallIsNoticed) {
  start({});
  net::io_context cio;
  auto s = connect_and_send(cio, "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // past the 10 ms delay
  s.close();
  expect_seen_leaving(std::chrono::steady_clock::now());
}

TEST_F(ServerFixture, ClientLeavingAtOnceIsNoticed) {
  start({});
  {
    net::io_context cio;
    auto s = connect_and_send(cio, "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
  }  // closed before the watch is armed
  expect_seen_leaving(std::chrono::steady_clock::now());
}

// A call that stays with its client answers normally, watch or not.
TEST_F(ServerFixture, WatchedCallThatStaysIsAnswered) {
  start({});
  auto answer = raw("GET /watch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", std::chrono::milliseconds(3000));
  EXPECT_EQ(body_of(answer), "watched");
  EXPECT_EQ(left_at_, 0);
}

TEST(SplitHostPort, ParsesAndRejects) {
  auto hp = split_host_port("127.0.0.1:8080");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->first, "127.0.0.1");
  EXPECT_EQ(hp->second, 8080);
  EXPECT_FALSE(split_host_port("nope"));
  EXPECT_FALSE(split_host_port("h:99999"));
}

}  // namespace
}  // namespace aifn::http
