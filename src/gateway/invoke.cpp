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

// AWS Lambda's Invoke API reports a failed execution as 200 with
// X-Amz-Function-Error: Unhandled and {"errorType","errorMessage"}; failures
// before the function ran (throttled, ...) keep aifn's status and body.
void lambda_error_shape(const Error& e, http::Response& res) {
  std::string type;
  if (e.type == ErrorType::function_error) type = e.function_error_type.empty() ? "Error" : e.function_error_type;
  else if (e.type == ErrorType::timeout) type = "Sandbox.Timedout";
  else if (e.type == ErrorType::instance_crashed || e.type == ErrorType::out_of_memory) type = "Runtime.ExitError";
  else return;
  res.result(http::bhttp::status::ok);
  res.set("X-Amz-Function-Error", "Unhandled");
  if (e.type == ErrorType::function_error && !e.function_error_body.empty())
    res.body() = e.function_error_body;
  else
    res.body() = boost::json::serialize(boost::json::object{{"errorType", type}, {"errorMessage", e.message}});
}

}  // namespace

net::awaitable<void> Gateway::invoke(http::Exchange& ex, const std::string& name, CallShape shape) {
  auto started = std::chrono::steady_clock::now();
  auto start_ms = epoch_ms_now();
  auto dep = d_.registry.find(name);
  if (!dep) {
    co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
    co_return;
  }
  const auto& cfg = dep->spec->cfg;
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
    co_await reject(Error(ErrorType::unavailable, "prompt functions need the model gateway, which is not built yet"));
    co_return;
  }
  // One execution, two shapes (DESIGN.md §4): on_timeout / on_disconnect =
  // "job" let this call turn into a background job without a restart.
  runtime::CallOptions call_opts;
  if (d_.jobs && (cfg.on_timeout == "job" || cfg.on_disconnect == "job")) {
    call_opts.handoff_timeout = cfg.job_timeout;
    call_opts.handoff_at_deadline = cfg.on_timeout == "job";
  }
  auto got = co_await dep->pool->invoke(ex.request_id, std::string(text), call_opts);
  if (!got) {
    co_await reject(got.error());
    co_return;
  }
  auto inv = std::move(*got);
  // A caller who leaves: on_disconnect = cancel stops the work (what ran is
  // billed); finish lets it complete; job keeps it running as a job.
  auto client_left = [w = std::weak_ptr<runtime::Invocation>(inv), mode = cfg.on_disconnect] {
    auto i = w.lock();
    if (!i || i->handed_off() || mode == "finish") return;
    if (mode == "job" && i->request_handoff()) return;
    i->abort(Error(ErrorType::bad_request, "the client disconnected"));
  };
  ex.watch_disconnect(client_left);

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
        if (!co_await ex.start_stream(head)) client_left();
        break;
      }
      case EventKind::chunk:
        if (!ex.client_gone() && !co_await ex.write_chunk(ev.data)) client_left();
        break;
      case EventKind::handoff: {
        if (streaming && !ex.client_gone()) {
          // The stream's head is out; it cannot become a 202 any more.
          inv->abort(Error(ErrorType::timeout, fmt::format("the function did not finish within its timeout of {}",
                                                           format_duration(cfg.timeout))));
          break;
        }
        std::string input(text);
        auto job = co_await d_.jobs->adopt(*dep, inv, input);
        if (!job) {
          inv->abort(job.error());
          break;
        }
        spdlog::info("event=call_became_job function={} request_id={} job={} reason={}", name, ex.request_id, job->id,
                     ex.client_gone() ? "client_disconnected" : "timeout");
        metrics_.call(name, 202, "", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                      inv->cold_start);
        if (!ex.client_gone()) {
          http::Response res{http::bhttp::status::accepted, 11};
          res.set(http::bhttp::field::content_type, "application/json");
          res.set(http::bhttp::field::location, "/jobs/" + job->id);
          res.set("X-Aifn-Cold-Start", inv->cold_start ? "true" : "false");
          res.body() = boost::json::serialize(
              boost::json::object{{"id", job->id}, {"status", job->status}, {"status_url", "/jobs/" + job->id}});
          co_await ex.respond(res);
        }
        co_return;  // the job records the call's usage when it ends
      }
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
            if (shape == CallShape::lambda) lambda_error_shape(e, res);
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
