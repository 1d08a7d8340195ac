// End-to-end: an aifn gateway whose `openai` providers reach a second aifn
// server over TLS. TLS is terminated by a real nginx (certificate from a CA
// made in the test, verified by the gateway through `ca_file`); a route whose
// first target is down falls back to the next; an upstream that answers 503
// once is retried; the provider key never shows in the gateway's log.
//
//   test ──http──▶ aifn A ──https──▶ nginx ──http──▶ aifn B (gguf, tiny model)
//                                        └─/flaky/─▶ in-test relay (503 once, then B)
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "harness.h"
#include "models/upstream_test_certs.h"
#include "models/upstream_test_server.h"

namespace aifn::e2e {
namespace {

namespace net = boost::asio;
namespace mt = aifn::models::testing;

constexpr const char* kKey = "sk-e2e-upstream-key-7f3a9c1d5e";

int free_port() {
  net::io_context io;
  net::ip::tcp::acceptor a(io, {net::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool port_open(int port) {
  net::io_context io;
  net::ip::tcp::socket s(io);
  boost::system::error_code ec;
  s.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, ec);
  return !ec;
}

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// nginx in the foreground, one process, everything under `dir`.
class Nginx {
 public:
  Nginx(const fs::path& dir, int port, int backend, int flaky) {
    fs::create_directories(dir / "logs");
    write_file(dir / "nginx.conf", fmt_conf(dir, port, backend, flaky));
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string prefix = dir.string() + "/", conf = (dir / "nginx.conf").string();
      ::execlp("nginx", "nginx", "-p", prefix.c_str(), "-c", conf.c_str(), "-e", (dir / "logs/error.log").c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (!eventually([&] { return port_open(port); }, std::chrono::seconds(10)))
      throw std::runtime_error("nginx did not start");
  }
  ~Nginx() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }

 private:
  static std::string fmt_conf(const fs::path& d, int port, int backend, int flaky) {
    std::string s = "daemon off;\nmaster_process off;\npid " + (d / "nginx.pid").string() +
                    ";\nerror_log " + (d / "logs/error.log").string() + " warn;\nevents {}\nhttp {\n";
    s += "  access_log off;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
      s += std::string("  ") + t + "_temp_path " + (d / t).string() + ";\n";
    s += "  server {\n    listen 127.0.0.1:" + std::to_string(port) + " ssl;\n";
    s += "    ssl_certificate " + (d / "server.pem").string() + ";\n";
    s += "    ssl_certificate_key " + (d / "server.key").string() + ";\n";
    // B is a plain aifn that would take the provider key for one of its own
    // tokens: the key ends at the TLS edge, as at a hosted API.
    s += "    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n    proxy_buffering off;\n";
    s += "    proxy_set_header Authorization \"\";\n";
    s += "    location /flaky/ { proxy_pass http://127.0.0.1:" + std::to_string(flaky) + "/; }\n";
    s += "    location / { proxy_pass http://127.0.0.1:" + std::to_string(backend) + "; }\n";
    s += "  }\n}\n";
    return s;
  }
  int pid_ = -1;
};

class UpstreamOpenAIE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("aifn-upstream-e2e-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "functions");
    std::string gen = std::string(AIFN_GEN_MODEL) + " --out " + (dir_ / "tiny.gguf").string() +
                      " --type q8_0 --seed 1 > /dev/null";
    ASSERT_EQ(std::system(gen.c_str()), 0);

    backend_ = new Server(dir_ / "functions", {},
                          "[[providers]]\nname = \"local\"\nkind = \"gguf\"\npath = \"" + (dir_ / "tiny.gguf").string() +
                              "\"\n\n[[models]]\nname = \"tiny\"\nroute = [\"local/tiny\"]\n");

    // A relay that answers every other request with 503 and passes the rest
    // to B: each gateway call sees one 503, then its retry gets the answer.
    flaky_ = new mt::TestServer([](mt::TestExchange& ex) -> net::awaitable<void> {
      if (flaky_calls_++ % 2 == 0) {
        co_await ex.write(mt::response(503, "application/json", R"({"error":{"message":"warming up"}})"));
        co_return;
      }
      http::ClientRequest req;
      req.method = std::string(ex.request.method_string());
      req.url = backend_->url(std::string(ex.request.target()));
      req.body = ex.request.body();
      req.headers["Content-Type"] = "application/json";
      auto res = http::fetch(req);  // blocking is fine on this test-only io thread
      if (!res) {
        co_await ex.write(mt::response(502, "application/json", "{}"));
        co_return;
      }
      co_await ex.write(mt::response(res->status, res->header("content-type"), res->body));
    });

    mt::Pem ca = mt::make_ca("aifn e2e CA");
    mt::Pem cert = mt::make_server_cert(ca, {"localhost"});
    write_file(dir_ / "ca.pem", ca.cert);
    write_file(dir_ / "nginx" / "server.pem", (fs::create_directories(dir_ / "nginx"), cert.cert));
    write_file(dir_ / "nginx" / "server.key", cert.key);
    tls_port_ = free_port();
    nginx_ = new Nginx(dir_ / "nginx", tls_port_, backend_->port(), flaky_->port());

    ::setenv("AIFN_E2E_UPSTREAM_KEY", kKey, 1);
    std::string ca_file = (dir_ / "ca.pem").string();
    std::string https = "https://localhost:" + std::to_string(tls_port_);
    std::string conf;
    auto provider = [&](const std::string& name, const std::string& base, const std::string& extra) {
      conf += "[[providers]]\nname = \"" + name + "\"\nkind = \"openai\"\nbase_url = \"" + base + "\"\n" + extra + "\n";
    };
    provider("down", "https://localhost:" + std::to_string(free_port()) + "/v1",
             "ca_file = \"" + ca_file + "\"\nmax_attempts = 2\nconnect_timeout = \"2s\"");
    provider("up", https + "/v1", "ca_file = \"" + ca_file + "\"\napi_key = \"env:AIFN_E2E_UPSTREAM_KEY\"");
    provider("flaky", https + "/flaky/v1", "ca_file = \"" + ca_file + "\"\napi_key = \"env:AIFN_E2E_UPSTREAM_KEY\"");
    provider("untrusted", https + "/v1", "max_attempts = 1");  // system trust store: our CA is unknown
    provider("nosecret", https + "/v1", "ca_file = \"" + ca_file + "\"\napi_key = \"secret:AIFN_E2E_NOT_SET\"");
    conf += "[[models]]\nname = \"chat\"\nroute = [\"down/tiny\", \"up/tiny\"]\n";
    conf += "[[models]]\nname = \"retry\"\nroute = [\"flaky/tiny\"]\n";
    gateway_ = new Server(dir_ / "functions", {}, conf);
  }

  static void TearDownTestSuite() {
    delete gateway_;
    delete nginx_;
    delete flaky_;
    delete backend_;
    fs::remove_all(dir_);
  }

  static std::string chat_body(const std::string& model, bool stream) {
    return R"({"model":")" + model +
           R"(","messages":[{"role":"user","content":"Hello there"}],"max_tokens":8,"temperature":0)" +
           (stream ? R"(,"stream":true})" : "}");
  }
  static std::string answer_text(const http::ClientResponse& r) {
    auto v = json(r.body);
    return std::string(v.at("choices").at(0).at("message").at("content").as_string());
  }

