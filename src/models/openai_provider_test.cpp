#include "models/openai_provider.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "models/upstream_test_server.h"
#include "models/upstream_test_util.h"

namespace aifn::models {
namespace {

namespace net = boost::asio;
namespace json = boost::json;
using namespace testing;

constexpr const char* kKey = "sk-test-0123456789abcdefSECRETKEY";
constexpr const char* kKeyEnv = "AIFN_TEST_OPENAI_PROVIDER_KEY";

// The SSE an OpenAI-compatible server streams for a chat answer, with a
// comment, CRLF and LF line ends and a final usage chunk.
std::string chat_sse(bool with_usage, bool chat = true) {
  auto delta = [&](const std::string& text) {
    return chat ? R"({"choices":[{"index":0,"delta":{"content":")" + text + R"("}}]})"
                : R"({"choices":[{"index":0,"text":")" + text + R"("}]})";
  };
  std::string s = "data: " + std::string(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})") +
                  "\r\n\r\n: keep-alive\n\n";
  s += "data: " + delta("Hel") + "\n\n";
  s += "data: " + delta("lo") + "\r\n\r\n";
  s += "data: " + delta(" w\u00f6rld") + "\n\n";
  s += R"(data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})" "\n\n";
  if (with_usage) s += R"(data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}})" "\n\n";
  s += "data: [DONE]\n\n";
  return s;
}

// Answers are built outside the handler coroutine: g++ 12 mishandles
// initializer lists inside coroutines.
std::string chat_answer(const std::string& last) {
  json::object answer{{"id", "c1"},
                      {"object", "chat.completion"},
                      {"choices", json::array{json::object{{"index", 0},
                                                           {"message", json::object{{"role", "assistant"}, {"content", "echo: " + last}}},
                                                           {"finish_reason", "length"}}}},
                      {"usage", json::object{{"prompt_tokens", 11}, {"completion_tokens", 2}}}};
  return json::serialize(answer);
}

std::string completion_answer(const std::string& prompt) {
  json::object answer{{"choices", json::array{json::object{{"index", 0}, {"text", "completed: " + prompt}, {"finish_reason", "stop"}}}},
                      {"usage", json::object{{"prompt_tokens", 3}, {"completion_tokens", 4}}}};
  return json::serialize(answer);
}

// An OpenAI-compatible upstream speaking the real wire format over TLS.
struct FakeOpenAI {
  std::mutex mu;
  std::vector<json::object> bodies;  // every request body, in order
  std::atomic<int> endless_written{0};
  std::atomic<bool> sink_saw_first{false};
  std::atomic<bool> held_until_seen{false};
  std::atomic<bool> endless_client_gone{false};

