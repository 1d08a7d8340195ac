// hello-cpp: an `exec` function that speaks the Lambda Runtime API itself.
//
// aifn starts it with AWS_LAMBDA_RUNTIME_API=host:port; it loops
// GET /next → POST /{id}/response on one keep-alive socket, answering
// {"message":"hello, <name>"}. Each POST carries the next GET in the same
// write (HTTP/1.1 pipelining, which any HTTP/1.1 server must accept). It is
// the throughput benchmark's target, so the hot loop reuses its socket,
// buffers and JSON parser, and builds each answer in a stack arena: the
// server, not this process, should be what is measured.
// One call at a time per loop; with AIFN_CONCURRENCY=N (the manifest's
// `concurrency`) it runs N loops, each on its own thread and socket.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view kNextPath = "/2018-06-01/runtime/invocation/next";
constexpr std::string_view kInvocationPrefix = "/2018-06-01/runtime/invocation/";
constexpr std::uint64_t kMaxEventBytes = 64 * 1024 * 1024;
constexpr int kMaxLoops = 256;

class RuntimeClient {
 public:
  RuntimeClient(std::string host, std::string port) : host_(std::move(host)), port_(std::move(port)) {
    next_.version(11);
    next_.method(http::verb::get);
    next_.target(kNextPath);
    next_.set(http::field::host, host_);
  }

  void connect() {
    socket_.close();
    tcp::resolver resolver(io_);
    asio::connect(socket_, resolver.resolve(host_, port_));
    // Each call is two small request/answer exchanges: Nagle would add
    // a delayed-ACK wait to every one of them.
    socket_.set_option(tcp::no_delay(true));
    buffer_.clear();
  }

  // Long-polls for the next event. REQUIRES: connected.
  // Returns false if the connection broke (the caller reconnects).
  bool next(http::response_parser<http::string_body>& parser) {
    beast::error_code ec;
    http::write(socket_, next_, ec);
    if (!ec) http::read(socket_, buffer_, parser, ec);
    return !ec && keep_alive_or_reconnect(parser.get().keep_alive());
  }

  // Posts `body` to /invocation/{id}/{kind} (kind: response or error) and,
  // in the same write, asks for the next event (HTTP/1.1 pipelining): one
  // send and one wake-up per call instead of two. Reads the 202; the event
  // is read by next_pipelined().
  bool post_then_next(std::string_view id, std::string_view kind, std::string const& body) {
    wire_.clear();
    wire_.append("POST ").append(kInvocationPrefix).append(id).append("/").append(kind);
    wire_.append(" HTTP/1.1\r\nHost: ").append(host_);
    wire_.append("\r\nContent-Type: application/json\r\nContent-Length: ");
    wire_.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
    wire_.append("GET ").append(kNextPath).append(" HTTP/1.1\r\nHost: ").append(host_).append("\r\n\r\n");
    beast::error_code ec;
    asio::write(socket_, asio::buffer(wire_), ec);
    if (ec) return false;
    http::response_parser<http::string_body> ack;
    http::read(socket_, buffer_, ack, ec);
    return !ec && ack.get().keep_alive();
  }

  bool next_pipelined(http::response_parser<http::string_body>& parser) {
    beast::error_code ec;
    http::read(socket_, buffer_, parser, ec);
    return !ec && keep_alive_or_reconnect(parser.get().keep_alive());
  }

 private:
  bool keep_alive_or_reconnect(bool keep_alive) {
    if (!keep_alive) connect();
    return true;
  }

  std::string host_;
  std::string port_;
  asio::io_context io_;
  tcp::socket socket_{io_};
  beast::flat_buffer buffer_;
  http::request<http::empty_body> next_;
  std::string wire_;
};

// Writes {"message":"hello, <name>"} into `out`; every allocation comes from
// `arena` and `out`'s existing capacity.
void answer(json::value const& event, json::storage_ptr arena, json::serializer& sr, std::string& out) {
  std::string_view name = "world";
  if (auto const* obj = event.if_object()) {
    if (auto const* v = obj->if_contains("name"); v && v->is_string()) name = v->get_string();
  }
  json::string greeting("hello, ", arena);
  greeting.append(name);
  json::object reply(arena);
  reply.emplace("message", std::move(greeting));
  json::value reply_value(std::move(reply));
  sr.reset(&reply_value);
  out.clear();
  char chunk[1024];
  while (!sr.done()) out.append(sr.read(chunk));
}

int run(std::string const& host, std::string const& port) {
  RuntimeClient client(host, port);
  client.connect();
  unsigned char parser_scratch[4096];
  json::parser jp(json::storage_ptr(), json::parse_options(), parser_scratch, sizeof parser_scratch);
  json::serializer sr;
  std::string out;
  out.reserve(4096);

  bool pipelined = false;  // the last post already asked for this event
  for (int failures = 0;;) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxEventBytes);
    if (!(pipelined ? client.next_pipelined(parser) : client.next(parser))) {
      // A stale keep-alive socket earns one fresh try; twice means the endpoint is gone.
      if (++failures == 2) return 1;
      client.connect();
      pipelined = false;
      continue;
    }
    failures = 0;
    auto const& res = parser.get();
    std::string_view id = res["Lambda-Runtime-Aws-Request-Id"];
    if (res.result() != http::status::ok || id.empty()) {
      std::fprintf(stderr, "hello-cpp: /next answered %u without a request id\n", res.result_int());
      return 1;
    }
    alignas(std::max_align_t) unsigned char arena_bytes[8192];
    json::monotonic_resource arena(arena_bytes, sizeof arena_bytes);
    jp.reset(&arena);
    beast::error_code ec;
    jp.write(res.body(), ec);  // the whole event: a trailing partial value is an error
    if (ec) {
      out = R"({"errorType":"Runtime.UnmarshalError","errorMessage":"event is not JSON","trace":[]})";
      pipelined = client.post_then_next(id, "error", out);
    } else {
      answer(jp.release(), &arena, sr, out);
      pipelined = client.post_then_next(id, "response", out);
    }
    if (!pipelined) client.connect();
  }
}

}  // namespace

int main() {
  char const* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  std::string_view endpoint = api ? api : "";
  auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) {
    std::fprintf(stderr, "hello-cpp: AWS_LAMBDA_RUNTIME_API must be host:port\n");
    return 1;
  }
  std::string host(endpoint.substr(0, colon));
  std::string port(endpoint.substr(colon + 1));
  // A loop ends only when the endpoint is gone: the whole process goes then,
  // whichever loop saw it first.
  auto loop_then_exit = [&] {
    int status = 1;
    try {
      status = run(host, port);
    } catch (std::exception const& e) {
      // Connect failures land here: the endpoint is gone, so is the instance.
      std::fprintf(stderr, "hello-cpp: %s\n", e.what());
    }
    std::fflush(stderr);
    std::_Exit(status);
  };
  char const* concurrency = std::getenv("AIFN_CONCURRENCY");
  int loops = std::clamp(concurrency ? std::atoi(concurrency) : 1, 1, kMaxLoops);
  for (int i = 1; i < loops; ++i) std::thread(loop_then_exit).detach();
  loop_then_exit();
}
