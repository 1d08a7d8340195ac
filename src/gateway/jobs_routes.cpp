// Job routes (DESIGN.md §6): POST /fn/{name}/jobs, GET /jobs,
// GET|DELETE /jobs/{id}, GET /jobs/{id}/events, POST /jobs/{id}/retry, and the
// Lambda-compatible POST /2015-03-31/functions/{name}/invocations.
#include <map>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway.h"

namespace aifn::gateway {
namespace net = boost::asio;
using http::bhttp::verb;

namespace {

constexpr std::size_t kMaxIdempotencyKey = 255;
constexpr std::string_view kLambdaPrefix = "/2015-03-31/functions/";


bool valid_status_filter(const std::string& s) {
  return s.empty() || s == "queued" || s == "running" || s == "succeeded" || s == "failed" || s == "cancelled";
}

// The callback URL is called by this server: plain http(s) URLs only.
std::optional<Error> check_callback_url(std::string_view url) {
  if (url.empty()) return std::nullopt;
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u || (u->scheme() != "http" && u->scheme() != "https") || u->host().empty())
    return Error(ErrorType::bad_request, "Aifn-Callback-Url must be an absolute http:// or https:// URL");
  if (url.size() > 2048) return Error(ErrorType::bad_request, "Aifn-Callback-Url is longer than 2048 characters");
  return std::nullopt;
}

}  // namespace

net::awaitable<std::optional<std::string>> Gateway::read_event(http::Exchange& ex, const functions::Deployed& fn) {
  auto fail_with = [&](Error e) -> net::awaitable<std::optional<std::string>> {
    co_await ex.respond_error(e);
    co_return std::nullopt;
  };
  if (ex.field("Content-Type").rfind("multipart/", 0) == 0) {
    ex.close_after();
    co_return co_await fail_with(Error(ErrorType::unsupported_media_type, "send the event as a JSON body, not multipart"));
  }
  auto body = co_await ex.read_body(fn.max_request);
  if (!body) {
    if (body.error().type == ErrorType::payload_too_large)
      body.error().message += fmt::format(" (max_request of {})", fn.spec->cfg.name);
    co_return co_await fail_with(body.error());
  }
  std::string_view text = *body;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) text = "{}";
  auto doc = functions::parse_json(text);
  if (!doc) co_return co_await fail_with(doc.error());
  if (fn.schema)
    if (auto v = fn.schema->validate(*doc); !v) co_return co_await fail_with(v.error());
  co_return std::string(text);
}