  TestHandler handler() {
    return [this](TestExchange& ex) -> net::awaitable<void> {
      const auto& req = ex.request;
      std::string auth(req[boost::beast::http::field::authorization]);
      if (auth != std::string("Bearer ") + kKey) {
        // Like OpenAI: the refusal names the key it was given.
        co_await ex.write(response(401, "application/json",
                                   R"({"error":{"message":"Incorrect API key provided: )" + auth.substr(7) + R"("}})"));
        co_return;
      }
      std::string target(req.target());
      if (target == "/v1/models") {
        co_await ex.write(response(200, "application/json", R"({"object":"list","data":[{"id":"gpt-x"},{"id":"emb-1"}]})"));
        co_return;
      }
      json::object body = json::parse(req.body()).as_object();
      {
        std::lock_guard lock(mu);
        bodies.push_back(body);
      }
      std::string model(body["model"].as_string());
      bool stream = body.contains("stream") && body["stream"].as_bool();
      if (model == "missing") {
        co_await ex.write(response(404, "application/json", R"({"error":{"message":"The model `missing` does not exist"}})"));
      } else if (model == "echo-key") {
        co_await ex.write(response(400, "application/json",
                                   std::string(R"({"error":{"message":"bad request from key )") + kKey + R"("}})"));
      } else if (model == "busy") {
        co_await ex.write(response(503, "application/json", R"({"error":{"message":"overloaded"}})"));
      } else if (model == "limited") {
        std::map<std::string, std::string> retry_after{{"Retry-After", "600"}};  // not inside co_await: GCC 12
        co_await ex.write(response(429, "application/json", R"({"error":{"message":"slow down"}})", retry_after));
      } else if (target == "/v1/embeddings") {
        // Out of order on purpose: the index decides.
        co_await ex.write(response(200, "application/json",
                                   R"({"object":"list","data":[{"index":1,"embedding":[0.5,-1]},{"index":0,"embedding":[1,2.25]}],)"
                                   R"("usage":{"prompt_tokens":4,"total_tokens":4}})"));
      } else if (model == "endless" && stream) {
        co_await ex.write(chunked_head(200, "text/event-stream"));
        for (int i = 0; i < 5000; ++i) {
          if (!co_await ex.write(chunk(R"(data: {"choices":[{"index":0,"delta":{"content":"tok"}}]})" "\n\n"))) {
            endless_client_gone = true;
            break;
          }
          ++endless_written;
          co_await ex.sleep(2);
        }
        ex.close = true;
      } else if (stream && model == "held") {  // the rest waits until the sink has the first delta
        std::string first = "data: " + std::string(R"({"choices":[{"index":0,"delta":{"content":"first"}}]})") + "\n\n";
        std::string rest = "data: " + std::string(R"({"choices":[{"index":0,"delta":{"content":" rest"},"finish_reason":"stop"}]})") +
                           "\n\ndata: [DONE]\n\n";
        co_await ex.write(chunked_head(200, "text/event-stream") + chunk(first));
        for (int i = 0; i < 1000 && !sink_saw_first; ++i) co_await ex.sleep(10);
        held_until_seen = sink_saw_first.load();
        co_await ex.write(chunk(rest) + std::string(kLastChunk));
      } else if (stream && model == "no-stream") {  // an upstream that ignores `stream`
        co_await ex.write(response(200, "application/json", chat_answer("whole")));
      } else if (stream) {
        std::string sse = chat_sse(model != "no-usage", target == "/v1/chat/completions");
        co_await ex.write(chunked_head(200, "text/event-stream"));
        for (std::size_t i = 0; i < sse.size(); i += 7) co_await ex.write(chunk(sse.substr(i, 7)));
        co_await ex.write(kLastChunk);
      } else if (target == "/v1/chat/completions") {
        std::string last(body["messages"].as_array().back().as_object()["content"].as_string());
        co_await ex.write(response(200, "application/json", chat_answer(last)));
      } else if (target == "/v1/completions") {
        std::string prompt(body["prompt"].as_string());
        co_await ex.write(response(200, "application/json", completion_answer(prompt)));
      } else {
        co_await ex.write(response(404, "application/json", R"({"error":{"message":"no route"}})"));
      }
    };
  }
  json::object last_body() {
    std::lock_guard lock(mu);
    return bodies.back();
  }
};

class Collect : public TextSink {
 public:
  std::vector<std::string> pieces;
  std::size_t stop_after = SIZE_MAX;
  net::awaitable<bool> on_text(std::string_view t) override {
    pieces.emplace_back(t);
    co_return pieces.size() < stop_after;
  }
};

// Captures everything spdlog writes during a test.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
    level_ = spdlog::default_logger()->level();
    spdlog::set_level(spdlog::level::trace);
  }
  ~LogCapture() {
    auto& s = spdlog::default_logger()->sinks();
    s.erase(std::remove(s.begin(), s.end(), sink_), s.end());
    spdlog::set_level(level_);
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  spdlog::level::level_enum level_;
};

const Pem& ca() {
  static const Pem c = make_ca("aifn openai test CA");
  return c;
}

class OpenAIProviderTest : public ::testing::Test {
 protected:
  OpenAIProviderTest() : ca_file_(ca().cert), server_(fake_.handler(), make_server_cert(ca(), {"localhost"})) {
    ::setenv(kKeyEnv, kKey, 1);
  }

  std::unique_ptr<OpenAIProvider> provider(const std::string& base_url, const std::string& key_ref = std::string("env:") + kKeyEnv) {
    config::Provider cfg;
    cfg.name = "up";
    cfg.kind = "openai";
    cfg.base_url = base_url;
    cfg.api_key = key_ref;
    cfg.ca_file = ca_file_.path();
    auto p = OpenAIProvider::create(io_.get_executor(), cfg, env_key_resolver(), fast_options());
    EXPECT_TRUE(p) << p.error().message;
    return p ? std::move(*p) : nullptr;
  }
  std::unique_ptr<OpenAIProvider> provider() { return provider(server_.url("localhost") + "/v1/"); }

  ProviderResult<Completion> complete(Provider& p, const CompletionRequest& req, TextSink* sink) {
    return run_on<ProviderResult<Completion>>(io_, [&]() { return p.complete(req, sink); });
  }
  static CompletionRequest chat(const std::string& model, const std::string& text) {
    CompletionRequest r;
    r.model = model;
    r.messages = {{"system", "be brief"}, {"user", text}};
    return r;
  }

