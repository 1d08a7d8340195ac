// POST /fn/{name}: the synchronous and streamed call path.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway.h"
#include "cache/lru_cache.h"
#include "metering/metering.h"

namespace aifn::gateway {
namespace net = boost::asio;
using runtime::EventKind;

namespace {

// A streamed answer larger than this is not cached.
constexpr std::size_t kMaxCachedStream = 1 << 20;

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
  // The call's invocation token: accepted by /v1/* while the call runs, and
  // the model tokens it used go on this call's usage record.
  std::shared_ptr<models::Grant> grant;
  std::optional<models::TokenScope> token_scope;
  // A key with a daily budget reserves the call's worst case up front
  // (requests, memory x timeout) and settles to the real cost in finish().
  std::optional<security::ApiKey> budget_key;
  double reserved = 0;
  auto finish = [&](int status, const std::string& error_type, const runtime::Invocation* inv, bool streamed,
                    bool cache_hit = false) {
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
    r.memory_mb = static_cast<std::int64_t>(dep->spec->cfg.memory / (1024 * 1024));
    r.cache_hit = cache_hit;
    r.key = ex.key_id;
    if (inv) {
      r.cold_start = inv->cold_start;
      r.init_ms = inv->init_ms;
      r.duration_ms = inv->exec_ms();
      r.billed_ms = inv->billed_ms();
      r.gb_seconds = metering::gb_seconds(r.memory_mb, r.billed_ms);
    }
    if (grant) {
      r.model = grant->model;
      r.tokens_in = grant->tokens_in;
      r.tokens_out = grant->tokens_out;
      grant->recorded = true;
    }
    if (budget_key) d_.limits.settle(*budget_key, reserved, metering::record_cost(r, d_.config.pricing));
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
  if (auto key = ex.key_id.empty() ? std::nullopt : d_.keys.find(ex.key_id); key && key->budget_per_day) {
    const auto& c = dep->spec->cfg;
    double worst = d_.config.pricing.per_million_requests / 1e6 +
                   metering::gb_seconds(static_cast<std::int64_t>(c.memory / (1024 * 1024)), c.timeout.count()) *
                       d_.config.pricing.per_gb_second;
    if (auto r = d_.limits.reserve(*key, worst); !r) {
      co_await reject(r.error());
      co_return;
    }
    budget_key = std::move(key);
    reserved = worst;
  }
  // [cache] ttl: identical (canonical JSON) input to the same version is
  // answered from the cache without an instance.
  std::string cache_key;
  if (auto ttl = dep->spec->cfg.cache_ttl) {
    cache_key = cache::cache_key({name, dep->spec->version, cache::canonical_json(*doc)});
    if (auto hit = responses_.get(cache_key)) {
      http::Response res{http::bhttp::status::ok, 11};
      res.set(http::bhttp::field::content_type, hit->content_type);
      res.set("X-Aifn-Cache", "hit");
      res.set("X-Aifn-Cold-Start", "false");
      res.body() = std::move(hit->body);
      co_await ex.respond(res);
      finish(200, "", nullptr, false, true);
      co_return;
    }
  }
  // max_concurrency: a cap on the function's calls in flight, whoever makes
  // them (cache hits above do not count).
  if (int cap = dep->spec->cfg.max_concurrency; cap > 0 && in_flight_[name] >= cap) {
    Error e(ErrorType::throttled, fmt::format("function {} has its max_concurrency of {} calls in flight", name, cap));
    e.retry_after_seconds = 1;
    co_await reject(e);
    co_return;
  }
  struct InFlight {
    std::map<std::string, int>& calls;
    const std::string& name;
    InFlight(std::map<std::string, int>& c, const std::string& n) : calls(c), name(n) { ++calls[name]; }
    ~InFlight() {
      if (--calls[name] <= 0) calls.erase(name);
    }
  } slot(in_flight_, name);
  if (!dep->pool) {
    // runtime = "prompt": no instance; the model answers (prompt_call.cpp).
    PromptCallMeter pm;
    pm.cacheable = !cache_key.empty();
    co_await invoke_prompt(ex, *dep, *doc, pm);
    if (pm.cacheable && pm.status == 200 && !pm.answer_type.empty() && !ex.client_gone())
      responses_.put(cache_key, {pm.answer_type, std::move(pm.answer)}, *dep->spec->cfg.cache_ttl);
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
    r.key = ex.key_id;
    r.model = pm.model;
    r.tokens_in = pm.tokens_in;
    r.tokens_out = pm.tokens_out;
    if (budget_key) d_.limits.settle(*budget_key, reserved, metering::record_cost(r, d_.config.pricing));
    d_.meter.record(std::move(r));
    co_return;
  }
  // One execution, two shapes (DESIGN.md §4): on_timeout / on_disconnect =
  // "job" let this call turn into a background job without a restart.
  runtime::CallOptions call_opts;
  if (d_.jobs && (cfg.on_timeout == "job" || cfg.on_disconnect == "job")) {
    call_opts.handoff_timeout = cfg.job_timeout;
    call_opts.handoff_at_deadline = cfg.on_timeout == "job";
  }
  // A caller who leaves: on_disconnect = cancel stops the work (what ran is
  // billed), or takes the call out of the queue while it waits for an
  // instance; finish lets it complete; job keeps it running as a job.
  // One allocation per call: the watch's callback holds only the pointer.
  struct Caller {
    std::string mode;  // on_disconnect
    runtime::CallerWatch watch;
    std::weak_ptr<runtime::Invocation> call;  // once it has an instance
  };
  auto caller = std::make_shared<Caller>(Caller{cfg.on_disconnect, {}, {}});
  auto client_left = [caller] {
    auto i = caller->call.lock();
    if (!i) {
      if (caller->mode == "cancel") caller->watch.left();
      return;
    }
    if (i->handed_off() || caller->mode == "finish") return;
    if (caller->mode == "job" && i->request_handoff()) return;
    i->abort(Error(ErrorType::bad_request, "the client disconnected"));
  };
  ex.watch_disconnect(client_left);
  call_opts.caller = &caller->watch;
  auto got = co_await dep->pool->invoke(ex.request_id, std::string(text), call_opts);
  // A deploy landed while this call waited for an instance of the old
  // version: it runs on the new one (validated again: the schema may differ).
  for (std::shared_ptr<const functions::Deployed> fresh; !got && dep->pool->draining() &&
                                                         (fresh = d_.registry.find(name)) && fresh != dep;) {
    dep = fresh;
    if (!dep->pool || text.size() > dep->max_request) break;
    if (dep->schema) {
      if (auto v = dep->schema->validate(*doc); !v) {
        co_await reject(v.error());
        co_return;
      }
    }
    got = co_await dep->pool->invoke(ex.request_id, std::string(text), call_opts);
  }
  if (!got && ex.client_gone()) {
    finish(499, "client_disconnected", nullptr, false);  // never ran: nothing billed
    co_return;
  }
  if (!got) {
    co_await reject(got.error());
    co_return;
  }
  auto inv = std::move(*got);
  caller->call = inv;
  if (ex.client_gone()) client_left();  // left just as the call was granted an instance
  if (d_.tokens && !inv->token.empty()) {
    grant = std::make_shared<models::Grant>();
    grant->function = name;
    grant->version = dep->spec->version;
    grant->request_id = ex.request_id;
    grant->models = cfg.models;
    token_scope.emplace(d_.tokens, inv->token, grant);
  }
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
  std::string stream_copy;  // what a cached function streamed, to keep
  for (;;) {
    auto ev = co_await inv->next_event();
    switch (ev.kind) {
      case EventKind::result: {
        http::Response res{http::bhttp::status::ok, 11};
        res.set(http::bhttp::field::content_type, "application/json");
        res.set("X-Aifn-Cold-Start", inv->cold_start ? "true" : "false");
        res.set("Server-Timing", timing());
        if (!cache_key.empty()) {
          res.set("X-Aifn-Cache", "miss");
          responses_.put(cache_key, {"application/json", ev.data}, *dep->spec->cfg.cache_ttl);
        }
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
        if (!cache_key.empty()) head.set("X-Aifn-Cache", "miss");
        if (!co_await ex.start_stream(head)) client_left();
        break;
      }
      case EventKind::chunk:
        // A cached stream is replayed whole; heartbeats are not part of it.
        if (!cache_key.empty() && ev.data != ": ping\n\n") {
          if (stream_copy.size() + ev.data.size() <= kMaxCachedStream) stream_copy += ev.data;
          else cache_key.clear();
        }
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
        // The job takes over the call's model grant: the token keeps working.
        std::shared_ptr<void> carried = grant;
        token_scope.reset();
        auto job = co_await d_.jobs->adopt(*dep, inv, input, carried);
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
        if (!cache_key.empty() && !ex.client_gone())
          responses_.put(cache_key, {stream_type, std::move(stream_copy)}, *dep->spec->cfg.cache_ttl);
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
