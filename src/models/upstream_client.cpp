#include "models/upstream_client.h"

#include <array>
#include <atomic>
#include <charconv>
#include <ctime>
#include <iomanip>
#include <mutex>
#include <random>
#include <sstream>
#include <unordered_map>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::models {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;
constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);

namespace {

constexpr std::size_t kReadPiece = 16 * 1024;
constexpr std::uint32_t kMaxHead = 64 * 1024;

struct Target {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string path;  // origin-form: /path?query
  std::string key() const { return (tls ? "https://" : "http://") + host + ":" + port; }
  // host:port for messages and the Host header (port only when not the default).
  std::string authority() const {
    bool v6 = host.find(':') != std::string::npos;
    std::string h = v6 ? "[" + host + "]" : host;
    if ((tls && port == "443") || (!tls && port == "80")) return h;
    return h + ":" + port;
  }
};

Expected<Target> parse_target(std::string_view url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) return fail(ErrorType::bad_request, "upstream URL is not a valid absolute URL");
  Target t;
  if (u->scheme() == "https") {
    t.tls = true;
  } else if (u->scheme() != "http") {
    return fail(ErrorType::bad_request, "upstream URL must start with http:// or https://");
  }
  t.host = u->host_address();
  if (t.host.empty()) return fail(ErrorType::bad_request, "upstream URL has no host");
  t.port = u->has_port() ? std::string(u->port()) : (t.tls ? "443" : "80");
  t.path = u->encoded_path().empty() ? "/" : std::string(u->encoded_path());
  if (u->has_query()) t.path += "?" + std::string(u->encoded_query());
  return t;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

using TlsStream = ssl::stream<beast::tcp_stream>;

// One connection to one upstream origin; exactly one of plain/tls is set.
struct Conn {
  std::string key;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since;
  beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }
  void close() {
    boost::system::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }
};

// What one attempt ended with, and whether another attempt may follow.
struct Attempt {
  Expected<UpstreamResponse> result = UpstreamResponse{};
  bool connect_failed = false;  // nothing reached the upstream: safe to retry
  bool stale = false;           // a reused connection was dead before any answer
};

}  // namespace

struct UpstreamClient::Impl {
  net::any_io_executor ex;
  UpstreamOptions opts;
  ssl::context tls_ctx{ssl::context::tls_client};

  std::mutex mu;  // guards idle and rng
  std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle;
  std::mt19937_64 rng{std::random_device{}()};

  std::atomic<std::uint64_t> opened{0}, reused{0}, retries{0}, stale_retries{0};

  std::unique_ptr<Conn> checkout(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = idle.find(key);
    if (it == idle.end()) return nullptr;
    auto& v = it->second;
    auto now = std::chrono::steady_clock::now();
    while (!v.empty()) {
      auto c = std::move(v.back());
      v.pop_back();
      if (now - c->idle_since < opts.pool_idle && c->tcp().socket().is_open()) return c;
    }
    return nullptr;
  }

  void checkin(std::unique_ptr<Conn> c) {
    if (opts.max_idle_per_host == 0) return;
    c->idle_since = std::chrono::steady_clock::now();
    std::lock_guard lock(mu);
    auto& v = idle[c->key];
    // Expired ones go first; then, over the bound, the oldest.
    std::erase_if(v, [&](const auto& o) { return c->idle_since - o->idle_since >= opts.pool_idle; });
    if (v.size() >= opts.max_idle_per_host) v.erase(v.begin());
    v.push_back(std::move(c));
  }

  Millis backoff(int attempt) {
    auto cap = std::min<std::int64_t>(opts.backoff_max.count(),
                                      opts.backoff_base.count() << std::min(attempt - 1, 20));
    std::lock_guard lock(mu);
    return Millis(std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(cap, 0))(rng));
  }

  net::awaitable<Attempt> connect(const Target& t, std::unique_ptr<Conn>& out);
  net::awaitable<Attempt> exchange(const Target& t, const UpstreamRequest& req, const BodySink* sink,
                                   bool& handed);
  net::awaitable<Expected<UpstreamResponse>> run(const UpstreamRequest& req, const BodySink* sink);
};

