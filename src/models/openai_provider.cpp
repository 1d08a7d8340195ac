#include "models/openai_provider.h"

#include <algorithm>
#include <cstdlib>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "models/upstream_sse.h"

namespace aifn::models {

namespace net = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxRelayedMessage = 500;
constexpr std::size_t kMaxUnstreamedAnswer = 16u << 20;

int int_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (auto p = it->value().if_int64()) return static_cast<int>(*p);
  if (auto p = it->value().if_uint64()) return static_cast<int>(*p);
  if (auto p = it->value().if_double()) return static_cast<int>(*p);
  return 0;
}

std::string string_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().get_string());
}

const json::object* object_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : it->value().if_object();
}

// choices[0] of an answer or a stream chunk.
const json::object* first_choice(const json::object& o) {
  auto it = o.find("choices");
  if (it == o.end() || !it->value().is_array() || it->value().get_array().empty()) return nullptr;
  return it->value().get_array()[0].if_object();
}

// The answer text of a choice: chat `message.content` / stream `delta.content`,
// or completions `text`.
std::string choice_text(const json::object& choice) {
  for (const char* k : {"message", "delta"})
    if (auto m = object_field(choice, k)) return string_field(*m, "content");
  return string_field(choice, "text");
}

int estimate_tokens(std::size_t bytes) { return static_cast<int>((bytes + 3) / 4); }

// The prompt's text: what a tokenizer counts when the upstream reports no usage.
std::string prompt_text(const CompletionRequest& req) {
  std::string t = req.prompt;
  for (const auto& m : req.messages) t += (t.empty() ? "" : "\n") + m.content;
  return t;
}

// The upstream's own error message, if its body has one.
std::string upstream_message(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    if (auto e = object_field(o, "error")) {
      if (auto m = string_field(*e, "message"); !m.empty()) return m;
    }
    if (auto m = string_field(o, "error"); !m.empty()) return m;
    if (auto m = string_field(o, "message"); !m.empty()) return m;
    return {};
  }
  return body;
}

// One streamed completion in progress: decodes SSE events into text deltas.
struct StreamState {
  TextSink* sink = nullptr;
  SseDecoder decoder;
  std::vector<std::string> events;
  Completion out;
  int deltas = 0;
  bool have_usage = false;
  bool done = false;       // `data: [DONE]` seen
  bool cancelled = false;  // the sink returned false
  std::optional<Error> error;  // a malformed or error event
  bool saw_event = false;
  std::string raw;  // the body while no event came: an upstream that ignored `stream` answers JSON

  net::awaitable<bool> drain() {
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (!co_await on_event(events[i])) {
        events.clear();
        co_return false;
      }
    }
    events.clear();
    co_return true;
  }

  net::awaitable<bool> on_event(const std::string& data) {
    saw_event = true;
    raw.clear();
    if (data == "[DONE]") {
      done = true;
      co_return true;
    }
    boost::system::error_code ec;
    json::value v = json::parse(data, ec);
    if (ec || !v.is_object()) {
      error = Error(ErrorType::upstream_error, "the upstream sent a stream event that is not a JSON object");
      co_return false;
    }
    const auto& o = v.get_object();
    if (o.contains("error")) {
      error = Error(ErrorType::upstream_error, "the upstream reported an error mid-stream: " + upstream_message(data));
      co_return false;
    }
    if (auto u = object_field(o, "usage")) {
      out.usage.prompt_tokens = int_field(*u, "prompt_tokens");
      out.usage.completion_tokens = int_field(*u, "completion_tokens");
      have_usage = true;
    }
    auto choice = first_choice(o);
    if (!choice) co_return true;
    if (auto fr = string_field(*choice, "finish_reason"); !fr.empty()) out.finish_reason = fr;
    std::string text = choice_text(*choice);
    if (text.empty()) co_return true;
    ++deltas;
    out.text += text;
    if (sink && !co_await sink->on_text(text)) {
      cancelled = true;
      co_return false;
    }
    co_return true;
  }
};

