// POST /fn/{name}: the synchronous and streamed call path.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway.h"
#include "metering/metering.h"

namespace aifn::gateway {
namespace net = boost::asio;
using runtime::EventKind;

namespace {

std::int64_t epoch_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_sse(std::string_view content_type) { return content_type.rfind("text/event-stream", 0) == 0; }

}  // namespace

net::awaitable<void> Gateway::invoke(http::Exchange& ex, const std::string& name) {
  auto started = std::chrono::steady_clock::now();
  auto start_ms = epoch_ms_now();
  auto dep = d_.registry.find(name);
  if (!dep) {
    co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
    co_return;
  }
  const auto& cfg = dep->spec->cfg;
  // The call's invocation token: accepted by /v1/* while the call runs, and
  // the model tokens it used go on this call's usage record.
  std::shared_ptr<models::Grant> grant;
  std::optional<models::TokenScope> token_scope;
  auto finish = [&](int status, const std::string& error_type, const runtime::Invocation* inv, bool streamed) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics_.call(name, status, error_type, secs, inv && inv->cold_start);
    store::UsageRecord r;
    r.id = ex.request_id;
    r.function = name;
    r.version = dep->spec->version;
    r.kind = streamed ? "stream" : "sync";
    r.start_ms = start_ms;
    r.status = status;
    r.error_type = error_type;
    r.memory_mb = static_cast<std::int64_t>(cfg.memory / (1024 * 1024));
    if (inv) {
      r.cold_start = inv->cold_start;
      r.init_ms = inv->init_ms;
      r.duration_ms = inv->exec_ms();
      r.billed_ms = inv->exec_started == runtime::Clock::time_point{} ? 0 : std::max<std::int64_t>(1, r.duration_ms);
      r.gb_seconds = metering::gb_seconds(r.memory_mb, r.billed_ms);
    }
    if (grant) {
      r.model = grant->model;
      r.tokens_in = grant->tokens_in;
      r.tokens_out = grant->tokens_out;
      grant->recorded = true;
    }
    d_.meter.record(std::move(r));
  };
  auto reject = [&](const Error& e) -> net::awaitable<void> {
    finish(http_status(e.type), std::string(to_string(e.type)), nullptr, false);
    co_await ex.respond_error(e);
  };

