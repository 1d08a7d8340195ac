#include "gateway/openai_request.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include <openssl/evp.h>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace aifn::gateway {
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxModelName = 256;
constexpr std::size_t kMaxMessages = 4096;
constexpr std::size_t kMaxEmbeddingInputs = 2048;
constexpr std::size_t kMaxStops = 4;
constexpr std::int64_t kMaxTokensCeiling = 1 << 20;

tl::unexpected<V1Error> bad(std::string param, std::string message) {
  return tl::unexpected(V1Error{Error(ErrorType::bad_request, std::move(message)), std::move(param), {}});
}

// A field that is absent or null counts as unset.
const json::value* field(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

V1Expected<std::optional<double>> number(const json::object& o, std::string_view key, double lo, double hi) {
  auto* v = field(o, key);
  if (!v) return std::optional<double>{};
  if (!v->is_number()) return bad(std::string(key), fmt::format("{} must be a number", key));
  double d = v->to_number<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    return bad(std::string(key), fmt::format("{} must be between {} and {}", key, lo, hi));
  return std::optional<double>{d};
}

V1Expected<std::optional<std::int64_t>> integer(const json::object& o, std::string_view key, std::int64_t lo,
                                                std::int64_t hi) {
  auto* v = field(o, key);
  if (!v) return std::optional<std::int64_t>{};
  std::int64_t i = 0;
  if (v->is_int64()) i = v->as_int64();
  else if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(hi)) i = static_cast<std::int64_t>(v->as_uint64());
  else if (v->is_double() && std::trunc(v->as_double()) == v->as_double() && std::abs(v->as_double()) < 9e15)
    i = static_cast<std::int64_t>(v->as_double());
  else return bad(std::string(key), fmt::format("{} must be an integer", key));
  if (i < lo || i > hi) return bad(std::string(key), fmt::format("{} must be between {} and {}", key, lo, hi));
  return std::optional<std::int64_t>{i};
}

// Message content: a string or an array of {"type": "text", "text": ...} parts.
V1Expected<std::string> content_text(const json::value& v, const std::string& param) {
  if (v.is_null()) return std::string();
  if (v.is_string()) return std::string(v.as_string());
  if (!v.is_array()) return bad(param, "content must be a string or an array of text parts");
  std::string out;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const auto& part = v.as_array()[i];
    const auto* o = part.if_object();
    const json::value* type = o ? field(*o, "type") : nullptr;
    const json::value* text = o ? field(*o, "text") : nullptr;
    if (!type || !type->is_string() || type->as_string() != "text" || !text || !text->is_string())
      return bad(fmt::format("{}[{}]", param, i), "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    out += text->as_string();
  }
  return out;
}

V1Expected<std::string> model_of(const json::object& o) {
  auto* m = field(o, "model");
  if (!m) return bad("model", "model is required");
  if (!m->is_string() || m->as_string().empty() || m->as_string().size() > kMaxModelName)
    return bad("model", fmt::format("model must be a non-empty string of at most {} characters", kMaxModelName));
  return std::string(m->as_string());
}

V1Expected<void> sampling(const json::object& o, models::Sampling& s) {
  auto take = [](auto& dst, auto r) -> V1Expected<void> {
    if (!r) return tl::unexpected(r.error());
    if (*r) dst = **r;
    return {};
  };
  V1Expected<void> ok;
  if (!(ok = take(s.temperature, number(o, "temperature", 0, 2)))) return ok;
  if (!(ok = take(s.top_p, number(o, "top_p", 0, 1)))) return ok;
  if (s.top_p && *s.top_p <= 0) return bad("top_p", "top_p must be greater than 0");
  std::optional<std::int64_t> top_k;
  if (!(ok = take(top_k, integer(o, "top_k", 0, 1 << 20)))) return ok;
  if (top_k) s.top_k = static_cast<int>(*top_k);
  if (!(ok = take(s.min_p, number(o, "min_p", 0, 1)))) return ok;
  if (!(ok = take(s.presence_penalty, number(o, "presence_penalty", -2, 2)))) return ok;
  if (!(ok = take(s.frequency_penalty, number(o, "frequency_penalty", -2, 2)))) return ok;
  if (!(ok = take(s.repetition_penalty, number(o, "repetition_penalty", 0.01, 10)))) return ok;
  std::optional<std::int64_t> seed;
  if (!(ok = take(seed, integer(o, "seed", INT64_MIN, INT64_MAX)))) return ok;
  if (seed) s.seed = static_cast<std::uint64_t>(*seed);
  // max_completion_tokens is the newer name; either may be sent.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    std::optional<std::int64_t> mt;
    if (!(ok = take(mt, integer(o, key, 1, kMaxTokensCeiling)))) return ok;
    if (mt) s.max_tokens = static_cast<int>(*mt);
  }
  if (auto* st = field(o, "stop")) {
    if (st->is_string()) {
      s.stop.emplace_back(st->as_string());
    } else if (st->is_array() && st->as_array().size() <= kMaxStops) {
      for (const auto& x : st->as_array()) {
        if (!x.is_string()) return bad("stop", "stop must be a string or an array of strings");
        s.stop.emplace_back(x.as_string());
      }
    } else {
      return bad("stop", fmt::format("stop must be a string or an array of at most {} strings", kMaxStops));
    }
  }
  std::optional<std::int64_t> n;
  if (!(ok = take(n, integer(o, "n", 1, 128)))) return ok;
  if (n && *n != 1) return bad("n", "only n = 1 is supported");
  return {};
}