// A whole (non-streamed) chat or text completion answer.
// `count(text)`: the usage when the answer carries none.
Expected<Completion> completion_from_answer(const std::string& body,
                                            const std::function<TokenUsage(const std::string&)>& count) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  const json::object* choice = (!ec && v.is_object()) ? first_choice(v.get_object()) : nullptr;
  if (!choice) return fail(ErrorType::upstream_error, "the answer has no choices");
  Completion c;
  c.text = choice_text(*choice);
  c.finish_reason = string_field(*choice, "finish_reason");
  if (c.finish_reason.empty()) c.finish_reason = "stop";
  if (auto u = object_field(v.get_object(), "usage")) {
    c.usage.prompt_tokens = int_field(*u, "prompt_tokens");
    c.usage.completion_tokens = int_field(*u, "completion_tokens");
  } else {
    c.usage = count(c.text);
  }
  return c;
}

// Not built inside a coroutine: g++ 12 mishandles initializer lists there.
std::string embeddings_body(const std::string& model, const std::vector<std::string>& inputs) {
  json::array in;
  for (const auto& s : inputs) in.push_back(json::string(s));
  json::object body{{"model", model}, {"input", std::move(in)}, {"encoding_format", "float"}};
  return json::serialize(body);
}

}  // namespace

KeyResolver env_key_resolver() {
  return [](std::string_view ref) -> Expected<std::string> {
    if (ref.empty()) return std::string();
    if (ref.starts_with("env:")) {
      std::string var(ref.substr(4));
      const char* v = std::getenv(var.c_str());
      if (!v || !*v) return fail(ErrorType::unavailable, fmt::format("api_key {}: the environment variable is not set", ref));
      return std::string(v);
    }
    if (ref.starts_with("secret:"))
      return fail(ErrorType::unavailable, fmt::format("api_key {}: no secret store is available to resolve it", ref));
    return fail(ErrorType::bad_request, "api_key must be \"env:NAME\" or \"secret:NAME\", never a literal key");
  };
}

KeyResolver secret_key_resolver(SecretGetter get_secret) {
  return [get = std::move(get_secret), env = env_key_resolver()](std::string_view ref) -> Expected<std::string> {
    if (!ref.starts_with("secret:")) return env(ref);
    std::string name(ref.substr(7));
    auto v = get(name);
    if (!v) return fail(v.error().type, fmt::format("api_key {}: {}", ref, v.error().message));
    if (!*v) return fail(ErrorType::unavailable, fmt::format("api_key {}: no such secret (set it with `aifn secrets`)", ref));
    return std::move(**v);
  };
}

UpstreamOptions upstream_options(const config::Provider& cfg) {
  UpstreamOptions o;
  if (cfg.connect_timeout) o.connect_timeout = *cfg.connect_timeout;
  if (cfg.first_byte_timeout) o.first_byte_timeout = *cfg.first_byte_timeout;
  if (cfg.idle_timeout) o.idle_timeout = *cfg.idle_timeout;
  if (cfg.max_attempts) o.max_attempts = *cfg.max_attempts;
  o.ca_file = cfg.ca_file;
  return o;
}

std::string openai_completion_body(const CompletionRequest& req, bool stream) {
  json::object o = req.extra;  // the client's other fields first; ours win
  o["model"] = req.model;
  if (req.chat) {
    json::array msgs;
    for (const auto& m : req.messages) msgs.push_back(json::object{{"role", m.role}, {"content", m.content}});
    o["messages"] = std::move(msgs);
  } else {
    o["prompt"] = req.prompt;
  }
  const Sampling& s = req.sampling;
  if (s.temperature) o["temperature"] = *s.temperature;
  if (s.top_p) o["top_p"] = *s.top_p;
  if (s.top_k) o["top_k"] = *s.top_k;
  if (s.min_p) o["min_p"] = *s.min_p;
  if (s.presence_penalty) o["presence_penalty"] = *s.presence_penalty;
  if (s.frequency_penalty) o["frequency_penalty"] = *s.frequency_penalty;
  if (s.repetition_penalty) o["repetition_penalty"] = *s.repetition_penalty;
  if (s.seed) o["seed"] = *s.seed;
  if (s.max_tokens) o["max_tokens"] = *s.max_tokens;
  if (!s.stop.empty()) {
    json::array stop;
    for (const auto& x : s.stop) stop.push_back(json::string(x));
    o["stop"] = std::move(stop);
  }
  o["stream"] = stream;
  if (stream) {
    // Ask for the final usage chunk (OpenAI and vLLM send it only on request).
    auto so = o.find("stream_options");
    if (so == o.end() || !so->value().is_object()) o["stream_options"] = json::object();
    o["stream_options"].as_object()["include_usage"] = true;
  } else {
    o.erase("stream_options");
  }
  return json::serialize(o);
}