net::awaitable<bool> Gateway::route_jobs(http::Exchange& ex, std::string_view path) {
  std::string name;
  bool enqueue_route = false, lambda_route = false;
  if (path.starts_with("/fn/") && path.ends_with("/jobs")) {
    name = path.substr(4, path.size() - 9);
    enqueue_route = name.find('/') == std::string::npos;
  } else if (path.starts_with(kLambdaPrefix) && path.ends_with("/invocations")) {
    name = path.substr(kLambdaPrefix.size(), path.size() - kLambdaPrefix.size() - 12);
    lambda_route = name.find('/') == std::string::npos;
  }
  bool jobs_route = path == "/jobs" || path.starts_with("/jobs/");
  if (!enqueue_route && !lambda_route && !jobs_route) co_return false;
  if (lambda_route) {
    co_await lambda_invoke(ex, name);
    co_return true;
  }
  if (!d_.jobs) {
    co_await ex.respond_error(Error(ErrorType::unavailable, "background jobs are not running on this server"));
    co_return true;
  }
  if (enqueue_route) {
    co_await enqueue(ex, name, false);
    co_return true;
  }
  auto m = ex.method();
  // /jobs routes need some invoke scope (security::Auth); each job is then
  // visible only to keys that may invoke its function.
  std::map<std::string, bool> allowed_cache;
  auto may_see = [&](const std::string& function) {
    auto [it, fresh] = allowed_cache.try_emplace(function, false);
    if (fresh) it->second = d_.auth.check("/fn/" + function, ex.field("Authorization")).has_value();
    return it->second;
  };
  if (path == "/jobs") {
    if (m != verb::get) {
      co_await ex.respond_error(Error(ErrorType::method_not_allowed, "use GET /jobs to list jobs"));
      co_return true;
    }
    store::JobFilter f;
    f.function = query_param(ex.query(), "function");
    f.status = query_param(ex.query(), "status");
    auto limit = query_param(ex.query(), "limit");
    f.limit = 100;
    if (!limit.empty()) {
      try {
        f.limit = std::stoi(limit);
      } catch (...) {
        f.limit = -1;
      }
    }
    if (f.limit < 1 || f.limit > 1000 || !valid_status_filter(f.status)) {
      co_await ex.respond_error(Error(ErrorType::bad_request,
                                      "limit must be 1..1000 and status one of queued, running, succeeded, failed, "
                                      "cancelled"));
      co_return true;
    }
    auto jobs = co_await d_.jobs->list(f);
    if (!jobs) {
      co_await ex.respond_error(jobs.error());
      co_return true;
    }
    boost::json::array arr;
    for (auto& j : *jobs)
      if (may_see(j.function)) arr.push_back(jobs::job_json(j));
    boost::json::object out;
    out["jobs"] = std::move(arr);
    co_await ex.respond(200, "application/json", boost::json::serialize(out));
    co_return true;
  }
  auto rest = path.substr(6);
  auto slash = rest.find('/');
  std::string id(rest.substr(0, slash));
  std::string_view sub = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  Expected<store::JobRecord> job = fail(ErrorType::method_not_allowed, "use GET or DELETE on /jobs/{id}");
  // Another function's job is answered as missing, not as forbidden.
  auto seen = co_await d_.jobs->get(id);
  if (!seen || !may_see(seen->function)) {
    // A named value: GCC 12 mishandles class temporaries in co_await expressions.
    Error missing = seen ? Error(ErrorType::not_found, fmt::format("no job with id \"{}\"", id)) : seen.error();
    co_await ex.respond_error(missing);
    co_return true;
  }
  if (sub.empty() && m == verb::get) {
    job = std::move(seen);
  } else if (sub.empty() && m == verb::delete_) {
    job = co_await d_.jobs->cancel(id);
  } else if (sub == "retry" && m == verb::post) {
    job = co_await d_.jobs->retry(id);
  } else if (sub == "events" && m == verb::get) {
    co_await job_events(ex, id);
    co_return true;
  } else if (!sub.empty() && sub != "retry" && sub != "events") {
    job = fail(ErrorType::not_found, fmt::format("no route for {}", path));
  }
  if (!job) co_await ex.respond_error(job.error());
  else co_await ex.respond(200, "application/json", boost::json::serialize(jobs::job_json(*job)));
  co_return true;
}

net::awaitable<void> Gateway::enqueue(http::Exchange& ex, const std::string& name, bool lambda_event) {
  auto dep = d_.registry.find(name);
  if (!dep) {
    co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
    co_return;
  }
  if (ex.method() != verb::post) {
    ex.close_after();
    co_await ex.respond_error(Error(ErrorType::method_not_allowed, "use POST to enqueue a job"));
    co_return;
  }
  if (!dep->pool) {
    co_await ex.respond_error(Error(ErrorType::unavailable, "prompt functions cannot run as jobs yet"));
    co_return;
  }
  jobs::Jobs::EnqueueRequest req;
  req.idempotency_key = std::string(ex.field("Idempotency-Key"));
  req.callback_url = std::string(ex.field("Aifn-Callback-Url"));
  std::optional<Error> bad;
  if (req.idempotency_key.size() > kMaxIdempotencyKey)
    bad = Error(ErrorType::bad_request, fmt::format("Idempotency-Key is {} characters; at most {}",
                                                    req.idempotency_key.size(), kMaxIdempotencyKey));
  if (!bad) bad = check_callback_url(req.callback_url);
  if (bad) {
    ex.close_after();  // the body was not read
    co_await ex.respond_error(*bad);
    co_return;
  }
  auto event = co_await read_event(ex, *dep);
  if (!event) co_return;
  req.input = std::move(*event);
  auto got = co_await d_.jobs->enqueue(*dep, req);
  if (!got) {
    co_await ex.respond_error(got.error());
    co_return;
  }
  const auto& [job, existing] = *got;
  if (lambda_event) {  // Lambda's Invoke API: 202 and an empty payload
    http::Response res{http::bhttp::status::accepted, 11};
    res.set("X-Aifn-Job-Id", job.id);
    res.set(http::bhttp::field::location, "/jobs/" + job.id);
    co_await ex.respond(res);
    co_return;
  }
  http::Response res{http::bhttp::status::accepted, 11};
  res.set(http::bhttp::field::content_type, "application/json");
  res.set(http::bhttp::field::location, "/jobs/" + job.id);
  if (existing) res.set("Idempotent-Replayed", "true");
  boost::json::object o{{"id", job.id}, {"status", job.status}, {"status_url", "/jobs/" + job.id}};
  res.body() = boost::json::serialize(o);
  co_await ex.respond(res);
}

