#include "http/server.h"

#include <sys/socket.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <unordered_set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::http {

using clock = std::chrono::steady_clock;
using net::use_awaitable;
using boost::system::error_code;

struct Server::State {
  State(net::io_context& io, ServerOptions o, Handler h)
      : io(io), opts(std::move(o)), handler(std::move(h)), acceptor(io) {}
  net::io_context& io;
  ServerOptions opts;
  Handler handler;
  tcp::acceptor acceptor;
  bool stopping = false;
  std::unordered_set<Connection*> conns;
  std::size_t active = 0;
  // Exchanges that asked to learn of a disconnect (watch_disconnect), not
  // watched yet: a sweep every kWatchDelay arms those still running.
  struct Unwatched {
    std::weak_ptr<Connection> conn;
    unsigned gen;
  };
  std::vector<Unwatched> unwatched;
  net::steady_timer sweep{io};
  bool sweep_armed = false;
};

namespace {
// A call's disconnect watch starts at the next sweep, at most this long
// after the handler asks for it. Armed at once, it cost every call an
// epoll_ctl (Asio re-arms the socket for a wait) and a cancelled completion.
// Most calls end before a sweep; a client that leaves is noticed at most
// this much later. A fixed period: a sweep per call (each one's own
// deadline) cost more than the watch.
constexpr std::chrono::milliseconds kWatchDelay{10};

// A whole answer to a request that could not be parsed, after which the
// connection closes: there is no Exchange to answer through.
std::string closing_answer(std::string_view status, const Error& e) {
  std::string body = error_body(e);
  return fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
      status, body.size(), body);
}
}  // namespace

// One accepted socket. Its deadline is enforced by a watchdog coroutine that
// closes the socket once `deadline_` passes; moving the deadline is a store,
// not a timer operation, except when it moves earlier than the armed expiry.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Server::State> s, tcp::socket sock)
      : server_(std::move(s)), sock_(std::move(sock)), timer_(sock_.get_executor()) {}

  net::awaitable<void> run();
  net::awaitable<void> watchdog();

  void set_deadline(Millis d) { set_deadline_at(clock::now() + d); }
  void set_deadline_at(clock::time_point t) {
    deadline_ = t;
    if (t < timer_.expiry()) timer_.expires_at(t);  // wakes the watchdog to re-arm earlier
  }
  void clear_deadline() { deadline_ = clock::time_point::max(); }
  // Sends what respond() held back. Called before any wait that the held
  // answer could stall (the client may be waiting on it); callers test
  // holding() first, so the common case costs no coroutine frame.
  bool holding() const { return !held_.empty(); }
  net::awaitable<void> release_held();
  void close() {
    error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    timer_.cancel();
  }

  std::shared_ptr<Server::State> server_;
  tcp::socket sock_;
  net::steady_timer timer_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  clock::time_point deadline_ = clock::time_point::max();
  bool in_request_ = false;
  bool gone_ = false;
  unsigned watch_gen_ = 0;
  bool watching_ = false;     // the handler asked (watch_disconnect) ...
  bool watch_armed_ = false;  // ... and the socket is watched (from the next sweep)
  std::function<void()> on_gone_;
  void arm_watch();
  std::string held_;  // a held answer's bytes (Exchange::hold_for_next), sent with the next write
  std::string head_;  // respond()'s serialised head, reused
};

// ---------------------------------------------------------------- Exchange

const bhttp::request_header<>& Exchange::header() const { return conn_.parser_->get().base(); }

