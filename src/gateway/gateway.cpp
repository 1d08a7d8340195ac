#include "gateway/gateway.h"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "metering/cost.h"

namespace aifn::gateway {
namespace net = boost::asio;
using http::bhttp::verb;

std::string query_param(std::string_view query, std::string_view key) {
  std::string ref = "?" + std::string(query);
  auto parsed = boost::urls::parse_relative_ref(ref);
  if (!parsed) return {};
  for (auto p : parsed->params())
    if (p.key == key) return p.value;
  return {};
}

namespace {

std::int64_t parse_time_ms(const std::string& s) {
  // Epoch milliseconds or seconds; "" = unbounded.
  if (s.empty()) return 0;
  try {
    auto v = std::stoll(s);
    return v < 100'000'000'000LL ? v * 1000 : v;
  } catch (...) {
    return -1;
  }
}

boost::json::object function_json(const functions::Deployed& d) {
  const auto& c = d.spec->cfg;
  boost::json::object o{{"name", c.name},
                        {"version", d.spec->version},
                        {"runtime", c.runtime},
                        {"handler", c.handler},
                        {"timeout_ms", c.timeout.count()},
                        {"memory_bytes", c.memory},
                        {"max_request_bytes", d.max_request},
                        {"concurrency", c.concurrency},
                        {"min_instances", c.min_instances},
                        {"max_instances", c.max_instances},
                        {"idle_timeout_ms", c.idle_timeout.count()},
                        {"queue_timeout_ms", c.queue_timeout.count()},
                        {"on_timeout", c.on_timeout},
                        {"on_disconnect", c.on_disconnect},
                        {"has_input_schema", d.schema != nullptr},
                        {"cache_ttl_ms", c.cache_ttl ? c.cache_ttl->count() : 0},
                        {"instances", d.pool ? d.pool->live_instances() : 0}};
  boost::json::array models;
  for (auto& m : c.models) models.push_back(boost::json::string(m));
  o["models"] = std::move(models);
  return o;
}

boost::json::object instance_json(const runtime::InstanceInfo& i) {
  return {{"id", i.id},           {"pid", i.pid},       {"state", i.state}, {"inflight", i.inflight},
          {"idle_ms", i.idle_ms}, {"init_ms", i.init_ms}, {"calls", i.calls}, {"version", i.version}};
}

}  // namespace

net::awaitable<void> Gateway::handle(http::Exchange& ex) {
  ex.request_id = request_id_for(ex.field("X-Request-Id"));
  auto path = ex.path();
  auto who = d_.auth.check(path, ex.field("Authorization"));
  if (who && who->key) {
    ex.key_id = who->key->row.id;
    if (auto r = d_.limits.take_request(*who->key); !r) who = tl::unexpected(r.error());
  }
  if (!who) {
    ex.close_after();  // the body, if any, is not read
    co_await ex.respond_error(who.error());
    co_return;
  }
  if (path.rfind("/fn/", 0) == 0) {
    auto name = path.substr(4);
    if (name.find('/') == std::string_view::npos) {
      co_await invoke(ex, std::string(name));
      co_return;
    }
  }
  if (co_await route_jobs(ex, path)) co_return;  // /fn/{name}/jobs, /jobs..., Lambda invoke
  if (path == "/healthz") {
    co_await ex.respond(200, "application/json", R"({"status":"ok"})");
  } else if (path == "/readyz") {
    co_await ready(ex);
  } else if (path == "/metrics") {
    std::map<std::string, std::size_t> live;
    for (auto& d : d_.registry.all()) live[d->spec->cfg.name] = d->pool ? d->pool->live_instances() : 0;
    co_await ex.respond(200, "text/plain; version=0.0.4", metrics_.render(live));
  } else if (path.rfind("/v1/", 0) == 0) {
    co_await v1(ex, path.substr(4));
  } else if (path.rfind("/admin/", 0) == 0) {
    co_await admin(ex, path.substr(7));
  } else {
    co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no route for {}", path)));
  }
}

net::awaitable<void> Gateway::ready(http::Exchange& ex) {
  bool store_ok = d_.store.healthy();
  boost::json::object o{{"store", store_ok ? "ok" : "unreachable"}, {"functions", d_.registry.all().size()}};
  o["status"] = store_ok ? "ready" : "not_ready";
  co_await ex.respond(store_ok ? 200 : 503, "application/json", boost::json::serialize(o));
}

net::awaitable<void> Gateway::admin(http::Exchange& ex, std::string_view rest) {
  auto m = ex.method();
  if (rest == "functions" && m == verb::get) {
    boost::json::array arr;
    for (auto& d : d_.registry.all()) arr.push_back(function_json(*d));
    boost::json::object out;
    out["functions"] = std::move(arr);
    co_await ex.respond(200, "application/json", boost::json::serialize(out));
    co_return;
  }
  if (rest.rfind("functions/", 0) == 0) {
    auto tail = rest.substr(10);
    auto slash = tail.find('/');
    std::string name(tail.substr(0, slash));
    auto sub = slash == std::string_view::npos ? std::string_view() : tail.substr(slash + 1);
    if (sub == "instances" && m == verb::get) {
      auto d = d_.registry.find(name);
      if (!d) {
        co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
        co_return;
      }
      boost::json::array arr;
      if (d->pool)
        for (auto& i : d->pool->instances()) arr.push_back(instance_json(i));
      boost::json::object out;
      out["function"] = name;
      out["instances"] = std::move(arr);
      co_await ex.respond(200, "application/json", boost::json::serialize(out));
      co_return;
    }
    if (!sub.empty()) {
      co_await ex.respond_error(Error(ErrorType::not_found, "no such admin route"));
      co_return;
    }
    if (m == verb::get) {
      auto d = d_.registry.find(name);
      if (!d) co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
      else co_await ex.respond(200, "application/json", boost::json::serialize(function_json(*d)));
      co_return;
    }
    if (m == verb::put) {
      auto body = co_await ex.read_body(256ull * 1024 * 1024);
      if (!body) {
        co_await ex.respond_error(body.error());
        co_return;
      }
      auto d = d_.registry.deploy_archive(name, *body);
      if (!d) {
        spdlog::warn("event=deploy_refused function={} request_id={} error=\"{}\"", name, ex.request_id,
                     d.error().message);
        co_await ex.respond_error(d.error());
        co_return;
      }
      spdlog::info("event=deployed function={} version={} bytes={}", name, (*d)->spec->version, body->size());
      co_await ex.respond(200, "application/json", boost::json::serialize(function_json(**d)));
      co_return;
    }
    if (m == verb::delete_) {
      auto r = d_.registry.remove(name);
      if (!r) co_await ex.respond_error(r.error());
      else co_await ex.respond(204, std::string_view(), std::string());
      co_return;
    }
    co_await ex.respond_error(Error(ErrorType::method_not_allowed, "use GET, PUT or DELETE"));
    co_return;
  }
  if (rest == "usage" && m == verb::get) {
    auto by = metering::parse_group_by(query_param(ex.query(), "group_by").empty()
                                           ? std::string("function")
                                           : query_param(ex.query(), "group_by"));
    auto since = parse_time_ms(query_param(ex.query(), "since"));
    auto until = parse_time_ms(query_param(ex.query(), "until"));
    if (!by || since < 0 || until < 0) {
      co_await ex.respond_error(by ? Error(ErrorType::bad_request, "since/until must be epoch seconds or ms")
                                   : by.error());
      co_return;
    }
    d_.meter.flush();  // a short wait: the report includes every call answered so far
    auto groups = d_.store.aggregate_usage(*by, since, until);
    if (!groups) {
      co_await ex.respond_error(groups.error());
      co_return;
    }
    co_await ex.respond(200, "application/json",
                        boost::json::serialize(metering::usage_report(*groups, *by, d_.config.pricing)));
    co_return;
  }
  if (rest == "cost" && m == verb::get) {
    auto since = parse_time_ms(query_param(ex.query(), "since"));
    auto until = parse_time_ms(query_param(ex.query(), "until"));
    if (since < 0 || until < 0) {
      co_await ex.respond_error(Error(ErrorType::bad_request, "since/until must be epoch seconds or ms"));
      co_return;
    }
    d_.meter.flush();
    auto rows = d_.store.usage_capacity(since, until);
    if (!rows) {
      co_await ex.respond_error(rows.error());
      co_return;
    }
    co_await ex.respond(200, "application/json",
                        boost::json::serialize(metering::cost_report(*rows, d_.config.pricing, since,
                                                                     until != 0 ? until : epoch_ms_now())));
    co_return;
  }
  if (rest == "keys" || rest.rfind("keys/", 0) == 0) {
    co_await admin_keys(ex, rest);
    co_return;
  }
  if (rest == "secrets" || rest.rfind("secrets/", 0) == 0) {
    co_await admin_secrets(ex, rest);
    co_return;
  }
  if (rest.rfind("logs/", 0) == 0 && m == verb::get) {
    co_await admin_logs(ex, std::string(rest.substr(5)));
    co_return;
  }
  co_await ex.respond_error(Error(ErrorType::not_found, "no such admin route"));
}

net::awaitable<void> Gateway::admin_logs(http::Exchange& ex, const std::string& name) {
  if (!d_.registry.find(name)) {
    co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
    co_return;
  }
  auto since = parse_time_ms(query_param(ex.query(), "since"));
  bool follow = query_param(ex.query(), "follow") == "1";
  std::string text;
  for (auto& l : d_.logs.recent(name, std::max<std::int64_t>(since, 0))) text += to_json_line(l);
  if (!follow) {
    co_await ex.respond(200, "application/x-ndjson", std::move(text));
    co_return;
  }
  http::StreamHead head{http::bhttp::status::ok, 11};
  head.set(http::bhttp::field::content_type, "application/x-ndjson");
  if (!co_await ex.start_stream(head)) co_return;
  if (!text.empty() && !co_await ex.write_chunk(text)) co_return;
  // New lines go to a queue that this coroutine drains, so one writer only.
  struct Tail {
    explicit Tail(net::any_io_executor e) : wake(e) {}
    std::deque<std::string> lines;
    net::steady_timer wake;
    bool gone = false;
  };
  auto tail = std::make_shared<Tail>(co_await net::this_coro::executor);
  auto handle = d_.logs.follow(name, [tail](const runtime::LogLine& l) {
    tail->lines.push_back(to_json_line(l));
    tail->wake.cancel();
  });
  ex.watch_disconnect([tail] {
    tail->gone = true;
    tail->wake.cancel();
  });
  while (!tail->gone) {
    while (!tail->lines.empty()) {
      auto s = std::move(tail->lines.front());
      tail->lines.pop_front();
      if (!co_await ex.write_chunk(s)) tail->gone = true;
    }
    if (tail->gone) break;
    tail->wake.expires_after(std::chrono::seconds(15));
    boost::system::error_code ec;
    co_await tail->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  d_.logs.unfollow(handle);
  ex.close_after();
}

}  // namespace aifn::gateway