net::awaitable<void> Gateway::job_events(http::Exchange& ex, const std::string& id) {
  // Subscribe before reading the job, so no change falls between the two.
  auto feed = d_.jobs->subscribe(id);
  auto job = co_await d_.jobs->get(id);
  if (!job) {
    d_.jobs->unsubscribe(id, feed);
    co_await ex.respond_error(job.error());
    co_return;
  }
  http::StreamHead head{http::bhttp::status::ok, 11};
  head.set(http::bhttp::field::content_type, "text/event-stream");
  head.set(http::bhttp::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");
  std::string first = "event: status\ndata: " + boost::json::serialize(jobs::job_json(*job)) + "\n\n";
  bool ok = co_await ex.start_stream(head);
  ok = ok && co_await ex.write_chunk(first);
  bool done = !ok || jobs::is_final_status(job->status);
  auto left = std::make_shared<bool>(false);
  ex.watch_disconnect([feed, left] {
    *left = true;
    feed->wake.cancel();
  });
  bool gone = false;
  while (!done && !(gone = gone || *left)) {
    while (!feed->events.empty() && !done) {
      auto ev = std::move(feed->events.front());
      feed->events.pop_front();
      std::string frame = fmt::format("event: {}\ndata: {}\n\n", ev.event, ev.data);
      if (!co_await ex.write_chunk(frame)) gone = true;
      done = ev.final || gone;
    }
    if (done) break;
    feed->wake.expires_after(d_.config.sse_heartbeat);
    boost::system::error_code ec;
    co_await feed->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (!ec && feed->events.empty() && !gone && !co_await ex.write_chunk(": ping\n\n")) gone = true;
  }
  d_.jobs->unsubscribe(id, feed);
  if (!gone && ok) co_await ex.end_stream();
  else ex.close_after();
}

// AWS Lambda Invoke API (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).
net::awaitable<void> Gateway::lambda_invoke(http::Exchange& ex, const std::string& name) {
  auto type = ex.field("X-Amz-Invocation-Type");
  if (type.empty() || type == "RequestResponse") {
    co_await invoke(ex, name, CallShape::lambda);
  } else if (type == "Event") {
    if (!d_.jobs) co_await ex.respond_error(Error(ErrorType::unavailable, "background jobs are not running on this server"));
    else co_await enqueue(ex, name, true);
  } else if (type == "DryRun") {
    // Validates the function and the caller; runs nothing.
    auto dep = d_.registry.find(name);
    ex.close_after();
    if (!dep) co_await ex.respond_error(Error(ErrorType::not_found, fmt::format("no function named \"{}\"", name)));
    else co_await ex.respond(204, std::string_view(), std::string_view());
  } else {
    ex.close_after();
    co_await ex.respond_error(Error(ErrorType::bad_request,
                                    fmt::format("X-Amz-Invocation-Type \"{}\" must be RequestResponse, Event or DryRun",
                                                type)));
  }
}

}  // namespace aifn::gateway