  static inline fs::path dir_;
  static inline Server* backend_ = nullptr;
  static inline Server* gateway_ = nullptr;
  static inline mt::TestServer* flaky_ = nullptr;
  static inline Nginx* nginx_ = nullptr;
  static inline int tls_port_ = 0;
  static inline std::atomic<int> flaky_calls_{0};
};

TEST_F(UpstreamOpenAIE2E, ChatThroughTlsMatchesTheUpstream) {
  auto direct = backend_->post("/v1/chat/completions", chat_body("tiny", false));
  ASSERT_EQ(direct.status, 200) << direct.body;
  auto relayed = gateway_->post("/v1/chat/completions", chat_body("up/tiny", false));
  ASSERT_EQ(relayed.status, 200) << relayed.body << gateway_->log();
  EXPECT_EQ(answer_text(relayed), answer_text(direct));
  auto usage = json(relayed.body).at("usage");
  EXPECT_EQ(usage.at("completion_tokens"), json(direct.body).at("usage").at("completion_tokens"));
}

TEST_F(UpstreamOpenAIE2E, CliListsTheServersModels) {
  // The upstream aifn (the gateway's listing would call the flaky relay,
  // whose every-other-503 rhythm another test counts on).
  std::string want;
  auto listed = json(backend_->get("/v1/models").body);
  for (auto& m : listed.at("data").as_array()) want += std::string(m.at("id").as_string()) + "\n";
  EXPECT_NE(want.find("tiny\n"), std::string::npos) << want;
  EXPECT_EQ(run_cli("models list --server " + backend_->url("")), want);
  EXPECT_EQ(run_cli("models --server " + backend_->url("")), want) << "list is the default";
  auto refused = run_cli("models --server http://127.0.0.1:" + std::to_string(free_port()));
  EXPECT_NE(refused.find("127.0.0.1"), std::string::npos) << refused;
}

TEST_F(UpstreamOpenAIE2E, StreamRelayedDeltaByDelta) {
  auto direct = backend_->post("/v1/chat/completions", chat_body("tiny", false));
  ASSERT_EQ(direct.status, 200);
  std::string sse;
  int pieces = 0;
  http::ClientRequest req{.method = "POST", .url = gateway_->url("/v1/chat/completions"),
                          .body = chat_body("up/tiny", true)};
  req.on_data = [&](std::string_view d) {
    sse += d;
    ++pieces;
  };
  auto r = http::fetch(req);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 200) << sse;
  std::string text;
  int deltas = 0;
  for (std::size_t pos = 0; (pos = sse.find("data: ", pos)) != std::string::npos;) {
    auto end = sse.find("\n\n", pos);
    std::string data = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    auto v = json(data).as_object();
    auto ch = v.find("choices");
    if (ch == v.end() || ch->value().as_array().empty()) continue;
    auto& delta = ch->value().as_array()[0].as_object().at("delta").as_object();
    if (auto c = delta.find("content"); c != delta.end() && c->value().is_string() && !c->value().as_string().empty()) {
      text += c->value().as_string();
      ++deltas;
    }
  }
  EXPECT_EQ(text, answer_text(direct));
  // How many deltas B batches its tokens into depends on timing; that each
  // reaches the client as it arrives is checked in src/models (held streams).
  EXPECT_GE(deltas, 1);
  EXPECT_NE(sse.find("[DONE]"), std::string::npos);
}