net::awaitable<Attempt> UpstreamClient::Impl::connect(const Target& t, std::unique_ptr<Conn>& out) {
  Attempt a;
  a.connect_failed = true;
  auto deadline = std::chrono::steady_clock::now() + opts.connect_timeout;
  auto failed = [&](ErrorType type, const std::string& what) {
    a.result = fail(type, fmt::format("upstream {}: {}", t.authority(), what));
    return a;
  };

  tcp::resolver resolver(ex);
  net::steady_timer timer(ex);
  timer.expires_at(deadline);
  auto r = co_await (resolver.async_resolve(t.host, t.port, kNoThrow) || timer.async_wait(kNoThrow));
  if (r.index() == 1) co_return failed(ErrorType::timeout, "name resolution timed out");
  auto [rec, endpoints] = std::get<0>(r);
  if (rec) co_return failed(ErrorType::unavailable, "cannot resolve the host: " + rec.message());

  auto c = std::make_unique<Conn>();
  c->key = t.key();
  c->plain = std::make_unique<beast::tcp_stream>(ex);
  c->plain->expires_at(deadline);
  auto [cec, ep] = co_await c->plain->async_connect(endpoints, kNoThrow);
  if (cec == beast::error::timeout) co_return failed(ErrorType::timeout, "connect timed out");
  if (cec) co_return failed(ErrorType::unavailable, "connect failed: " + cec.message());
  c->plain->socket().set_option(tcp::no_delay(true));

  if (t.tls) {
    c->tls = std::make_unique<TlsStream>(std::move(*c->plain), tls_ctx);
    c->plain.reset();
    // SNI for name-based virtual hosts; the peer's certificate must chain to
    // a trusted CA and name this host (DNS name or IP address).
    if (!is_ip_literal(t.host)) SSL_set_tlsext_host_name(c->tls->native_handle(), t.host.c_str());
    c->tls->set_verify_mode(ssl::verify_peer);
    c->tls->set_verify_callback(ssl::host_name_verification(t.host));
    c->tls->next_layer().expires_at(deadline);
    auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, kNoThrow);
    if (hec == beast::error::timeout) co_return failed(ErrorType::timeout, "TLS handshake timed out");
    if (hec) {
      // A certificate that does not verify is not a transient failure: no retry.
      a.connect_failed = false;
      co_return failed(ErrorType::upstream_error, "TLS handshake failed: " + hec.message());
    }
  }
  opened.fetch_add(1);
  out = std::move(c);
  a.connect_failed = false;
  co_return a;
}