Expected<std::unique_ptr<OpenAIProvider>> OpenAIProvider::create(net::any_io_executor ex, const config::Provider& cfg,
                                                                 const KeyResolver& resolve_key, UpstreamOptions opts) {
  std::unique_ptr<OpenAIProvider> p(new OpenAIProvider());
  p->name_ = cfg.name;
  p->base_url_ = cfg.base_url;
  while (!p->base_url_.empty() && p->base_url_.back() == '/') p->base_url_.pop_back();
  if (!p->base_url_.starts_with("http://") && !p->base_url_.starts_with("https://"))
    return fail(ErrorType::bad_request, fmt::format("provider {}: base_url must start with http:// or https://", cfg.name));
  p->key_ref_ = cfg.api_key;
  p->resolve_key_ = resolve_key;
  auto key = resolve_key(cfg.api_key);
  if (!key && key.error().type != ErrorType::unavailable) {  // a literal key, say: a config error
    Error e = key.error();
    e.message = fmt::format("provider {}: {}", cfg.name, e.message);
    return tl::unexpected(e);
  }
  // A key that is not there yet (a secret not set, an unset variable) leaves
  // the provider unavailable until reload_key() finds it: `aifn secrets set`
  // brings it up without a restart.
  if (key) p->key_ = std::move(*key);
  else p->reload_key();
  if (!cfg.ca_file.empty()) opts.ca_file = cfg.ca_file;
  auto client = UpstreamClient::create(ex, std::move(opts));
  if (!client) {
    Error e = client.error();
    e.message = fmt::format("provider {}: {}", cfg.name, e.message);
    return tl::unexpected(e);
  }
  p->client_ = std::move(*client);
  return p;
}

TokenUsage OpenAIProvider::count_usage(const CompletionRequest& req, const std::string& text, int deltas) const {
  const std::string prompt = prompt_text(req);
  std::optional<int> in, out;
  if (count_tokens_) {
    in = count_tokens_(prompt);
    out = count_tokens_(text);
  }
  // Estimates: most servers stream one delta per token; ~4 bytes a token.
  return {in ? *in : estimate_tokens(prompt.size()),
          out ? *out : (deltas >= 0 ? deltas : estimate_tokens(text.size()))};
}

bool OpenAIProvider::key_uses_secret(std::string_view name) const {
  return key_ref_.starts_with("secret:") && std::string_view(key_ref_).substr(7) == name;
}

void OpenAIProvider::reload_key() {
  auto key = resolve_key_(key_ref_);
  std::lock_guard lock(key_mu_);
  if (!key) {
    key_error_ = Error(ErrorType::unavailable,
                       fmt::format("provider {}: its key {} is not available: {}", name_, key_ref_, key.error().message));
    return;
  }
  if (*key != key_) old_key_ = std::move(key_);
  key_ = std::move(*key);
  key_error_.reset();
}

std::string OpenAIProvider::key() const {
  std::lock_guard lock(key_mu_);
  return key_;
}

std::optional<ProviderError> OpenAIProvider::key_problem() const {
  std::lock_guard lock(key_mu_);
  if (!key_error_) return std::nullopt;
  return ProviderError{*key_error_, true};
}

UpstreamRequest OpenAIProvider::request(const char* method, std::string_view path, std::string body) const {
  UpstreamRequest r;
  r.method = method;
  r.url = base_url_ + std::string(path);
  r.body = std::move(body);
  if (std::string k = key(); !k.empty()) r.headers.emplace_back("Authorization", "Bearer " + k);
  return r;
}