const std::set<std::string_view> kKnown = {
    "model",   "messages",          "prompt", "stream", "stream_options", "temperature",           "top_p",
    "top_k",   "min_p",             "presence_penalty",  "frequency_penalty", "repetition_penalty", "seed",
    "max_tokens", "max_completion_tokens", "stop", "n"};

}  // namespace

std::string v1_error_body(const V1Error& e) {
  json::object err;
  err["message"] = e.error.message;
  err["type"] = to_string(e.error.type);
  err["param"] = e.param.empty() ? json::value(nullptr) : json::value(e.param);
  err["code"] = e.code.empty() ? std::string(to_string(e.error.type)) : e.code;
  if (e.error.retry_after_seconds) err["retry_after"] = *e.error.retry_after_seconds;
  return json::serialize(json::object{{"error", std::move(err)}});
}

V1Expected<ParsedCompletion> parse_completion(const json::value& body, bool chat) {
  const auto* o = body.if_object();
  if (!o) return bad("", "the request body must be a JSON object");
  ParsedCompletion out;
  auto model = model_of(*o);
  if (!model) return tl::unexpected(model.error());
  out.model = std::move(*model);
  out.req.chat = chat;
  if (chat) {
    auto* msgs = field(*o, "messages");
    if (!msgs || !msgs->is_array() || msgs->as_array().empty() || msgs->as_array().size() > kMaxMessages)
      return bad("messages", fmt::format("messages must be a non-empty array of at most {} messages", kMaxMessages));
    for (std::size_t i = 0; i < msgs->as_array().size(); ++i) {
      std::string param = fmt::format("messages[{}]", i);
      const auto* m = msgs->as_array()[i].if_object();
      if (!m) return bad(param, "each message must be an object");
      auto* role = field(*m, "role");
      if (!role || !role->is_string()) return bad(param + ".role", "role is required");
      std::string r(role->as_string());
      if (r == "developer") r = "system";  // OpenAI's newer name for it
      if (r != "system" && r != "user" && r != "assistant")
        return bad(param + ".role", fmt::format("role \"{}\" is not supported (system, developer, user, assistant)", r));
      auto* c = m->if_contains("content");
      if (!c) return bad(param + ".content", "content is required");
      auto text = content_text(*c, param + ".content");
      if (!text) return tl::unexpected(text.error());
      out.req.messages.push_back({std::move(r), std::move(*text)});
    }
  } else {
    auto* p = field(*o, "prompt");
    if (!p) return bad("prompt", "prompt is required");
    if (p->is_string()) out.req.prompt = std::string(p->as_string());
    else if (p->is_array() && p->as_array().size() == 1 && p->as_array()[0].is_string())
      out.req.prompt = std::string(p->as_array()[0].as_string());
    else return bad("prompt", "prompt must be a string (or an array holding one string)");
  }
  if (auto r = sampling(*o, out.req.sampling); !r) return tl::unexpected(r.error());
  if (auto* s = field(*o, "stream")) {
    if (!s->is_bool()) return bad("stream", "stream must be a boolean");
    out.stream = s->as_bool();
  }
  if (auto* so = field(*o, "stream_options")) {
    if (!out.stream) return bad("stream_options", "stream_options is only allowed when stream is true");
    if (!so->is_object()) return bad("stream_options", "stream_options must be an object");
    if (auto* iu = field(so->as_object(), "include_usage")) {
      if (!iu->is_bool()) return bad("stream_options.include_usage", "include_usage must be a boolean");
      out.include_usage = iu->as_bool();
    }
  }
  for (const auto& kv : *o)
    if (!kKnown.contains(kv.key())) out.req.extra[kv.key()] = kv.value();
  return out;
}

V1Expected<ParsedEmbeddings> parse_embeddings(const json::value& body) {
  const auto* o = body.if_object();
  if (!o) return bad("", "the request body must be a JSON object");
  ParsedEmbeddings out;
  auto model = model_of(*o);
  if (!model) return tl::unexpected(model.error());
  out.model = std::move(*model);
  auto* in = field(*o, "input");
  if (!in) return bad("input", "input is required");
  if (in->is_string()) {
    out.inputs.emplace_back(in->as_string());
  } else if (in->is_array() && !in->as_array().empty() && in->as_array().size() <= kMaxEmbeddingInputs) {
    for (const auto& x : in->as_array()) {
      if (!x.is_string()) return bad("input", "input must be a string or an array of strings (token arrays are not supported)");
      out.inputs.emplace_back(x.as_string());
    }
  } else {
    return bad("input", fmt::format("input must be a string or a non-empty array of at most {} strings",
                                    kMaxEmbeddingInputs));
  }
  for (std::size_t i = 0; i < out.inputs.size(); ++i)
    if (out.inputs[i].empty()) return bad("input", fmt::format("input[{}] is empty", i));
  if (auto* f = field(*o, "encoding_format")) {
    if (!f->is_string() || (f->as_string() != "float" && f->as_string() != "base64"))
      return bad("encoding_format", "encoding_format must be \"float\" or \"base64\"");
    out.base64 = f->as_string() == "base64";
  }
  if (field(*o, "dimensions")) return bad("dimensions", "dimensions is not supported by this model");
  return out;
}

std::string floats_base64(const std::vector<float>& v) {
  std::string bytes(v.size() * 4, '\0');
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto u = std::bit_cast<std::uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace aifn::gateway