namespace {

// One request/response on a connected stream (plain or TLS).
template <class Stream>
net::awaitable<Attempt> exchange_on(Stream& s, Conn& c, const Target& t, const UpstreamRequest& req,
                                    const UpstreamOptions& opts, const BodySink* sink, bool reused,
                                    bool& handed, bool& keep) {
  Attempt a;
  keep = false;
  auto failed = [&](ErrorType type, const std::string& what) {
    a.result = fail(type, fmt::format("upstream {}: {}", t.authority(), what));
    return a;
  };
  auto dead_before_answer = [&](const boost::system::error_code& ec) {
    return reused && (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
                      ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                      ec == ssl::error::stream_truncated);
  };

  bhttp::request<bhttp::string_body> msg{bhttp::string_to_verb(req.method), t.path, 11};
  if (msg.method() == bhttp::verb::unknown) co_return failed(ErrorType::bad_request, "unknown method");
  msg.set(bhttp::field::host, t.authority());
  msg.set(bhttp::field::user_agent, "aifn");
  msg.set(bhttp::field::accept, "application/json, text/event-stream");
  for (const auto& [k, v] : req.headers) msg.set(k, v);
  if (!req.body.empty()) {
    msg.set(bhttp::field::content_type, "application/json");
    msg.body() = req.body;
  }
  msg.keep_alive(true);
  msg.prepare_payload();

  c.tcp().expires_after(opts.idle_timeout);
  auto [wec, wn] = co_await bhttp::async_write(s, msg, kNoThrow);
  if (wec) {
    a.stale = dead_before_answer(wec) || (reused && wec != beast::error::timeout);
    if (wec == beast::error::timeout) co_return failed(ErrorType::timeout, "sending the request timed out");
    co_return failed(ErrorType::unavailable, "sending the request failed: " + wec.message());
  }

  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(kMaxHead);
  parser.body_limit(boost::none);  // sizes are capped below, per use
  if (msg.method() == bhttp::verb::head) parser.skip(true);
  c.tcp().expires_after(opts.first_byte_timeout);
  auto [hec, hn] = co_await bhttp::async_read_header(s, c.buffer, parser, kNoThrow);
  if (hec) {
    a.stale = dead_before_answer(hec);
    if (hec == beast::error::timeout)
      co_return failed(ErrorType::timeout,
                       fmt::format("no response within {} ms (first-byte timeout)", opts.first_byte_timeout.count()));
    co_return failed(ErrorType::upstream_error, "reading the response head failed: " + hec.message());
  }

  UpstreamResponse res;
  const auto& head = parser.get();
  res.status = static_cast<int>(head.result_int());
  res.content_type = std::string(head[bhttp::field::content_type]);
  if (auto ra = head.find(bhttp::field::retry_after); ra != head.end()) res.retry_after_seconds = parse_retry_after(ra->value());
  const bool to_sink = sink != nullptr && res.status >= 200 && res.status < 300;

  std::array<char, kReadPiece> piece;
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    c.tcp().expires_after(opts.idle_timeout);
    auto [rec, rn] = co_await bhttp::async_read_some(s, c.buffer, parser, kNoThrow);
    if (rec == bhttp::error::need_buffer) rec = {};
    if (rec) {
      if (rec == beast::error::timeout)
        co_return failed(ErrorType::timeout,
                         fmt::format("no body data for {} ms (idle timeout)", opts.idle_timeout.count()));
      co_return failed(ErrorType::upstream_error, "reading the response body failed: " + rec.message());
    }
    std::size_t got = piece.size() - parser.get().body().size;
    if (got == 0) continue;
    std::string_view data(piece.data(), got);
    if (to_sink) {
      handed = true;
      if (!co_await (*sink)(data)) {
        res.stopped = true;
        a.result = std::move(res);
        co_return a;  // keep == false: the connection is closed, the upstream stops
      }
    } else {
      if (res.body.size() + got > opts.max_body)
        co_return failed(ErrorType::upstream_error,
                         fmt::format("the response body is larger than {}", format_size(opts.max_body)));
      res.body.append(data);
    }
  }
  keep = parser.get().keep_alive();
  a.result = std::move(res);
  co_return a;
}

}  // namespace

net::awaitable<Attempt> UpstreamClient::Impl::exchange(const Target& t, const UpstreamRequest& req,
                                                       const BodySink* sink, bool& handed) {
  std::unique_ptr<Conn> c = checkout(t.key());
  const bool pooled = c != nullptr;
  if (!c) {
    Attempt a = co_await connect(t, c);
    if (!c) co_return a;
  } else {
    reused.fetch_add(1);
  }
  bool keep = false;
  // Not a ?: of two co_awaits: g++ 12 mis-copies the result of such an expression.
  Attempt a;
  if (c->tls) {
    a = co_await exchange_on(*c->tls, *c, t, req, opts, sink, pooled, handed, keep);
  } else {
    a = co_await exchange_on(*c->plain, *c, t, req, opts, sink, pooled, handed, keep);
  }
  if (keep && a.result) {
    checkin(std::move(c));
  } else {
    c->close();
  }
  co_return a;
}