std::string OpenAIProvider::mask_key(std::string text) const {
  // The whole key, and the recognisable head of it that some upstreams echo
  // ("Incorrect API key provided: sk-abc1****").
  auto mask = [&](std::string_view needle) {
    if (needle.size() < 6) return;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos))
      text.replace(pos, needle.size(), "[redacted]");
  };
  std::string keys[2];
  {
    std::lock_guard lock(key_mu_);
    keys[0] = key_;
    keys[1] = old_key_;
  }
  for (const std::string& k : keys) {
    mask(k);
    if (k.size() >= 16) mask(std::string_view(k).substr(0, 8));
  }
  std::replace_if(text.begin(), text.end(), [](unsigned char c) { return c < 0x20; }, ' ');
  if (text.size() > kMaxRelayedMessage) text = text.substr(0, kMaxRelayedMessage) + "…";
  return text;
}

ProviderError OpenAIProvider::error_from(const UpstreamResponse& res) const {
  int st = res.status;
  if (st == 401 || st == 403)
    return {Error(ErrorType::upstream_error,
                  fmt::format("provider {}: the upstream refused the provider's key (status {})", name_, st)),
            false};
  std::string msg = mask_key(upstream_message(res.body));
  std::string said = msg.empty() ? "" : ": " + msg;
  if (st == 429) {
    Error e(ErrorType::unavailable, fmt::format("provider {}: the upstream is rate limiting (429){}", name_, said));
    e.retry_after_seconds = res.retry_after_seconds;
    return {std::move(e), true};
  }
  if (st >= 500)
    return {Error(ErrorType::upstream_error, fmt::format("provider {}: the upstream failed ({}){}", name_, st, said)),
            true};
  ErrorType t = st == 404   ? ErrorType::not_found
                : st == 413 ? ErrorType::payload_too_large
                : st >= 400 ? ErrorType::bad_request
                            : ErrorType::upstream_error;  // 1xx/3xx: not an answer we can use
  return {Error(t, fmt::format("provider {}: the upstream answered {}{}", name_, st, said)), false};
}

ProviderError OpenAIProvider::error_from(const Error& e, bool streamed) const {
  // Transport failures (connect, TLS, deadlines, a broken answer) may fall
  // back to the next target as long as the caller has seen nothing.
  return {Error(e.type, mask_key(fmt::format("provider {}: {}", name_, e.message))), !streamed};
}

net::awaitable<ProviderResult<std::vector<std::string>>> OpenAIProvider::list_models() {
  // One attempt: /v1/models asks every provider in turn and should not wait
  // out another provider's backoff; a failure here only leaves its models unlisted.
  if (auto e = key_problem()) co_return tl::unexpected(*e);
  UpstreamRequest req = request("GET", "/models", {});
  req.max_attempts = 1;
  auto res = co_await client_->fetch(req);
  if (!res) co_return tl::unexpected(error_from(res.error(), false));
  if (res->status / 100 != 2) co_return tl::unexpected(error_from(*res));
  boost::system::error_code ec;
  json::value v = json::parse(res->body, ec);
  const json::array* data = nullptr;
  if (!ec && v.is_object()) {
    auto it = v.get_object().find("data");
    if (it != v.get_object().end()) data = it->value().if_array();
  }
  if (!data)
    co_return tl::unexpected(ProviderError{
        Error(ErrorType::upstream_error, fmt::format("provider {}: the model list is not {{\"data\": [...]}}", name_)), true});
  std::vector<std::string> ids;
  for (const auto& m : *data)
    if (auto o = m.if_object())
      if (auto id = string_field(*o, "id"); !id.empty()) ids.push_back(std::move(id));
  co_return ids;
}