  net::io_context io_;
  TempPemFile ca_file_;
  FakeOpenAI fake_;
  TestServer server_;
};

TEST_F(OpenAIProviderTest, ListsModels) {
  auto p = provider();
  auto r = run_on<ProviderResult<std::vector<std::string>>>(io_, [&]() { return p->list_models(); });
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(*r, (std::vector<std::string>{"gpt-x", "emb-1"}));
}

TEST_F(OpenAIProviderTest, ChatNotStreamed) {
  auto p = provider();
  auto req = chat("gpt-x", "hi there");
  req.sampling.temperature = 0.5;
  req.sampling.max_tokens = 9;
  req.sampling.stop = {"\n"};
  req.extra["user"] = "u-1";
  req.extra["model"] = "not-this-one";
  auto r = complete(*p, req, nullptr);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->text, "echo: hi there");
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(r->usage.prompt_tokens, 11);
  EXPECT_EQ(r->usage.completion_tokens, 2);

  auto sent = fake_.last_body();
  EXPECT_EQ(sent["model"], "gpt-x");  // the provider's id wins over extra
  EXPECT_EQ(sent["user"], "u-1");     // other fields relayed
  EXPECT_EQ(sent["temperature"], 0.5);
  EXPECT_EQ(sent["max_tokens"], 9);
  EXPECT_EQ(sent["stop"], (json::array{"\n"}));
  EXPECT_FALSE(sent.contains("top_p"));  // unset sampling fields are not sent
  EXPECT_FALSE(sent.contains("top_k"));
  EXPECT_EQ(sent["stream"], false);
  EXPECT_EQ(sent["messages"].as_array().size(), 2u);
}

TEST_F(OpenAIProviderTest, ChatStreamedDeltasInOrderWithUpstreamUsage) {
  auto p = provider();
  Collect sink;
  auto r = complete(*p, chat("gpt-x", "hi"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(sink.pieces, (std::vector<std::string>{"Hel", "lo", " w\u00f6rld"}));
  EXPECT_EQ(r->text, "Hello w\u00f6rld");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->usage.prompt_tokens, 7);
  EXPECT_EQ(r->usage.completion_tokens, 3);
  auto sent = fake_.last_body();
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["stream_options"].as_object()["include_usage"], true);
}