net::awaitable<Expected<UpstreamResponse>> UpstreamClient::Impl::run(const UpstreamRequest& req,
                                                                     const BodySink* sink) {
  auto target = parse_target(req.url);
  if (!target) co_return tl::unexpected(target.error());
  const int attempts = std::max(req.max_attempts.value_or(opts.max_attempts), 1);
  bool handed = false;
  bool stale_retried = false;
  for (int attempt = 1;; ++attempt) {
    Attempt a = co_await exchange(*target, req, sink, handed);
    if (a.stale && !handed && !stale_retried) {
      // The server closed the pooled connection while it was idle: not the
      // upstream's fault, so one fresh try that does not count as an attempt.
      stale_retried = true;
      stale_retries.fetch_add(1);
      --attempt;
      continue;
    }
    std::string reason;
    Millis wait{0};
    if (!a.result) {
      if (!a.connect_failed || handed) co_return std::move(a.result);
      reason = a.result.error().message;
    } else {
      int st = a.result->status;
      if (handed || !(st == 429 || st >= 500)) co_return std::move(a.result);
      reason = fmt::format("status {}", st);
      if ((st == 429 || st == 503) && a.result->retry_after_seconds) {
        Millis ra = std::chrono::seconds(*a.result->retry_after_seconds);
        if (ra > opts.retry_after_cap) co_return std::move(a.result);  // not worth waiting for here
        wait = ra;
      }
    }
    if (attempt >= attempts) co_return std::move(a.result);
    if (wait == Millis{0}) wait = backoff(attempt);
    retries.fetch_add(1);
    spdlog::warn("upstream retry host={} attempt={}/{} reason=\"{}\" wait_ms={}", target->authority(),
                 attempt + 1, attempts, reason, wait.count());
    net::steady_timer timer(ex, wait);
    co_await timer.async_wait(kNoThrow);
  }
}

Expected<std::shared_ptr<UpstreamClient>> UpstreamClient::create(net::any_io_executor ex, UpstreamOptions opts) {
  auto impl = std::make_unique<Impl>();
  impl->ex = ex;
  impl->opts = std::move(opts);
  boost::system::error_code ec;
  impl->tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (impl->opts.ca_file.empty()) {
    impl->tls_ctx.set_default_verify_paths(ec);
    if (ec) return fail(ErrorType::internal, "cannot load the system trust store: " + ec.message());
  } else {
    impl->tls_ctx.load_verify_file(impl->opts.ca_file, ec);
    if (ec)
      return fail(ErrorType::bad_request,
                  fmt::format("ca_file {}: cannot load PEM certificates: {}", impl->opts.ca_file, ec.message()));
  }
  impl->tls_ctx.set_verify_mode(ssl::verify_peer);
  return std::shared_ptr<UpstreamClient>(new UpstreamClient(std::move(impl)));
}

UpstreamClient::UpstreamClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UpstreamClient::~UpstreamClient() = default;

net::awaitable<Expected<UpstreamResponse>> UpstreamClient::fetch(const UpstreamRequest& req) {
  co_return co_await impl_->run(req, nullptr);
}

net::awaitable<Expected<UpstreamResponse>> UpstreamClient::stream(const UpstreamRequest& req, const BodySink& sink) {
  co_return co_await impl_->run(req, &sink);
}

UpstreamStats UpstreamClient::stats() const {
  return {impl_->opened.load(), impl_->reused.load(), impl_->retries.load(), impl_->stale_retries.load()};
}

const UpstreamOptions& UpstreamClient::options() const { return impl_->opts; }

std::optional<int> parse_retry_after(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  int secs = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
  if (ec == std::errc() && p == value.data() + value.size()) return secs < 0 ? 0 : secs;
  // RFC 9110 HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  std::istringstream in{std::string(value)};
  in.imbue(std::locale::classic());
  in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S GMT");
  if (in.fail()) return std::nullopt;
  auto diff = static_cast<long long>(timegm(&tm)) - static_cast<long long>(std::time(nullptr));
  return static_cast<int>(std::clamp<long long>(diff, 0, 1'000'000));
}

}  // namespace aifn::models