  if (ex.method() != http::bhttp::verb::post) {
    ex.close_after();
    co_await reject(Error(ErrorType::method_not_allowed, "use POST to call a function"));
    co_return;
  }
  auto ct = ex.field("Content-Type");
  if (ct.rfind("multipart/", 0) == 0) {
    ex.close_after();
    co_await reject(Error(ErrorType::unsupported_media_type, "send the event as a JSON body, not multipart"));
    co_return;
  }
  auto body = co_await ex.read_body(dep->max_request);
  if (!body) {
    if (body.error().type == ErrorType::payload_too_large)
      body.error().message += fmt::format(" (max_request of {})", name);
    co_await reject(body.error());
    co_return;
  }
  std::string_view text = *body;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) text = "{}";
  auto doc = functions::parse_json(text);
  if (!doc) {
    co_await reject(doc.error());
    co_return;
  }
  if (dep->schema) {
    if (auto v = dep->schema->validate(*doc); !v) {
      co_await reject(v.error());
      co_return;
    }
  }
  if (!dep->pool) {
    // runtime = "prompt": no instance; the model answers (prompt_call.cpp).
    PromptCallMeter pm;
    co_await invoke_prompt(ex, *dep, *doc, pm);
    if (ex.client_gone() && pm.status == 200) {
      pm.status = 499;
      pm.error_type = "client_disconnected";
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    metrics_.call(name, pm.status, pm.error_type, secs, false);
    store::UsageRecord r;
    r.id = ex.request_id;
    r.function = name;
    r.version = dep->spec->version;
    r.kind = pm.streamed ? "stream" : "sync";
    r.start_ms = start_ms;
    r.status = pm.status;
    r.error_type = pm.error_type;
    r.duration_ms = static_cast<std::int64_t>(secs * 1000);
    r.billed_ms = std::max<std::int64_t>(1, r.duration_ms);  // no instance: no memory, no GB-s
    r.model = pm.model;
    r.tokens_in = pm.tokens_in;
    r.tokens_out = pm.tokens_out;
    d_.meter.record(std::move(r));
    co_return;
  }
  auto got = co_await dep->pool->invoke(ex.request_id, std::string(text));
  if (!got) {
    co_await reject(got.error());
    co_return;
  }
  auto inv = std::move(*got);
  if (d_.tokens && !inv->token.empty()) {
    grant = std::make_shared<models::Grant>();
    grant->function = name;
    grant->version = dep->spec->version;
    grant->request_id = ex.request_id;
    grant->models = cfg.models;
    d_.tokens->add(inv->token, grant);
    token_scope.emplace(d_.tokens, inv->token);
  }
  // on_disconnect = cancel: a caller who leaves stops the work; what ran is billed.
  ex.watch_disconnect([w = std::weak_ptr<runtime::Invocation>(inv)] {
    if (auto i = w.lock()) i->abort(Error(ErrorType::bad_request, "the client disconnected"));
  });

  auto timing = [&] {
    return fmt::format("init;dur={}, exec;dur={}", inv->init_ms,
                       std::chrono::duration<double, std::milli>(
                           (inv->finished == runtime::Clock::time_point{} ? runtime::Clock::now() : inv->finished) -
                           (inv->exec_started == runtime::Clock::time_point{} ? runtime::Clock::now()
                                                                              : inv->exec_started))
                           .count());
  };

  bool streaming = false;
  std::string stream_type;
  for (;;) {
    auto ev = co_await inv->next_event();
    switch (ev.kind) {
      case EventKind::result: {
        http::Response res{http::bhttp::status::ok, 11};
        res.set(http::bhttp::field::content_type, "application/json");
        res.set("X-Aifn-Cold-Start", inv->cold_start ? "true" : "false");
        res.set("Server-Timing", timing());
        res.body() = std::move(ev.data);
        co_await ex.respond(res);
        finish(200, "", inv.get(), false);
        co_return;
      }
      case EventKind::stream_start: {
        streaming = true;
        stream_type = ev.data;
        http::StreamHead head{http::bhttp::status::ok, 11};
        head.set(http::bhttp::field::content_type, ev.data);
        head.set("X-Aifn-Cold-Start", inv->cold_start ? "true" : "false");
        head.set("Server-Timing", fmt::format("init;dur={}", inv->init_ms));
        head.set(http::bhttp::field::cache_control, "no-cache");
        head.set("X-Accel-Buffering", "no");
        if (!co_await ex.start_stream(head)) inv->abort(Error(ErrorType::bad_request, "the client disconnected"));
        break;
      }
      case EventKind::chunk:
        if (!co_await ex.write_chunk(ev.data)) inv->abort(Error(ErrorType::bad_request, "the client disconnected"));
        break;
      case EventKind::done:
        co_await ex.end_stream();
        finish(200, "", inv.get(), true);
        co_return;
      case EventKind::failed: {
        const Error& e = ev.error;
        bool client_left = ex.client_gone();
        int status = client_left ? 499 : http_status(e.type);
        std::string type = client_left ? "client_disconnected" : std::string(to_string(e.type));
        if (e.type == ErrorType::timeout || e.type == ErrorType::instance_crashed ||
            e.type == ErrorType::out_of_memory)
          spdlog::warn("event=call_failed function={} request_id={} type={} message=\"{}\"", name, ex.request_id,
                       type, e.message);
        if (!streaming) {
          if (!client_left) {
            http::Response res{static_cast<http::bhttp::status>(http_status(e.type)), 11};
            res.set(http::bhttp::field::content_type, "application/json");
            res.set("X-Aifn-Cold-Start", inv->cold_start ? "true" : "false");
            res.set("Server-Timing", timing());
            if (e.type == ErrorType::function_error) res.set("X-Amz-Function-Error", "Unhandled");
            res.body() = error_body(e);
            co_await ex.respond(res);
          }
        } else if (!client_left) {
          // Headers are gone already: tell SSE readers in-band, then cut the
          // stream without its last chunk so every HTTP client sees it fail.
          if (is_sse(stream_type)) co_await ex.write_chunk("event: error\ndata: " + error_body(e) + "\n\n");
          ex.close_after();
        }
        finish(status, type, inv.get(), streaming);
        co_return;
      }
    }
  }
}

}  // namespace aifn::gateway