std::string_view Exchange::path() const {
  auto t = target();
  auto q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view Exchange::query() const {
  auto t = target();
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string_view Exchange::field(std::string_view name) const {
  auto& h = header();
  auto it = h.find(name);
  return it == h.end() ? std::string_view() : std::string_view(it->value());
}

std::optional<std::uint64_t> Exchange::content_length() const {
  auto cl = conn_.parser_->content_length();
  if (cl) return *cl;
  return std::nullopt;
}

bool Exchange::body_done() const { return conn_.parser_->is_done(); }

net::awaitable<Expected<std::string>> Exchange::read_body(std::uint64_t limit) {
  auto& p = *conn_.parser_;
  if (auto cl = p.content_length(); cl && *cl > limit) {
    close_after();
    co_return fail(ErrorType::payload_too_large,
                   fmt::format("request body is {} bytes; the limit is {}", *cl, format_size(limit)));
  }
  if (p.is_done()) co_return std::move(p.get().body());
  // The client may wait for a held answer before it sends the rest.
  if (conn_.holding()) co_await conn_.release_held();
  p.body_limit(limit);
  conn_.set_deadline(conn_.server_->opts.read_timeout);
  error_code ec;
  co_await bhttp::async_read(conn_.sock_, conn_.buf_, p, net::redirect_error(use_awaitable, ec));
  conn_.clear_deadline();
  if (ec == bhttp::error::body_limit) {
    close_after();
    co_return fail(ErrorType::payload_too_large,
                   fmt::format("request body is larger than the limit of {}", format_size(limit)));
  }
  if (ec) {
    close_after();
    co_return fail(ErrorType::bad_request, fmt::format("could not read the request body: {}", ec.message()));
  }
  co_return std::move(p.get().body());
}

net::awaitable<Expected<std::optional<std::string>>> Exchange::read_body_some(std::uint64_t limit) {
  auto& p = *conn_.parser_;
  p.body_limit(limit);  // counts the whole body, not each piece
  if (conn_.holding()) co_await conn_.release_held();
  while (!p.is_done()) {
    error_code ec;
    co_await bhttp::async_read_some(conn_.sock_, conn_.buf_, p, net::redirect_error(use_awaitable, ec));
    if (ec == bhttp::error::body_limit) {
      close_after();
      co_return fail(ErrorType::payload_too_large,
                     fmt::format("request body is larger than the limit of {}", format_size(limit)));
    }
    if (ec) {
      close_after();
      co_return fail(ErrorType::bad_request, fmt::format("could not read the request body: {}", ec.message()));
    }
    auto& body = p.get().body();
    if (!body.empty()) {
      std::string piece = std::move(body);
      body.clear();
      co_return std::optional<std::string>(std::move(piece));
    }
  }
  auto& body = p.get().body();
  if (!body.empty()) {
    std::string piece = std::move(body);
    body.clear();
    co_return std::optional<std::string>(std::move(piece));
  }
  co_return std::optional<std::string>();
}

// Sets Server, X-Request-Id and keep-alive on a response head: the
// connection stays open only when the client asked, the request was read
// whole and the server is not stopping.
template <class Msg>
void Exchange::prepare_head(Msg& m) {
  bool keep = conn_.parser_->get().keep_alive() && !close_after_ && !conn_.server_->stopping &&
              conn_.parser_->is_done();
  if (!keep) close_after_ = true;
  m.set(bhttp::field::server, conn_.server_->opts.server_name);
  if (!request_id.empty()) m.set("X-Request-Id", request_id);
  m.keep_alive(keep);
  m.version(conn_.parser_->get().version());
}

// Runs one write under the write deadline; a failed write marks the client gone.
template <class WriteOp>
net::awaitable<bool> Exchange::timed_write(WriteOp&& op) {
  conn_.set_deadline(conn_.server_->opts.write_timeout);
  error_code ec;
  co_await op(net::redirect_error(use_awaitable, ec));
  conn_.clear_deadline();
  if (ec) conn_.gone_ = true;
  co_return !ec;
}

net::awaitable<bool> Exchange::respond(Response& res) {
  if (responded_ || conn_.gone_) co_return false;
  responded_ = true;
  prepare_head(res);
  res.prepare_payload();
  // Bytes already buffered past this request: the client pipelined its next one.
  const bool hold = hold_for_next_ && !close_after_ && conn_.buf_.size() > 0 && conn_.held_.empty();
  // The head is written out here, into a buffer the connection reuses, and
  // leaves with the body in one gather write: what Beast's serializer would
  // send, without its generic buffer-sequence machinery on every call.
  std::string& head = conn_.head_;
  head.clear();
  head.append(res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  const unsigned code = res.result_int() % 1000;
  head.push_back(char('0' + code / 100));
  head.push_back(char('0' + code / 10 % 10));
  head.push_back(char('0' + code % 10));
  head.push_back(' ');
  head.append(res.reason()).append("\r\n");
  for (const auto& f : res) head.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
  head.append("\r\n");
  if (hold) {
    conn_.held_.append(head).append(res.body());
    co_return true;
  }
  std::array<net::const_buffer, 3> bufs{net::buffer(conn_.held_), net::buffer(head), net::buffer(res.body())};
  bool ok = co_await timed_write([&](auto token) { return net::async_write(conn_.sock_, bufs, token); });
  conn_.held_.clear();
  co_return ok;
}

net::awaitable<bool> Exchange::respond(unsigned status, std::string_view content_type, std::string_view body) {
  Response res{static_cast<bhttp::status>(status), 11};
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
  res.body() = body;
  co_return co_await respond(res);
}

net::awaitable<bool> Exchange::respond_error(const Error& e) {
  Response res{static_cast<bhttp::status>(http_status(e.type)), 11};
  res.set(bhttp::field::content_type, "application/json");
  if (e.retry_after_seconds) res.set(bhttp::field::retry_after, std::to_string(*e.retry_after_seconds));
  res.body() = error_body(e);
  co_return co_await respond(res);
}

net::awaitable<bool> Exchange::start_stream(StreamHead& head) {
  if (responded_ || conn_.gone_) co_return false;
  responded_ = true;
  streaming_ = true;
  prepare_head(head);
  head.chunked(true);
  if (conn_.holding()) co_await conn_.release_held();
  bhttp::response_serializer<bhttp::empty_body> sr(head);
  co_return co_await timed_write([&](auto token) { return bhttp::async_write_header(conn_.sock_, sr, token); });
}

net::awaitable<bool> Exchange::write_chunk(std::string_view data) {
  if (conn_.gone_ || !streaming_) co_return false;
  if (data.empty()) co_return true;  // an empty chunk would end the stream
  if (conn_.holding()) co_await conn_.release_held();
  // Chunk framing by hand (RFC 9112 §7.1): size in hex, CRLF, data, CRLF.
  char size_line[24];
  int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  std::array<net::const_buffer, 3> bufs{net::buffer(size_line, static_cast<std::size_t>(n)),
                                        net::buffer(data.data(), data.size()), net::buffer("\r\n", 2)};
  co_return co_await timed_write([&](auto token) { return net::async_write(conn_.sock_, bufs, token); });
}

net::awaitable<bool> Exchange::end_stream() {
  if (conn_.gone_ || !streaming_) co_return false;
  if (conn_.holding()) co_await conn_.release_held();
  co_return co_await timed_write(
      [&](auto token) { return net::async_write(conn_.sock_, net::buffer("0\r\n\r\n", 5), token); });
}

bool Exchange::client_gone() const { return conn_.gone_; }

bool Exchange::holding() const { return conn_.holding(); }

net::awaitable<void> Exchange::release_held() { return conn_.release_held(); }

namespace {
// Arms the disconnect watch of every exchange that asked for one and is
// still running (its generation unchanged: the end of an exchange bumps it).
void sweep_unwatched(const std::shared_ptr<Server::State>& st) {
  auto due = std::move(st->unwatched);
  st->unwatched.clear();
  for (auto& [weak, gen] : due) {
    auto c = weak.lock();
    if (c && c->watch_gen_ == gen && !c->gone_) c->arm_watch();
  }
}

void arm_sweep(const std::shared_ptr<Server::State>& st) {
  st->sweep_armed = true;
  st->sweep.expires_after(kWatchDelay);
  st->sweep.async_wait([st](error_code ec) {
    st->sweep_armed = false;
    if (!ec) sweep_unwatched(st);
  });
}
}  // namespace

void Exchange::watch_disconnect(std::function<void()> on_gone) {
  if (conn_.watching_) return;
  conn_.watching_ = true;
  conn_.on_gone_ = std::move(on_gone);
  auto& st = conn_.server_;
  st->unwatched.push_back({conn_.weak_from_this(), ++conn_.watch_gen_});
  if (!st->sweep_armed) arm_sweep(st);
}

// -------------------------------------------------------------- Connection

// Waits for readability without consuming bytes: EOF or a reset means the
// client left; data means a pipelined request, which is left alone.
void Connection::arm_watch() {
  watch_armed_ = true;
  struct Waiter {
    std::shared_ptr<Connection> c;
    unsigned gen;
    void operator()(error_code ec) {
      if (gen != c->watch_gen_ || !c->in_request_) return;
      bool left = ec && ec != net::error::operation_aborted;
      if (!ec) {
        char b;
        ssize_t n = ::recv(c->sock_.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          c->sock_.async_wait(tcp::socket::wait_read, std::move(*this));
          return;
        }
        left = n <= 0;  // n > 0: the client sent more (pipelining); it is still there
      }
      if (left && !c->gone_) {
        c->gone_ = true;
        if (c->on_gone_) c->on_gone_();
      }
    }
  };
  sock_.async_wait(tcp::socket::wait_read, Waiter{shared_from_this(), watch_gen_});
}

net::awaitable<void> Connection::release_held() {
  set_deadline(server_->opts.write_timeout);
  error_code ec;
  co_await net::async_write(sock_, net::buffer(held_), net::redirect_error(use_awaitable, ec));
  clear_deadline();
  held_.clear();
  if (ec) gone_ = true;
}

namespace {
// Whether `buf` holds a whole request header: reading it then cannot block.
bool has_whole_header(const beast::flat_buffer& buf) {
  std::string_view d(static_cast<const char*>(buf.data().data()), buf.size());
  return d.find("\r\n\r\n") != std::string_view::npos;
}
}  // namespace

net::awaitable<void> Connection::watchdog() {
  auto self = shared_from_this();
  while (sock_.is_open()) {
    timer_.expires_at(deadline_);
    error_code ec;
    co_await timer_.async_wait(net::redirect_error(use_awaitable, ec));
    if (!sock_.is_open()) break;
    if (clock::now() >= deadline_) {
      close();
      break;
    }
  }
}

net::awaitable<void> Connection::run() {
  auto self = shared_from_this();
  auto& st = *server_;
  st.conns.insert(this);
  net::co_spawn(sock_.get_executor(), watchdog(), net::detached);
  error_code ec;
  sock_.set_option(tcp::no_delay(true), ec);

  while (!st.stopping) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(st.opts.max_header));
    parser_->body_limit(boost::none);
    if (holding() && !has_whole_header(buf_)) co_await release_held();
    // The idle wait and the header both count against the deadline: a
    // client that trickles a header byte by byte is cut off like a silent one.
    set_deadline(buf_.size() ? st.opts.read_timeout : std::max(st.opts.read_timeout, st.opts.idle_timeout));
    co_await bhttp::async_read_header(sock_, buf_, *parser_, net::redirect_error(use_awaitable, ec));
    clear_deadline();
    if (ec) {
      if (holding()) co_await release_held();  // the answer before a bad request still goes, first
      if (ec == bhttp::error::header_limit) {
        static const std::string k431 = closing_answer(
            "431 Request Header Fields Too Large",
            Error(ErrorType::bad_request, "request header is larger than the server's limit"));
        error_code wec;
        co_await net::async_write(sock_, net::buffer(k431), net::redirect_error(use_awaitable, wec));
      } else if (ec != bhttp::error::end_of_stream && ec != net::error::eof &&
                 ec != net::error::operation_aborted && ec != net::error::connection_reset &&
                 ec != net::error::bad_descriptor) {
        static const std::string k400 =
            closing_answer("400 Bad Request", Error(ErrorType::bad_request, "malformed HTTP request"));
        error_code wec;
        co_await net::async_write(sock_, net::buffer(k400), net::redirect_error(use_awaitable, wec));
      }
      break;
    }
    in_request_ = true;
    ++st.active;
    Exchange ex(*this);
    bool threw = false;
    try {
      co_await st.handler(ex);
    } catch (const std::exception& e) {
      spdlog::error("event=handler_exception error=\"{}\" request_id={}", e.what(), ex.request_id);
      threw = true;
    }
    if (threw) ex.close_after();
    if (!ex.responded()) {
      co_await ex.respond_error(Error(ErrorType::internal, "the handler gave no response"));
    }
    --st.active;
    in_request_ = false;
    if (watching_) {
      ++watch_gen_;
      watching_ = false;
      on_gone_ = nullptr;
      if (watch_armed_) {
        watch_armed_ = false;
        error_code cec;
        sock_.cancel(cec);
      }
    }
    if (ex.close_after_ || gone_ || !parser_->is_done() || !sock_.is_open()) break;
  }
  if (holding()) co_await release_held();  // stopping with an answer held: it still goes
  close();
  st.conns.erase(this);
}

// ------------------------------------------------------------------ Server

Server::Server(net::io_context& io, ServerOptions opts, Handler handler)
    : state_(std::make_shared<State>(io, std::move(opts), std::move(handler))) {}

Server::~Server() {
  stop();
  close_all();
}

Expected<void> Server::listen(const std::string& host, std::uint16_t port) {
  error_code ec;
  auto addr = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return fail(ErrorType::bad_request, fmt::format("invalid listen address \"{}\"", host));
  tcp::endpoint ep(addr, port);
  auto& a = state_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail(ErrorType::unavailable, fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
  accept_loop();
  return {};
}

Expected<void> Server::listen_fd(int fd) {
  error_code ec;
  state_->acceptor.assign(tcp::v4(), fd, ec);
  if (ec) return fail(ErrorType::unavailable, fmt::format("cannot adopt a listening socket: {}", ec.message()));
  accept_loop();
  return {};
}

void Server::accept_loop() {
  auto st = state_;
  net::co_spawn(
      st->acceptor.get_executor(),
      [st]() -> net::awaitable<void> {
        while (!st->stopping) {
          error_code aec;
          tcp::socket s = co_await st->acceptor.async_accept(net::redirect_error(use_awaitable, aec));
          if (aec) {
            if (st->stopping || aec == net::error::operation_aborted) break;
            continue;  // e.g. EMFILE: keep serving those already connected
          }
          auto c = std::make_shared<Connection>(st, std::move(s));
          net::co_spawn(st->io, c->run(), net::detached);
        }
      },
      net::detached);
}

std::uint16_t Server::port() const {
  error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

void Server::stop() {
  if (state_->stopping) return;
  state_->stopping = true;
  error_code ec;
  state_->acceptor.close(ec);
  std::vector<Connection*> idle;
  for (auto* c : state_->conns)
    if (!c->in_request_) idle.push_back(c);
  for (auto* c : idle) c->close();
}

void Server::close_all() {
  state_->sweep.cancel();
  std::vector<Connection*> all(state_->conns.begin(), state_->conns.end());
  for (auto* c : all) c->close();
}

std::size_t Server::active_requests() const { return state_->active; }
std::size_t Server::open_connections() const { return state_->conns.size(); }

Expected<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return fail(ErrorType::bad_request, fmt::format("\"{}\" is not HOST:PORT", s));
  auto host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto ps = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc() || p != ps.data() + ps.size() || port > 65535)
    return fail(ErrorType::bad_request, fmt::format("\"{}\" has an invalid port", s));
  return std::pair<std::string, std::uint16_t>(std::string(host), static_cast<std::uint16_t>(port));
}

}  // namespace aifn::http
