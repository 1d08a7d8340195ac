#include "models/prompt.h"

#include <cctype>
#include <optional>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace aifn::models {
namespace json = boost::json;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// "a.b.c" -> the value at input.a.b.c, or null when a step is missing.
const json::value* lookup(const json::value& input, std::string_view path) {
  if (path == ".") return &input;
  const json::value* v = &input;
  while (!path.empty()) {
    auto dot = path.find('.');
    auto key = path.substr(0, dot);
    const auto* o = v->if_object();
    if (!o) return nullptr;
    v = o->if_contains(key);
    if (!v) return nullptr;
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  return v;
}

std::optional<json::value> try_parse(std::string_view s) {
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 64;
  auto v = json::parse(s, ec, {}, opt);
  if (ec) return std::nullopt;
  return v;
}

}  // namespace

Expected<std::string> render_prompt(std::string_view tmpl, const json::value& input) {
  std::string out;
  for (;;) {
    auto open = tmpl.find("{{");
    if (open == std::string_view::npos) {
      out += tmpl;
      return out;
    }
    out += tmpl.substr(0, open);
    auto close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos) return fail(ErrorType::bad_request, "the prompt template has an unclosed {{");
    auto expr = trim(tmpl.substr(open + 2, close - open - 2));
    bool as_json = false;
    if (expr.rfind("json ", 0) == 0) {
      as_json = true;
      expr = trim(expr.substr(5));
    }
    if (expr.empty()) return fail(ErrorType::bad_request, "the prompt template has an empty {{ }}");
    const json::value* v = lookup(input, expr);
    if (!v) {
      Error e(ErrorType::invalid_input, fmt::format("the input has no field \"{}\" that the prompt template uses", expr));
      std::string p = "/" + std::string(expr);
      for (auto& c : p)
        if (c == '.') c = '/';
      e.details.push_back({p, "required by the prompt template"});
      return tl::unexpected(std::move(e));
    }
    if (!as_json && v->is_string()) out += v->as_string();
    else out += json::serialize(*v);
    tmpl.remove_prefix(close + 2);
  }
}

Expected<json::value> extract_json(std::string_view answer) {
  auto a = trim(answer);
  if (auto v = try_parse(a)) return *v;
  // A fenced block: ```json ... ``` (or a bare ``` ... ```).
  if (auto f = a.find("```"); f != std::string_view::npos) {
    auto start = a.find('\n', f);
    auto end = start == std::string_view::npos ? start : a.find("```", start);
    if (end != std::string_view::npos)
      if (auto v = try_parse(trim(a.substr(start, end - start)))) return *v;
  }
  // The outermost object or array in surrounding prose.
  for (auto [o, c] : {std::pair{'{', '}'}, std::pair{'[', ']'}}) {
    auto first = a.find(o);
    auto last = a.rfind(c);
    if (first != std::string_view::npos && last != std::string_view::npos && last > first)
      if (auto v = try_parse(a.substr(first, last - first + 1))) return *v;
  }
  return fail(ErrorType::upstream_error, "the model's answer holds no valid JSON");
}

}  // namespace aifn::models
