// aifn::http::Server — HTTP/1.1 server on Boost.Asio + Beast with C++20
// coroutines. Used for the public API and for every instance's Runtime API
// endpoint. A handler receives an Exchange once the request *header* is read,
// so it can route, check limits and answer 413 before any body byte is read;
// it then reads the body whole (bounded) or piece by piece, and answers with a
// whole response or a chunked stream. Keep-alive, header-size limit, a read
// deadline for headers and bodies (slow or silent clients are cut off), and a
// graceful stop (idle connections closed, requests in flight finish) are
// handled here, not by handlers.
//
// Thread-safety: a Server and its Exchanges live on one io_context run by one
// thread; call every method from that thread.
//
// Coroutine rule for the whole code base: g++ 12.2 destroys a by-value
// coroutine argument built from a temporary twice (GCC PR 99576), so
// coroutine parameters are references, views or trivially copyable values.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

#include "base/error.h"
#include "base/units.h"

namespace aifn::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

using Response = bhttp::response<bhttp::string_body>;
using StreamHead = bhttp::response<bhttp::empty_body>;

struct ServerOptions {
  std::uint64_t max_header = 16 * 1024;
  // A request's header, and then its body, must each arrive within this.
  Millis read_timeout{30'000};
  // A keep-alive connection with no request for this long is closed.
  Millis idle_timeout{60'000};
  // A response write (or one chunk of a stream) must complete within this.
  Millis write_timeout{30'000};
  std::string server_name = "aifn";
};

class Connection;

// One request and its response. Valid until the handler's coroutine returns.
class Exchange {
 public:
  explicit Exchange(Connection& c) : conn_(c) {}
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const bhttp::request_header<>& header() const;
  bhttp::verb method() const { return header().method(); }
  std::string_view target() const { return header().target(); }
  // The target without its query string, and the query string (no '?').
  std::string_view path() const;
  std::string_view query() const;
  std::string_view field(std::string_view name) const;
  // Content-Length when the client sent one.
  std::optional<std::uint64_t> content_length() const;

  // Reads the whole body. payload_too_large when Content-Length says more
  // than `limit` (answered before reading a byte) or a chunked body grows
  // past it; bad_request on a malformed body or a read deadline.
  net::awaitable<Expected<std::string>> read_body(std::uint64_t limit);
  // Reads the next piece of the body as it arrives; an empty optional once
  // the body is complete. Trailer fields are merged into header() then.
  net::awaitable<Expected<std::optional<std::string>>> read_body_some(std::uint64_t limit);
  bool body_done() const;

  // Whole response. Adds Server, Date-less; keep-alive as the request asked,
  // and X-Request-Id when request_id is set. Returns false when the client is gone.
  net::awaitable<bool> respond(Response& res);
  net::awaitable<bool> respond(unsigned status, std::string_view content_type, std::string_view body);
  net::awaitable<bool> respond_error(const Error& e);

  // Chunked stream: head (status, content type, headers) first, then chunks.
  net::awaitable<bool> start_stream(StreamHead& head);
  net::awaitable<bool> write_chunk(std::string_view data);
  net::awaitable<bool> end_stream();
  bool responded() const { return responded_; }
  // If the client has already sent its next request (HTTP/1.1 pipelining),
  // the next respond() is held back and leaves with the answer after it, in
  // the same write: one send and one wake-up of the client instead of two.
  // For answers the client does not wait on, when the next one is expected
  // soon (a Runtime API 202 while the function is busy). A held answer is
  // sent before anything could wait on it: a read that would block, a stream,
  // or release_held().
  void hold_for_next() { hold_for_next_ = true; }
  // Whether an answer is held, and sending it now: call before waiting on
  // something other than this connection (the Runtime API's /next waiting
  // for an event). REQUIRES for release_held(): holding().
  bool holding() const;
  net::awaitable<void> release_held();
  bool streaming() const { return streaming_; }

  // Calls `on_gone` once if the client closes its connection while the
  // handler is still working (mid-call disconnect). The socket is watched
  // from the server's next sweep (every 10 ms) on: a call that ends sooner
  // costs nothing, and a client that leaves is noticed at most about 10 ms
  // late. Safe to call once.
  void watch_disconnect(std::function<void()> on_gone);
  bool client_gone() const;

  // Set by the handler; added as X-Request-Id to every response.
  std::string request_id;
  // Set by the handler's authentication: the API key id the request came
  // with ("" when anonymous or on an open server), for usage records.
  std::string key_id;
  // The connection is closed after this exchange (e.g. the body was not read).
  void close_after() { close_after_ = true; }

  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();

 private:
  friend class Connection;
  template <class Msg>
  void prepare_head(Msg& m);
  template <class WriteOp>
  net::awaitable<bool> timed_write(WriteOp&& op);
  Connection& conn_;
  bool responded_ = false;
  bool streaming_ = false;
  bool close_after_ = false;
  bool hold_for_next_ = false;
};

using Handler = std::function<net::awaitable<void>(Exchange&)>;

class Server {
 public:
  Server(net::io_context& io, ServerOptions opts, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. port 0 picks a free port.
  Expected<void> listen(const std::string& host, std::uint16_t port);
  // Adopts a socket already bound and listening (e.g. opened inside another
  // network namespace) and starts accepting on it.
  Expected<void> listen_fd(int fd);
  std::uint16_t port() const;
  // Stops accepting, closes idle connections; requests in flight finish and
  // their connections close after answering.
  void stop();
  // Closes every connection now (end of a grace period).
  void close_all();
  std::size_t active_requests() const;
  std::size_t open_connections() const;

  struct State;

 private:
  void accept_loop();
  std::shared_ptr<State> state_;
};

// "host:port" -> (host, port). Expected because it parses user input.
Expected<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view s);

}  // namespace aifn::http