net::awaitable<ProviderResult<Completion>> OpenAIProvider::complete(const CompletionRequest& req, TextSink* sink) {
  if (auto e = key_problem()) co_return tl::unexpected(*e);
  const char* path = req.chat ? "/chat/completions" : "/completions";
  if (!sink) {
    auto res = co_await client_->fetch(request("POST", path, openai_completion_body(req, false)));
    if (!res) co_return tl::unexpected(error_from(res.error(), false));
    if (res->status / 100 != 2) co_return tl::unexpected(error_from(*res));
    auto c = completion_from_answer(res->body, [&](const std::string& text) { return count_usage(req, text, -1); });
    if (!c) co_return tl::unexpected(ProviderError{Error(ErrorType::upstream_error, fmt::format("provider {}: {}", name_, c.error().message)), true});
    co_return std::move(*c);
  }

  StreamState st;
  st.sink = sink;
  BodySink body = [&st](std::string_view bytes) -> net::awaitable<bool> {
    if (!st.saw_event && st.raw.size() < kMaxUnstreamedAnswer) st.raw.append(bytes);
    if (!st.decoder.feed(bytes, st.events)) {
      st.error = Error(ErrorType::upstream_error, "a stream line from the upstream is too long");
      co_return false;
    }
    co_return co_await st.drain();
  };
  auto res = co_await client_->stream(request("POST", path, openai_completion_body(req, true)), body);
  if (!res) co_return tl::unexpected(error_from(res.error(), !st.out.text.empty()));
  if (res->status / 100 != 2) co_return tl::unexpected(error_from(*res));
  if (!res->stopped) {
    st.decoder.finish(st.events);
    co_await st.drain();
  }
  if (!st.saw_event && !st.error && !res->stopped && res->content_type.starts_with("application/json")) {
    // An upstream that does not stream answered whole: relay it as one piece.
    auto c = completion_from_answer(st.raw, [&](const std::string& text) { return count_usage(req, text, -1); });
    if (!c) co_return tl::unexpected(ProviderError{Error(ErrorType::upstream_error, fmt::format("provider {}: {}", name_, c.error().message)), true});
    if (!c->text.empty() && !co_await sink->on_text(c->text)) c->finish_reason = "cancelled";
    co_return std::move(*c);
  }
  if (st.error) co_return tl::unexpected(error_from(*st.error, !st.out.text.empty()));
  if (!st.have_usage) {
    // No usage chunk (an upstream that ignores stream_options).
    st.out.usage = count_usage(req, st.out.text, st.deltas);
  }
  if (st.cancelled) {
    st.out.finish_reason = "cancelled";
  } else if (st.out.finish_reason.empty()) {
    if (!st.done)
      co_return tl::unexpected(error_from(
          Error(ErrorType::upstream_error, "the stream ended before the answer was complete"), !st.out.text.empty()));
    st.out.finish_reason = "stop";
  }
  co_return std::move(st.out);
}

net::awaitable<ProviderResult<Embeddings>> OpenAIProvider::embed(const std::string& model,
                                                                 const std::vector<std::string>& inputs) {
  if (auto e = key_problem()) co_return tl::unexpected(*e);
  auto res = co_await client_->fetch(request("POST", "/embeddings", embeddings_body(model, inputs)));
  if (!res) co_return tl::unexpected(error_from(res.error(), false));
  if (res->status / 100 != 2) co_return tl::unexpected(error_from(*res));
  auto bad = [&](const char* what) {
    return tl::unexpected(ProviderError{
        Error(ErrorType::upstream_error, fmt::format("provider {}: the embeddings answer {}", name_, what)), true});
  };
  boost::system::error_code ec;
  json::value v = json::parse(res->body, ec);
  if (ec || !v.is_object()) co_return bad("is not a JSON object");
  auto it = v.get_object().find("data");
  if (it == v.get_object().end() || !it->value().is_array()) co_return bad("has no data array");
  Embeddings out;
  out.vectors.resize(inputs.size());
  std::vector<bool> seen(inputs.size(), false);
  std::size_t pos = 0;
  for (const auto& item : it->value().get_array()) {
    auto o = item.if_object();
    if (!o) co_return bad("has a data item that is not an object");
    std::size_t idx = o->contains("index") ? static_cast<std::size_t>(int_field(*o, "index")) : pos;
    ++pos;
    auto e = o->find("embedding");
    if (idx >= inputs.size() || seen[idx] || e == o->end() || !e->value().is_array())
      co_return bad("does not hold one embedding per input");
    seen[idx] = true;
    for (const auto& x : e->value().get_array()) {
      if (!x.is_number()) co_return bad("has an embedding that is not a list of numbers");
      out.vectors[idx].push_back(static_cast<float>(x.to_number<double>()));
    }
  }
  if (std::find(seen.begin(), seen.end(), false) != seen.end()) co_return bad("does not hold one embedding per input");
  if (auto u = object_field(v.get_object(), "usage")) out.prompt_tokens = int_field(*u, "prompt_tokens");
  co_return out;
}

}  // namespace aifn::models
