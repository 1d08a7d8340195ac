// POST /fn/{name} for runtime = "prompt" (DESIGN.md §4): no process. The
// validated input fills the template, the model is called through the router
// with the [prompt] system prompt, max_tokens and temperature, and the answer
// goes back as text (streamed, text/plain, as it is produced) or as JSON
// (extracted from the answer and checked against output_schema; a model that
// produces none gets 502 upstream_error). The tokens are metered on the call.
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/gateway.h"
#include "models/prompt.h"

namespace aifn::gateway {
namespace net = boost::asio;

namespace {

// Streams the answer as chunked text/plain; the head goes out with the first text.
class TextStreamSink : public models::TextSink {
 public:
  TextStreamSink(http::Exchange& ex, bool write, bool cacheable) : ex_(ex), write_(write), cacheable_(cacheable) {}
  net::awaitable<bool> on_text(std::string_view text) override {
    if (gone || *gone_flag || *timed_out) co_return false;
    if (!write_) co_return true;  // JSON output: nothing goes out before the whole answer
    bool ok = true;
    if (!started) {
      started = true;
      http::StreamHead head{http::bhttp::status::ok, 11};
      head.set(http::bhttp::field::content_type, "text/plain; charset=utf-8");
      head.set(http::bhttp::field::cache_control, "no-cache");
      head.set("X-Accel-Buffering", "no");
      head.set("X-Aifn-Cold-Start", "false");
      if (cacheable_) head.set("X-Aifn-Cache", "miss");
      if (load_ms > 0) head.set("Server-Timing", fmt::format("model_load;dur={:.1f}", load_ms));
      ok = co_await ex_.start_stream(head);
    }
    if (ok) ok = co_await ex_.write_chunk(text);
    if (!ok) gone = true;
    co_return ok;
  }
  void on_model_load(double ms) override { load_ms = ms; }
  bool started = false;
  bool gone = false;
  std::shared_ptr<bool> gone_flag = std::make_shared<bool>(false);  // the client left
  std::shared_ptr<bool> timed_out = std::make_shared<bool>(false);  // past the function's timeout
  double load_ms = 0;

 private:
  http::Exchange& ex_;
  bool write_;
  bool cacheable_;
};

}  // namespace

net::awaitable<void> Gateway::invoke_prompt(http::Exchange& ex, const functions::Deployed& dep,
                                            const boost::json::value& input, PromptCallMeter& meter) {
  const auto& cfg = dep.spec->cfg;
  const auto& p = *cfg.prompt;
  if (!d_.router) {
    meter.status = 503;
    co_await ex.respond_error(Error(ErrorType::unavailable, "the model gateway is not running"));
    co_return;
  }
  auto rendered = models::render_prompt(p.template_text, input);
  if (!rendered) {
    meter.status = http_status(rendered.error().type);
    meter.error_type = to_string(rendered.error().type);
    co_await ex.respond_error(rendered.error());
    co_return;
  }
  models::CompletionRequest req;
  req.chat = true;
  if (!p.system.empty()) req.messages.push_back({"system", p.system});
  req.messages.push_back({"user", std::move(*rendered)});
  req.sampling.max_tokens = p.max_tokens;
  req.sampling.temperature = p.temperature;

  const bool stream = p.output == "text";
  TextStreamSink sink(ex, stream, meter.cacheable);
  ex.watch_disconnect([gone = sink.gone_flag] { *gone = true; });
  // The function's timeout: generation stops at the next token (504).
  net::steady_timer deadline(co_await net::this_coro::executor);
  deadline.expires_after(cfg.timeout);
  deadline.async_wait([flag = sink.timed_out](boost::system::error_code ec) {
    if (!ec) *flag = true;
  });
  auto r = co_await d_.router->complete(p.model, req, &sink);
  deadline.cancel();
  if (r) {
    meter.model = r->target;
    meter.tokens_in = r->value.usage.prompt_tokens;
    meter.tokens_out = r->value.usage.completion_tokens;
    meter.streamed = stream && sink.started;
  }
  auto fail_with = [&](const Error& e) -> net::awaitable<void> {
    meter.status = http_status(e.type);
    meter.error_type = to_string(e.type);
    if (!sink.started) {
      co_await ex.respond_error(e);
    } else {
      ex.close_after();  // cut the stream short: the reader sees it failed
    }
  };
  if (r && *sink.timed_out && !sink.gone) {
    co_await fail_with(Error(ErrorType::timeout, fmt::format("prompt function {} passed its timeout of {} ms", cfg.name,
                                                             cfg.timeout.count())));
    co_return;
  }
  if (!r) {
    Error e = r.error().error;
    if (e.type == ErrorType::not_found || e.type == ErrorType::bad_request) {
      // The function's own configuration or a prompt the model cannot take.
      e = Error(ErrorType::upstream_error, fmt::format("model \"{}\" of prompt function {}: {}", p.model, cfg.name,
                                                       e.message));
    }
    co_await fail_with(e);
    co_return;
  }
  if (stream) {
    if (sink.gone) {
      meter.status = 499;
      meter.error_type = "client_disconnected";
      co_return;
    }
    if (!sink.started) {
      // An empty answer: an empty stream.
      http::Response res{http::bhttp::status::ok, 11};
      res.set(http::bhttp::field::content_type, "text/plain; charset=utf-8");
      if (meter.cacheable) res.set("X-Aifn-Cache", "miss");
      co_await ex.respond(res);
    } else {
      co_await ex.end_stream();
    }
    meter.answer = r->value.text;
    meter.answer_type = "text/plain; charset=utf-8";
    co_return;
  }
  auto doc = models::extract_json(r->value.text);
  if (!doc) {
    co_await fail_with(Error(ErrorType::upstream_error,
                             fmt::format("the model's answer is not valid JSON (prompt function {}, {} tokens)",
                                         cfg.name, r->value.usage.completion_tokens)));
    co_return;
  }
  if (dep.output_schema) {
    if (auto v = dep.output_schema->validate(*doc); !v) {
      Error e(ErrorType::upstream_error, "the model's JSON answer does not match output_schema: " + v.error().message);
      e.details = v.error().details;
      co_await fail_with(e);
      co_return;
    }
  }
  http::Response res{http::bhttp::status::ok, 11};
  res.set(http::bhttp::field::content_type, "application/json");
  res.set("X-Aifn-Cold-Start", "false");
  if (meter.cacheable) res.set("X-Aifn-Cache", "miss");
  if (r->value.model_load_ms > 0) res.set("Server-Timing", fmt::format("model_load;dur={:.1f}", r->value.model_load_ms));
  res.body() = boost::json::serialize(*doc);
  meter.answer = res.body();
  meter.answer_type = "application/json";
  co_await ex.respond(res);
}

}  // namespace aifn::gateway
