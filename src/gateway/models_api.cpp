// /v1/*: the OpenAI-compatible model routes (DESIGN.md §6 Models, §8): auth by
// invocation token, request checks, the router call, OpenAI's response and
// SSE chunk shapes, and metering of the tokens used.
#include <strings.h>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cache/lru_cache.h"
#include "functions/schema.h"
#include "gateway/gateway.h"
#include "gateway/openai_request.h"

namespace aifn::gateway {
namespace net = boost::asio;
namespace json = boost::json;

namespace {

json::object usage_json(const models::TokenUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

std::string server_timing(double load_ms) { return fmt::format("model_load;dur={:.1f}", load_ms); }

// OpenAI's finish_reason; "cancelled" only happens when nobody is reading.
std::string finish_json(const std::string& reason) { return reason == "cancelled" ? "stop" : reason; }

// Shapes of one answer, for whole responses and stream chunks alike.
struct Shape {
  bool chat = true;
  std::string id;
  std::int64_t created = 0;
  std::string model;

  json::object base(bool chunk) const {
    return {{"id", id},
            {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
            {"created", created},
            {"model", model}};
  }
  // A stream chunk with text (delta) and/or a finish reason.
  std::string chunk(std::string_view text, const char* finish, bool with_role, bool usage_null) const {
    json::object o = base(true);
    json::object choice{{"index", 0}};
    if (chat) {
      json::object delta;
      if (with_role) delta["role"] = "assistant";
      if (!text.empty() || with_role) delta["content"] = text;
      choice["delta"] = std::move(delta);
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish ? json::value(finish) : json::value(nullptr);
    o["choices"] = json::array{std::move(choice)};
    if (usage_null) o["usage"] = nullptr;
    return "data: " + json::serialize(o) + "\n\n";
  }
};

// Streams text as SSE chunks; the head goes out with the first text, so a
// call that fails before producing any still gets a plain JSON error.
class SseSink : public models::TextSink {
 public:
  SseSink(http::Exchange& ex, const Shape& shape, bool include_usage)
      : ex_(ex), shape_(shape), include_usage_(include_usage) {}

  net::awaitable<bool> on_text(std::string_view text) override {
    if (gone || *gone_flag) co_return false;
    bool ok = co_await start();
    if (ok) {
      std::string c = shape_.chunk(text, nullptr, false, include_usage_);
      ok = co_await ex_.write_chunk(c);
    }
    if (!ok) gone = true;
    co_return ok;
  }
  void on_model_load(double ms) override { load_ms = ms; }

  net::awaitable<bool> start() {
    if (started) co_return !gone;
    started = true;
    http::StreamHead head{http::bhttp::status::ok, 11};
    head.set(http::bhttp::field::content_type, "text/event-stream");
    head.set(http::bhttp::field::cache_control, "no-cache");
    head.set("X-Accel-Buffering", "no");
    if (load_ms > 0) head.set("Server-Timing", server_timing(load_ms));
    if (!cache_header.empty()) head.set("X-Aifn-Cache", cache_header);
    // (No co_await inside && or ?: here: g++ 12 miscompiles it.)
    bool ok = co_await ex_.start_stream(head);
    if (ok && shape_.chat) {
      std::string role = shape_.chunk("", nullptr, true, include_usage_);
      ok = co_await ex_.write_chunk(role);
    }
    if (!ok) gone = true;
    co_return !gone;
  }

  bool started = false;
  bool gone = false;
  std::shared_ptr<bool> gone_flag = std::make_shared<bool>(false);  // set by the disconnect watch
  double load_ms = 0;
  std::string cache_header;  // X-Aifn-Cache for deterministic requests

 private:
  http::Exchange& ex_;
  const Shape& shape_;
  bool include_usage_;
};

std::string models_json(const std::vector<models::ModelEntry>& entries) {
  json::array data;
  for (const auto& m : entries)
    data.push_back(json::object{{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", m.owned_by}});
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::string embeddings_json(const models::Embeddings& e, const ParsedEmbeddings& p) {
  json::array data;
  for (std::size_t i = 0; i < e.vectors.size(); ++i) {
    json::object item{{"object", "embedding"}, {"index", i}};
    if (p.base64) {
      item["embedding"] = floats_base64(e.vectors[i]);
    } else {
      json::array v;
      v.reserve(e.vectors[i].size());
      for (float x : e.vectors[i]) v.push_back(x);
      item["embedding"] = std::move(v);
    }
    data.push_back(std::move(item));
  }
  json::object out{{"object", "list"},
                   {"data", std::move(data)},
                   {"model", p.model},
                   {"usage", {{"prompt_tokens", e.prompt_tokens}, {"total_tokens", e.prompt_tokens}}}};
  return json::serialize(out);
}

std::string completion_json(const Shape& shape, const models::Completion& c) {
  json::object out = shape.base(false);
  json::object choice{{"index", 0}};
  if (shape.chat) choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
  else choice["text"] = c.text;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_json(c.finish_reason);
  out["choices"] = json::array{std::move(choice)};
  out["usage"] = usage_json(c.usage);
  return json::serialize(out);
}

std::string usage_chunk(const Shape& shape, const models::TokenUsage& u) {
  json::object o = shape.base(true);
  o["choices"] = json::array{};
  o["usage"] = usage_json(u);
  return "data: " + json::serialize(o) + "\n\n";
}

using ServedCompletion = models::ProviderResult<models::Served<models::Completion>>;

// Deterministic requests (temperature 0 or a seed) give the same answer
// again, so they may be answered from the cache.
bool cacheable(const ParsedCompletion& p) {
  const auto& s = p.req.sampling;
  return s.seed.has_value() || (s.temperature && *s.temperature == 0);
}

// Everything that shapes the answer (the whole request but how it is
// delivered), and who asks: tenants never see each other's answers.
std::string model_cache_key(const json::value& doc, bool chat, std::string_view tenant) {
  json::value v = doc;
  if (auto* o = v.if_object()) {
    o->erase("stream");
    o->erase("stream_options");
  }
  return cache::cache_key({"v1", chat ? "chat" : "text", tenant, cache::canonical_json(v)});
}

std::string completion_to_cache(const models::Served<models::Completion>& s) {
  return json::serialize(json::object{{"text", s.value.text},
                                      {"finish", s.value.finish_reason},
                                      {"prompt_tokens", s.value.usage.prompt_tokens},
                                      {"completion_tokens", s.value.usage.completion_tokens},
                                      {"target", s.target}});
}

std::optional<models::Served<models::Completion>> completion_from_cache(const std::string& text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  models::Served<models::Completion> s;
  s.value.text = json::value_to<std::string>(o.at("text"));
  s.value.finish_reason = json::value_to<std::string>(o.at("finish"));
  s.value.usage.prompt_tokens = static_cast<int>(o.at("prompt_tokens").to_number<std::int64_t>());
  s.value.usage.completion_tokens = static_cast<int>(o.at("completion_tokens").to_number<std::int64_t>());
  s.target = json::value_to<std::string>(o.at("target"));
  return s;
}

V1Error v1_error(Error e, std::string param = {}, std::string code = {}) {
  return V1Error{std::move(e), std::move(param), std::move(code)};
}

}  // namespace

net::awaitable<void> Gateway::v1(http::Exchange& ex, std::string_view rest) {
  const auto started = std::chrono::steady_clock::now();
  const auto start_ms = epoch_ms_now();
  std::shared_ptr<models::Grant> grant;
  std::string target;  // "provider/model" that served the call
  models::TokenUsage usage;
  bool cache_hit = false;  // answered from the cache or by an identical call in flight

  // An API key (checked by Auth before this route): its token rate and daily
  // budget apply; tokens are charged once known.
  std::optional<security::ApiKey> key;
  double tokens_taken = 0;  // taken from the key's token bucket up front
  double reserved = -1;     // held against the key's budget; < 0: none

  // The tokens of a call made with an invocation token go on that function
  // call's usage record; other calls get their own record (kind "model").
  auto record = [&](int status, std::string_view error_type) {
    if (grant && !grant->recorded) {
      if (!target.empty()) grant->add(target, usage.prompt_tokens, usage.completion_tokens);
      return;
    }
    store::UsageRecord r;
    r.id = ex.request_id;
    r.function = grant ? grant->function : "";
    r.version = grant ? grant->version : "";
    r.kind = "model";
    r.start_ms = start_ms;
    r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                        .count();
    r.model = target;
    r.tokens_in = usage.prompt_tokens;
    r.tokens_out = usage.completion_tokens;
    r.status = status;
    r.error_type = std::string(error_type);
    r.key = grant ? "" : ex.key_id;
    r.cache_hit = cache_hit;
    if (key) {
      double used = usage.prompt_tokens + usage.completion_tokens;
      if (used > tokens_taken) d_.limits.charge_tokens(*key, used - tokens_taken);
      if (reserved >= 0) d_.limits.settle(*key, reserved, metering::record_cost(r, d_.config.pricing));
    }
    d_.meter.record(std::move(r));
  };
  auto reject = [&](const V1Error& e) -> net::awaitable<void> {
    int status = http_status(e.error.type);
    record(status, to_string(e.error.type));
    http::Response res{static_cast<http::bhttp::status>(status), 11};
    res.set(http::bhttp::field::content_type, "application/json");
    if (e.error.retry_after_seconds) res.set(http::bhttp::field::retry_after, std::to_string(*e.error.retry_after_seconds));
    res.body() = v1_error_body(e);
    co_await ex.respond(res);
  };
  auto error_of = [](const models::ProviderError& pe) {
    V1Error e{pe.error, {}, {}};
    if (pe.error.type == ErrorType::not_found) {
      e.param = "model";
      e.code = "model_not_found";
    }
    return e;
  };

  // Auth: API keys (scope "models") were checked by Auth in handle(); an
  // invocation token ("aifn_inv_…") is let through to be checked here: it
  // must belong to a call that is still running.
  std::string_view token;
  if (auto auth = ex.field("Authorization"); auth.size() > 7 && ::strncasecmp(auth.data(), "Bearer ", 7) == 0)
    token = auth.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.rfind("aifn_inv_", 0) == 0) {
    if (d_.tokens) grant = d_.tokens->find(token);
    if (!grant) {
      ex.close_after();
      co_await reject(v1_error(
          Error(ErrorType::unauthorized, "the bearer token is unknown, or the call it belonged to has ended"), "",
          "invalid_api_key"));
      co_return;
    }
  }

  if (!grant && !ex.key_id.empty()) key = d_.keys.find(ex.key_id);

  const auto method = ex.method();
  const bool is_models = rest == "models";
  const bool is_chat = rest == "chat/completions";
  const bool is_completions = rest == "completions";
  const bool is_embeddings = rest == "embeddings";
  if (!is_models && !is_chat && !is_completions && !is_embeddings) {
    ex.close_after();
    co_await reject(v1_error(Error(ErrorType::not_found, fmt::format("no route for /v1/{}", rest))));
    co_return;
  }
  if (method != (is_models ? http::bhttp::verb::get : http::bhttp::verb::post)) {
    ex.close_after();
    co_await reject(v1_error(Error(ErrorType::method_not_allowed, is_models ? "use GET" : "use POST")));
    co_return;
  }
  if (!d_.router) {
    ex.close_after();
    co_await reject(v1_error(Error(ErrorType::unavailable, "the model gateway is not running")));
    co_return;
  }

  if (is_models) {
    auto entries = co_await d_.router->list();
    co_await ex.respond(200, "application/json", models_json(entries));
    co_return;
  }

  auto body = co_await ex.read_body(d_.config.max_request);
  if (!body) {
    co_await reject(v1_error(body.error()));
    co_return;
  }
  auto doc = functions::parse_json(*body);
  if (!doc) {
    co_await reject(v1_error(doc.error()));
    co_return;
  }
  auto forbidden = [&](const std::string& model) -> std::optional<V1Error> {
    if (!grant || grant->allows(model)) return std::nullopt;
    return V1Error{Error(ErrorType::forbidden, fmt::format("function {} may not call model \"{}\": list it in `models` "
                                                           "in its function.toml",
                                                           grant->function, model)),
                   "model", "model_not_allowed"};
  };

  // A key's limits, once the request's size is known: `expect` tokens are
  // taken from its token bucket, and the worst case (the request price plus
  // max_tokens at the dearest output price along the model's route) is held
  // against its daily budget (DESIGN.md §9, SECURITY.md).
  auto key_limits = [&](const std::string& model, double expect, int max_tokens) -> Expected<void> {
    if (!key) return {};
    if (auto r = d_.limits.take_tokens(*key, std::max(1.0, expect)); !r) return r;
    tokens_taken = std::max(1.0, expect);
    if (!key->budget_per_day) return {};
    double out_price = 0;
    if (auto targets = d_.router->resolve(model))
      for (const auto& t : *targets)
        if (auto it = d_.config.pricing.tokens.find(t.name()); it != d_.config.pricing.tokens.end())
          out_price = std::max(out_price, it->second.output_per_million);
    double worst = d_.config.pricing.per_million_requests / 1e6 + max_tokens * out_price / 1e6;
    if (auto r = d_.limits.reserve(*key, worst); !r) return r;
    reserved = worst;
    return {};
  };
  // Both checks a parsed request passes before any model work.
  auto admit = [&](const std::string& model, double expect, int max_tokens) -> std::optional<V1Error> {
    if (auto f = forbidden(model)) return f;
    if (auto lim = key_limits(model, expect, max_tokens); !lim) return v1_error(lim.error());
    return std::nullopt;
  };

  if (is_embeddings) {
    auto p = parse_embeddings(*doc);
    if (!p) {
      co_await reject(p.error());
      co_return;
    }
    if (auto e = admit(p->model, static_cast<double>(p->inputs.size()), 0)) {
      co_await reject(*e);
      co_return;
    }
    auto r = co_await d_.router->embed(p->model, p->inputs);
    if (!r) {
      co_await reject(error_of(r.error()));
      co_return;
    }
    target = r->target;
    usage.prompt_tokens = r->value.prompt_tokens;
    auto out = embeddings_json(r->value, *p);
    co_await ex.respond(200, "application/json", out);
    record(200, "");
    co_return;
  }

  auto p = parse_completion(*doc, is_chat);
  if (!p) {
    co_await reject(p.error());
    co_return;
  }
  // Unset max_tokens: count a typical answer up front; the rest is charged after.
  const int expect_out = p->req.sampling.max_tokens.value_or(256);
  if (auto e = admit(p->model, expect_out, expect_out)) {
    co_await reject(*e);
    co_return;
  }
  Shape shape;
  shape.chat = is_chat;
  shape.id = (is_chat ? "chatcmpl-" : "cmpl-") + ex.request_id;
  shape.created = start_ms / 1000;
  shape.model = p->model;

  // Deterministic requests: the exact-match cache, then coalescing with an
  // identical request already in flight; either way the answer is replayed
  // (as a stream when the caller streams) and no tokens are computed.
  std::string cache_key;
  if (d_.config.model_cache_ttl.count() > 0 && cacheable(*p))
    cache_key = model_cache_key(*doc, is_chat, grant ? "fn:" + grant->function : "key:" + ex.key_id);
  SseSink sink(ex, shape, p->include_usage);
  sink.cache_header = cache_key.empty() ? "" : "miss";
  models::TextSink* live = p->stream ? &sink : nullptr;
  if (p->stream) ex.watch_disconnect([gone = sink.gone_flag] { *gone = true; });
  std::function<net::awaitable<ServedCompletion>()> call = [&]() -> net::awaitable<ServedCompletion> {
    co_return co_await d_.router->complete(p->model, p->req, live);
  };
  std::optional<ServedCompletion> got;
  if (!cache_key.empty()) {
    if (auto hit = responses_.get(cache_key))
      if (auto c = completion_from_cache(hit->body)) got = ServedCompletion(std::move(*c));
    if (!got) {
      bool shared = false;
      got = co_await model_flights_.run(cache_key, call, &shared);
      // A shared answer cut short because its own reader left is no answer.
      if (shared && got->has_value() && (*got)->value.finish_reason == "cancelled") got.reset();
      else cache_hit = shared;
    } else {
      cache_hit = true;
    }
    if (!got) got = co_await call();
    else if (!cache_hit && got->has_value() && (*got)->value.finish_reason != "cancelled")
      responses_.put(cache_key, {"application/json", completion_to_cache(**got)}, d_.config.model_cache_ttl);
  } else {
    got = co_await call();
  }
  auto& r = *got;
  if (cache_hit) sink.cache_header = "hit";

  if (!p->stream) {
    if (!r) {
      co_await reject(error_of(r.error()));
      co_return;
    }
    target = r->target;
    const auto& c = r->value;
    if (!cache_hit) usage = c.usage;
    http::Response res{http::bhttp::status::ok, 11};
    res.set(http::bhttp::field::content_type, "application/json");
    if (c.model_load_ms > 0) res.set("Server-Timing", server_timing(c.model_load_ms));
    if (!cache_key.empty()) res.set("X-Aifn-Cache", sink.cache_header);
    res.body() = completion_json(shape, c);
    bool delivered = co_await ex.respond(res);
    record(delivered ? 200 : 499, delivered ? "" : "client_disconnected");
    co_return;
  }

  if (!r) {
    if (!sink.started) {
      co_await reject(error_of(r.error()));
      co_return;
    }
    // Headers are gone: tell the reader in-band, then cut the stream short.
    record(http_status(r.error().error.type), to_string(r.error().error.type));
    if (!sink.gone) co_await ex.write_chunk("data: " + v1_error_body(error_of(r.error())) + "\n\n");
    ex.close_after();
    co_return;
  }
  if (cache_hit && !r->value.text.empty()) co_await sink.on_text(r->value.text);  // the replay
  target = r->target;
  if (!cache_hit) usage = r->value.usage;
  // (No co_await inside && or ?: here: g++ 12 miscompiles it.)
  bool ok = !sink.gone;
  if (ok) ok = co_await sink.start();
  if (ok) {
    std::string last = shape.chunk("", finish_json(r->value.finish_reason).c_str(), false, p->include_usage);
    ok = co_await ex.write_chunk(last);
  }
  if (ok && p->include_usage) {
    std::string u = usage_chunk(shape, r->value.usage);  // the answer's own counts, also when replayed
    ok = co_await ex.write_chunk(u);
  }
  if (ok) ok = co_await ex.write_chunk("data: [DONE]\n\n");
  if (ok) ok = co_await ex.end_stream();
  if (!ok) ex.close_after();
  record(ok ? 200 : 499, ok ? "" : "client_disconnected");
}

}  // namespace aifn::gateway