TEST_F(UpstreamOpenAIE2E, FallsBackWhenTheFirstTargetIsDown) {
  auto r = gateway_->post("/v1/chat/completions", chat_body("chat", false));
  ASSERT_EQ(r.status, 200) << r.body << gateway_->log();
  EXPECT_FALSE(answer_text(r).empty());
  EXPECT_TRUE(eventually([&] { return gateway_->log().find("event=model_fallback model=chat target=down/tiny") !=
                                      std::string::npos; },
                         std::chrono::seconds(5)))
      << gateway_->log();
}

TEST_F(UpstreamOpenAIE2E, RetriesAfterA503) {
  int before = flaky_->requests();
  auto r = gateway_->post("/v1/chat/completions", chat_body("retry", false));
  ASSERT_EQ(r.status, 200) << r.body << gateway_->log();
  EXPECT_EQ(flaky_->requests() - before, 2);  // 503, then the answer
  EXPECT_NE(gateway_->log().find("upstream retry"), std::string::npos);
}

TEST_F(UpstreamOpenAIE2E, UnknownCaIsRefused) {
  auto r = gateway_->post("/v1/chat/completions", chat_body("untrusted/tiny", false));
  EXPECT_GE(r.status, 500) << r.body;
  EXPECT_NE(r.body.find("TLS handshake failed"), std::string::npos) << r.body;
}