TEST_F(OpenAIProviderTest, DeltasReachTheSinkBeforeTheUpstreamFinishes) {
  struct Flagging : Collect {
    std::atomic<bool>* flag = nullptr;
    net::awaitable<bool> on_text(std::string_view t) override {
      *flag = true;
      co_return co_await Collect::on_text(t);
    }
  } sink;
  sink.flag = &fake_.sink_saw_first;
  auto p = provider();
  auto r = complete(*p, chat("held", "hi"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_TRUE(fake_.held_until_seen);
  EXPECT_EQ(sink.pieces, (std::vector<std::string>{"first", " rest"}));
}

TEST_F(OpenAIProviderTest, StreamWithoutUsageChunkEstimatesFromDeltas) {
  auto p = provider();
  Collect sink;
  auto r = complete(*p, chat("no-usage", "hi"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->usage.completion_tokens, 3);  // three content deltas
  EXPECT_GT(r->usage.prompt_tokens, 0);
}

TEST_F(OpenAIProviderTest, StreamWithoutUsageIsCountedWithTheTokenizer) {
  auto p = provider();
  std::vector<std::string> counted;
  p->set_token_counter([&](std::string_view text) -> std::optional<int> {
    counted.emplace_back(text);
    return static_cast<int>(text.size());  // a stand-in tokenizer: one token per byte
  });
  Collect sink;
  auto r = complete(*p, chat("no-usage", "hi"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->usage.completion_tokens, static_cast<int>(std::string("Hello w\u00f6rld").size()));
  EXPECT_EQ(r->usage.prompt_tokens, 11);  // the messages' contents, a line each
  EXPECT_EQ(counted, (std::vector<std::string>{"be brief\nhi", "Hello w\u00f6rld"}));
  // A tokenizer that cannot count yet (its model is loading): the estimates.
  p->set_token_counter([](std::string_view) { return std::optional<int>(); });
  auto e = complete(*p, chat("no-usage", "hi"), &sink);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->usage.completion_tokens, 3);
}

TEST_F(OpenAIProviderTest, UpstreamThatIgnoresStreamIsRelayedWhole) {
  auto p = provider();
  Collect sink;
  auto r = complete(*p, chat("no-stream", "hi"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(sink.pieces, (std::vector<std::string>{"echo: whole"}));
  EXPECT_EQ(r->text, "echo: whole");
  EXPECT_EQ(r->usage.prompt_tokens, 11);
}

TEST_F(OpenAIProviderTest, Completions) {
  auto p = provider();
  CompletionRequest req;
  req.chat = false;
  req.model = "gpt-x";
  req.prompt = "Once";
  auto r = complete(*p, req, nullptr);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->text, "completed: Once");
  EXPECT_EQ(r->usage.completion_tokens, 4);
  EXPECT_EQ(fake_.last_body()["prompt"], "Once");

  Collect sink;
  auto s = complete(*p, req, &sink);
  ASSERT_TRUE(s) << s.error().error.message;
  EXPECT_EQ(s->text, "Hello w\u00f6rld");
  EXPECT_EQ(sink.pieces.size(), 3u);
}

TEST_F(OpenAIProviderTest, Embeddings) {
  auto p = provider();
  std::vector<std::string> inputs{"a", "b"};
  std::string model = "emb-1";  // outlives the coroutine (it takes a reference)
  auto r = run_on<ProviderResult<Embeddings>>(io_, [&]() { return p->embed(model, inputs); });
  ASSERT_TRUE(r) << r.error().error.message;
  ASSERT_EQ(r->vectors.size(), 2u);
  EXPECT_EQ(r->vectors[0], (std::vector<float>{1.0f, 2.25f}));
  EXPECT_EQ(r->vectors[1], (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(r->prompt_tokens, 4);
  EXPECT_EQ(fake_.last_body()["input"], (json::array{"a", "b"}));
}

TEST_F(OpenAIProviderTest, SinkReturningFalseStopsReadingTheUpstream) {
  auto p = provider();
  Collect sink;
  sink.stop_after = 3;
  auto r = complete(*p, chat("endless", "go"), &sink);
  ASSERT_TRUE(r) << r.error().error.message;
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_EQ(sink.pieces.size(), 3u);
  EXPECT_EQ(r->usage.completion_tokens, 3);
  for (int i = 0; i < 1000 && !fake_.endless_client_gone; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(fake_.endless_client_gone);  // the upstream saw the connection close
  EXPECT_LT(fake_.endless_written.load(), 5000);
}

TEST_F(OpenAIProviderTest, StatusesMapToRetryableOrFinal) {
  auto p = provider();
  auto busy = complete(*p, chat("busy", "x"), nullptr);
  ASSERT_FALSE(busy);
  EXPECT_TRUE(busy.error().retryable);
  EXPECT_EQ(busy.error().error.type, ErrorType::upstream_error);
  EXPECT_NE(busy.error().error.message.find("overloaded"), std::string::npos);

  auto limited = complete(*p, chat("limited", "x"), nullptr);
  ASSERT_FALSE(limited);
  EXPECT_TRUE(limited.error().retryable);
  EXPECT_EQ(limited.error().error.retry_after_seconds, 600);

  auto missing = complete(*p, chat("missing", "x"), nullptr);
  ASSERT_FALSE(missing);
  EXPECT_FALSE(missing.error().retryable);
  EXPECT_EQ(missing.error().error.type, ErrorType::not_found);
  EXPECT_NE(missing.error().error.message.find("does not exist"), std::string::npos);

  Collect sink;  // streamed requests map the same way
  auto busy_stream = complete(*p, chat("busy", "x"), &sink);
  ASSERT_FALSE(busy_stream);
  EXPECT_TRUE(busy_stream.error().retryable);
  EXPECT_TRUE(sink.pieces.empty());
}

TEST_F(OpenAIProviderTest, ConnectFailureIsRetryable) {
  int port = 0;
  {
    net::ip::tcp::acceptor a(io_, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto p = provider("http://127.0.0.1:" + std::to_string(port) + "/v1");
  auto r = complete(*p, chat("gpt-x", "x"), nullptr);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().retryable);
  EXPECT_EQ(r.error().error.type, ErrorType::unavailable);
}

TEST_F(OpenAIProviderTest, KeyNeverInErrorsOrLogs) {
  LogCapture logs;
  std::vector<std::string> messages;
  {
    auto p = provider();
    for (const char* model : {"echo-key", "busy", "limited", "missing"}) {
      auto r = complete(*p, chat(model, "x"), nullptr);
      ASSERT_FALSE(r);
      messages.push_back(r.error().error.message);
    }
  }
  {
    // A key the upstream refuses and names in its answer.
    ::setenv("AIFN_TEST_OPENAI_WRONG_KEY", "sk-wrong-9876543210zyxwvutsWRONG", 1);
    auto p = provider(server_.url("localhost") + "/v1", "env:AIFN_TEST_OPENAI_WRONG_KEY");
    auto r = complete(*p, chat("gpt-x", "x"), nullptr);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().error.type, ErrorType::upstream_error);
    EXPECT_FALSE(r.error().retryable);
    EXPECT_NE(r.error().error.message.find("refused the provider's key"), std::string::npos);
    messages.push_back(r.error().error.message);
    Collect sink;
    auto s = complete(*p, chat("gpt-x", "x"), &sink);
    ASSERT_FALSE(s);
    messages.push_back(s.error().error.message);
  }
  ASSERT_NE(messages[0].find("[redacted]"), std::string::npos) << messages[0];
  for (const auto& m : messages) {
    EXPECT_EQ(m.find(kKey), std::string::npos) << m;
    EXPECT_EQ(m.find("sk-test-0"), std::string::npos) << m;
    EXPECT_EQ(m.find("sk-wrong"), std::string::npos) << m;
  }
  std::string log = logs.text();
  EXPECT_NE(log.find("upstream retry"), std::string::npos);  // the capture works
  EXPECT_EQ(log.find(kKey), std::string::npos);
  EXPECT_EQ(log.find("sk-wrong"), std::string::npos);
  EXPECT_EQ(log.find("Bearer"), std::string::npos);
}

TEST(OpenAIProviderKeys, ResolverErrorsNameTheReferenceOnly) {
  auto resolve = env_key_resolver();
  ::unsetenv("AIFN_TEST_UNSET_KEY_VAR");
  auto missing = resolve("env:AIFN_TEST_UNSET_KEY_VAR");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("env:AIFN_TEST_UNSET_KEY_VAR"), std::string::npos);
  EXPECT_FALSE(resolve("secret:openai"));
  EXPECT_FALSE(resolve("sk-literal-key"));
  EXPECT_EQ(missing.error().message.find("sk-literal"), std::string::npos);
  EXPECT_EQ(*resolve(""), "");

  net::io_context io;
  config::Provider cfg;
  cfg.name = "up";
  cfg.base_url = "https://example.invalid/v1";
  cfg.api_key = "sk-literal-key";
  auto p = OpenAIProvider::create(io.get_executor(), cfg, resolve);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message.find("sk-literal-key"), std::string::npos) << p.error().message;
}

TEST(OpenAIProviderKeys, SecretsComeFromTheStore) {
  std::map<std::string, std::string> store{{"OPENAI", "sk-from-the-store-0123456789"}};
  auto resolve = secret_key_resolver([&](const std::string& name) -> Expected<std::optional<std::string>> {
    if (name == "BROKEN") return fail(ErrorType::internal, "store is down");
    auto it = store.find(name);
    return it == store.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
  });
  EXPECT_EQ(*resolve("secret:OPENAI"), "sk-from-the-store-0123456789");
  auto missing = resolve("secret:NOPE");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().type, ErrorType::unavailable);
  EXPECT_NE(missing.error().message.find("secret:NOPE"), std::string::npos);
  EXPECT_FALSE(resolve("secret:BROKEN"));
  ::setenv("AIFN_TEST_OPENAI_ENV_KEY", "sk-env", 1);
  EXPECT_EQ(*resolve("env:AIFN_TEST_OPENAI_ENV_KEY"), "sk-env");
}

TEST(OpenAIProviderBody, OnlySetSamplingFieldsAndStreamOptions) {
  CompletionRequest r;
  r.model = "m";
  r.chat = false;
  r.prompt = "p";
  r.sampling.seed = 42;
  r.sampling.top_k = 5;
  r.extra["stream_options"] = json::object{{"other", 1}};
  auto o = json::parse(openai_completion_body(r, true)).as_object();
  EXPECT_EQ(o["seed"], 42);
  EXPECT_EQ(o["top_k"], 5);
  EXPECT_FALSE(o.contains("temperature"));
  EXPECT_EQ(o["stream_options"].as_object()["include_usage"], true);
  EXPECT_EQ(o["stream_options"].as_object()["other"], 1);
  EXPECT_FALSE(o.contains("messages"));
}

}  // namespace
}  // namespace aifn::models
