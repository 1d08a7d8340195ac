// /admin/keys and /admin/secrets (DESIGN.md §6, §9). A key's text is in the
// answer to its creation only; secrets are listed by name, never by value.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway.h"

namespace aifn::gateway {
namespace net = boost::asio;
using http::bhttp::verb;

namespace {

boost::json::object key_json(const store::ApiKeyRow& k) {
  boost::json::array scopes;
  for (auto& s : k.scopes) scopes.push_back(boost::json::string(s));
  return {{"id", k.id},         {"name", k.name},           {"scopes", std::move(scopes)},
          {"rate", k.rate},     {"tokens", k.tokens},       {"budget", k.budget},
          {"created_at", k.created_ms}, {"revoked", k.revoked}};
}

boost::json::object secret_json(const store::SecretRow& s) {
  return {{"name", s.name}, {"updated_at", s.updated_ms}};
}

// The optional string field `key` of a JSON object, or an error naming it.
Expected<std::string> string_field(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return std::string();
  if (!v->is_string()) return fail(ErrorType::bad_request, fmt::format("\"{}\" must be a string", key));
  return std::string(v->get_string());
}

Expected<security::NewKey> parse_new_key(const boost::json::value& doc) {
  if (!doc.is_object()) return fail(ErrorType::bad_request, "send a JSON object");
  const auto& o = doc.get_object();
  security::NewKey req;
  for (auto [key, field] : {std::pair{"name", &req.name}, std::pair{"rate", &req.rate},
                            std::pair{"tokens", &req.tokens}, std::pair{"budget", &req.budget}}) {
    auto v = string_field(o, key);
    if (!v) return tl::unexpected(v.error());
    *field = std::move(*v);
  }
  auto* s = o.if_contains("scopes");
  if (!s || !s->is_array()) return fail(ErrorType::bad_request, "\"scopes\" (an array of strings) is required");
  for (auto& x : s->get_array()) {
    if (!x.is_string()) return fail(ErrorType::bad_request, "\"scopes\" must be an array of strings");
    req.scopes.emplace_back(x.get_string());
  }
  return req;
}

// Replaces the instances of every function that lists the secret.
int recycle_holders(functions::Registry& registry, const std::string& secret) {
  int n = 0;
  for (auto& d : registry.all()) {
    const auto& names = d->spec->cfg.secrets;
    if (d->pool && std::find(names.begin(), names.end(), secret) != names.end()) {
      d->pool->recycle();
      ++n;
    }
  }
  return n;
}

}  // namespace

net::awaitable<void> Gateway::admin_keys(http::Exchange& ex, std::string_view rest) {
  auto m = ex.method();
  if (rest == "keys" && m == verb::post) {
    auto body = co_await ex.read_body(64 * 1024);
    if (!body) {
      co_await ex.respond_error(body.error());
      co_return;
    }
    auto doc = functions::parse_json(*body);
    if (!doc) {
      co_await ex.respond_error(doc.error());
      co_return;
    }
    auto req = parse_new_key(*doc);
    if (!req) {
      co_await ex.respond_error(req.error());
      co_return;
    }
    auto made = d_.keys.create(*req);
    if (!made) {
      co_await ex.respond_error(made.error());
      co_return;
    }
    spdlog::info("event=key_created id={} name=\"{}\" request_id={}", made->first.id, made->first.name, ex.request_id);
    if (auto r = d_.auth.key_created(); !r) spdlog::error("event=auth_error message=\"{}\"", r.error().message);
    auto out = key_json(made->first);
    out["key"] = made->second;
    if (!d_.auth.admin_key_file().empty()) out["admin_key_file"] = d_.auth.admin_key_file();
    co_await ex.respond(201, "application/json", boost::json::serialize(out));
    co_return;
  }
  if (rest == "keys" && m == verb::get) {
    auto keys = d_.keys.list();
    if (!keys) {
      co_await ex.respond_error(keys.error());
      co_return;
    }
    boost::json::array arr;
    for (auto& k : *keys) arr.push_back(key_json(k));
    boost::json::object out;  // (no braced literals inside co_await: g++ 12)
    out["keys"] = std::move(arr);
    co_await ex.respond(200, "application/json", boost::json::serialize(out));
    co_return;
  }
  if (rest.rfind("keys/", 0) == 0 && m == verb::delete_) {
    std::string id(rest.substr(5));
    auto r = d_.keys.revoke(id);
    if (!r) co_await ex.respond_error(r.error());
    else if (!*r) co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no key with id \"{}\"", id)));
    else {
      spdlog::info("event=key_revoked id={} request_id={}", id, ex.request_id);
      co_await ex.respond(204, std::string_view(), std::string());
    }
    co_return;
  }
  co_await ex.respond_error(Error(ErrorType::method_not_allowed, "use POST /admin/keys, GET /admin/keys or DELETE /admin/keys/{id}"));
}

net::awaitable<void> Gateway::admin_secrets(http::Exchange& ex, std::string_view rest) {
  auto m = ex.method();
  if (rest == "secrets" && m == verb::get) {
    auto list = d_.secrets.list();
    if (!list) {
      co_await ex.respond_error(list.error());
      co_return;
    }
    boost::json::array arr;
    for (auto& s : *list) arr.push_back(secret_json(s));
    boost::json::object out;
    out["secrets"] = std::move(arr);
    co_await ex.respond(200, "application/json", boost::json::serialize(out));
    co_return;
  }
  if (rest.rfind("secrets/", 0) != 0) {
    co_await ex.respond_error(Error(ErrorType::not_found, "no such admin route"));
    co_return;
  }
  std::string name(rest.substr(8));
  if (m == verb::put) {
    auto body = co_await ex.read_body(security::kMaxSecretBytes);
    if (!body) {
      co_await ex.respond_error(body.error());
      co_return;
    }
    if (auto r = d_.secrets.set(name, *body); !r) {
      co_await ex.respond_error(r.error());
      co_return;
    }
    // Rotation needs no redeploy: instances holding the old value are
    // replaced; providers whose key it is use the new one from now on.
    int recycled = recycle_holders(d_.registry, name);
    int providers = d_.router ? d_.router->reload_keys(name) : 0;
    spdlog::info("event=secret_set name={} functions_recycled={} providers_reloaded={} request_id={}", name, recycled,
                 providers, ex.request_id);
    co_await ex.respond(204, std::string_view(), std::string());
    co_return;
  }
  if (m == verb::delete_) {
    auto r = d_.secrets.remove(name);
    if (!r) co_await ex.respond_error(r.error());
    else if (!*r) co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no secret named \"{}\"", name)));
    else {
      int providers = d_.router ? d_.router->reload_keys(name) : 0;
      spdlog::info("event=secret_removed name={} providers_without_key={} request_id={}", name, providers,
                   ex.request_id);
      co_await ex.respond(204, std::string_view(), std::string());
    }
    co_return;
  }
  co_await ex.respond_error(Error(ErrorType::method_not_allowed, "use PUT or DELETE /admin/secrets/{NAME}"));
}

}  // namespace aifn::gateway