TEST_F(UpstreamOpenAIE2E, ProviderWhoseSecretIsMissingIsUnavailable) {
  auto r = gateway_->post("/v1/chat/completions", chat_body("nosecret/tiny", false));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(gateway_->log().find("event=provider_unavailable provider=nosecret"), std::string::npos) << gateway_->log();
  EXPECT_NE(gateway_->log().find("secret:AIFN_E2E_NOT_SET"), std::string::npos);
}

TEST_F(UpstreamOpenAIE2E, KeyNeverInTheGatewayLog) {
  gateway_->post("/v1/chat/completions", chat_body("up/tiny", false));
  gateway_->post("/v1/chat/completions", chat_body("chat", false));
  gateway_->post("/v1/chat/completions", chat_body("retry", false));
  EXPECT_EQ(gateway_->log().find(kKey), std::string::npos);
  EXPECT_EQ(gateway_->log().find("Bearer"), std::string::npos);
}

// A provider key kept in the secret store is set and rotated without a
// restart: a provider whose secret was missing at start comes up when it is
// set, the next upstream request carries a rotated key, and removing the
// secret makes the provider unavailable (naming the reference, never a key).
TEST(UpstreamKeyRotation, SecretSetOrRemovedTakesEffectWithoutRestart) {
  std::mutex mu;
  std::vector<std::string> seen;  // Authorization headers the upstream got
  mt::TestServer upstream([&](mt::TestExchange& ex) -> net::awaitable<void> {
    {
      std::lock_guard lock(mu);
      seen.emplace_back(ex.request[boost::beast::http::field::authorization]);
    }
    co_await ex.write(mt::response(
        200, "application/json",
        R"({"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":1,"completion_tokens":1}})"));
  });
  const fs::path dir = fs::temp_directory_path() / ("aifn-rotation-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "functions");
  const fs::path data = dir / "data";
  const std::string conf = "[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"" + upstream.url() +
                           "/v1\"\napi_key = \"secret:UP_KEY\"\n";
  const std::string chat = R"({"model":"up/m","messages":[{"role":"user","content":"hi"}]})";
  const std::string old_key = "sk-rotation-old-0123456789", new_key = "sk-rotation-new-9876543210";
  Server s(dir / "functions", {"--data", data.string()}, conf);  // the secret store lives in the data dir
  auto last_seen = [&] {
    std::lock_guard lock(mu);
    return seen.empty() ? std::string() : seen.back();
  };
  auto none = s.post("/v1/chat/completions", chat);
  ASSERT_EQ(none.status, 503) << "no key yet: the provider is unavailable";
  EXPECT_NE(none.body.find("secret:UP_KEY"), std::string::npos) << none.body;
  auto r = http::fetch({.method = "PUT", .url = s.url("/admin/secrets/UP_KEY"), .body = old_key});
  ASSERT_EQ(r->status, 204) << r->body;
  ASSERT_EQ(s.post("/v1/chat/completions", chat).status, 200) << s.log();
  EXPECT_EQ(last_seen(), "Bearer " + old_key);
  r = http::fetch({.method = "PUT", .url = s.url("/admin/secrets/UP_KEY"), .body = new_key});
  ASSERT_EQ(r->status, 204) << r->body;
  ASSERT_EQ(s.post("/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(last_seen(), "Bearer " + new_key) << "the rotated key, no restart";
  r = http::fetch({.method = "DELETE", .url = s.url("/admin/secrets/UP_KEY")});
  ASSERT_EQ(r->status, 204);
  auto gone = s.post("/v1/chat/completions", chat);
  EXPECT_EQ(gone.status, 503) << gone.body;
  EXPECT_NE(gone.body.find("secret:UP_KEY"), std::string::npos) << gone.body;
  for (const std::string& k : {old_key, new_key}) {
    EXPECT_EQ(gone.body.find(k), std::string::npos);
    EXPECT_EQ(s.log().find(k), std::string::npos);
  }
  s.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aifn::e2e
