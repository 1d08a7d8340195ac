#include "models/gguf_provider.h"

#include <chrono>
#include <filesystem>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/chat_template.h"
#include "engine/unicode.h"

namespace aifn::models {
namespace net = boost::asio;

namespace {

ProviderError fail_with(ErrorType type, std::string message) { return {Error(type, std::move(message)), false}; }

// What a worker thread hands to the io coroutine that waits for it: text as it
// is produced, then the end. The worker appends under `mu` and posts one
// wake-up to the io thread per batch of text (not one per token when the io
// side is behind); the io side swaps the text out and waits again.
struct HandOver {
  std::mutex mu;
  std::string pending;     // guarded by mu
  bool done = false;       // guarded by mu
  bool signalled = false;  // guarded by mu: a wake-up is already on its way
  std::atomic<bool> stop{false};
  tl::expected<engine::GenerateResult, std::string> result = tl::unexpected(std::string("not run"));
  std::vector<std::vector<float>> vectors;  // embeddings
  int tokens = 0;
  net::steady_timer* wake = nullptr;  // io thread only: the wait in progress

  static void signal(const std::shared_ptr<HandOver>& h, const net::any_io_executor& io) {
    {
      std::lock_guard lock(h->mu);
      if (h->signalled) return;
      h->signalled = true;
    }
    net::post(io, [h] {
      if (h->wake) h->wake->cancel();
    });
  }

  // Takes what arrived; true once the worker is done and everything was taken.
  bool take(std::string& out) {
    std::lock_guard lock(mu);
    out.swap(pending);
    pending.clear();
    signalled = false;
    return done;
  }

  bool has_news() {
    std::lock_guard lock(mu);
    return done || !pending.empty();
  }

  net::awaitable<void> wait() {
    if (has_news()) co_return;
    net::steady_timer t(co_await net::this_coro::executor, net::steady_timer::time_point::max());
    wake = &t;
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    wake = nullptr;
  }
};

std::string model_stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

}  // namespace

GgufProvider::GgufProvider(net::any_io_executor io, GgufOptions options)
    : io_(std::move(io)), opt_(std::move(options)), model_id_(model_stem(opt_.path)),
      workers_(static_cast<std::size_t>(std::max(1, opt_.max_parallel))) {
  if (opt_.load_at_start) start_load();
}

void GgufProvider::start_load() {
  if (load_started_) return;
  load_started_ = true;
  net::post(workers_, [this] {
    auto started = std::chrono::steady_clock::now();
    auto loaded = engine::Engine::load(opt_.path, engine::EngineOptions{opt_.threads, 0});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (loaded)
      spdlog::info("event=model_loaded provider={} model={} path={} load_ms={:.1f} threads={}", opt_.name, model_id_,
                   opt_.path, ms, (*loaded)->threads());
    else
      spdlog::error("event=model_load_failed provider={} path={} error=\"{}\"", opt_.name, opt_.path, loaded.error());
    finish_load(std::move(loaded));
  });
}

GgufProvider::~GgufProvider() {
  shutting_down_ = true;
  workers_.join();
}

void GgufProvider::finish_load(tl::expected<std::unique_ptr<engine::Engine>, std::string> loaded) {
  {
    std::lock_guard lock(mu_);
    if (loaded) engine_ = std::shared_ptr<const engine::Engine>(std::move(*loaded));
    else load_error_ = loaded.error().empty() ? "the model failed to load" : loaded.error();
  }
  net::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    loaded_io_ = true;
    for (auto* t : load_waiters_) t->cancel();
    load_waiters_.clear();
  });
}

std::optional<int> GgufProvider::count_tokens(std::string_view text) {
  std::shared_ptr<const engine::Engine> e;
  {
    std::lock_guard lock(mu_);
    e = engine_;
  }
  if (!e) return std::nullopt;
  return static_cast<int>(e->tokenize(text, false).size());
}

net::awaitable<ProviderResult<std::shared_ptr<const engine::Engine>>> GgufProvider::ready(double* waited_ms) {
  auto started = std::chrono::steady_clock::now();
  bool waited = false;
  start_load();
  while (!loaded_io_) {
    waited = true;
    net::steady_timer t(co_await net::this_coro::executor, net::steady_timer::time_point::max());
    load_waiters_.push_back(&t);
    boost::system::error_code ec;
    co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
    std::erase(load_waiters_, &t);
  }
  if (waited_ms && waited)
    *waited_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard lock(mu_);
  if (!engine_)
    co_return tl::unexpected(fail_with(ErrorType::unavailable,
                                       fmt::format("model {}/{} is unavailable: {}", opt_.name, model_id_, load_error_)));
  co_return engine_;
}

net::awaitable<ProviderResult<std::vector<std::string>>> GgufProvider::list_models() {
  // Listed while loading; a model that failed to load is not served.
  if (loaded_io_) {
    std::lock_guard lock(mu_);
    if (!engine_) co_return std::vector<std::string>{};
  }
  co_return std::vector<std::string>{model_id_};
}

net::awaitable<ProviderResult<Completion>> GgufProvider::complete(const CompletionRequest& req, TextSink* sink) {
  double waited_ms = 0;
  auto eng = co_await ready(&waited_ms);
  if (!eng) co_return tl::unexpected(eng.error());
  if (req.model != model_id_)
    co_return tl::unexpected(fail_with(
        ErrorType::not_found, fmt::format("provider {} serves only model \"{}\", not \"{}\"", opt_.name, model_id_,
                                          req.model)));
  const engine::Engine& e = **eng;

  engine::GenerationLimits limits;
  limits.stop = req.sampling.stop;
  std::vector<engine::TokenId> prompt;
  if (req.chat) {
    std::vector<engine::ChatMessage> msgs;
    msgs.reserve(req.messages.size());
    for (const auto& m : req.messages) msgs.push_back({m.role, m.content});
    auto rendered = engine::render_chat(engine::detect_chat_format(e.tokenizer().spec().chat_template), msgs);
    if (!rendered) co_return tl::unexpected(fail_with(ErrorType::bad_request, rendered.error()));
    auto segments = rendered->segments();
    prompt = e.tokenizer().tokenize(segments, true);
    for (auto& s : rendered->stop) limits.stop.push_back(s);
  } else {
    prompt = e.tokenize(req.prompt, true);
  }
  const int room = e.context_length() - static_cast<int>(prompt.size());
  if (prompt.empty() || room <= 0)
    co_return tl::unexpected(fail_with(
        ErrorType::bad_request, fmt::format("the prompt has {} tokens; model {} has a context of {} tokens",
                                            prompt.size(), model_id_, e.context_length())));
  // Unset max_tokens: up to the end of the context, as OpenAI does.
  limits.max_tokens = std::min(room, req.sampling.max_tokens.value_or(room));

  engine::SamplingParams sp;
  const Sampling& s = req.sampling;
  if (s.temperature) sp.temperature = static_cast<float>(*s.temperature);
  if (s.top_p) sp.top_p = static_cast<float>(*s.top_p);
  if (s.top_k) sp.top_k = *s.top_k;
  if (s.min_p) sp.min_p = static_cast<float>(*s.min_p);
  if (s.presence_penalty) sp.presence_penalty = static_cast<float>(*s.presence_penalty);
  if (s.frequency_penalty) sp.frequency_penalty = static_cast<float>(*s.frequency_penalty);
  if (s.repetition_penalty) sp.repeat_penalty = static_cast<float>(*s.repetition_penalty);
  sp.seed = s.seed;
  if (auto check = engine::Sampler::create(sp); !check)
    co_return tl::unexpected(fail_with(ErrorType::bad_request, check.error()));

  auto h = std::make_shared<HandOver>();
  net::post(workers_, [this, h, eng = *eng, prompt = std::move(prompt), sp, limits] {
    auto on_text = [&](std::string_view t) {
      if (h->stop.load(std::memory_order_relaxed) || shutting_down_.load(std::memory_order_relaxed)) return false;
      {
        // JSON APIs need valid UTF-8: a byte that can never complete a
        // character (noise models write them) becomes U+FFFD.
        std::string clean = engine::is_valid_utf8(t) ? std::string(t) : engine::sanitize_utf8(t);
        std::lock_guard lock(h->mu);
        h->pending.append(clean);
      }
      HandOver::signal(h, io_);
      return true;
    };
    auto r = h->stop ? tl::expected<engine::GenerateResult, std::string>(engine::GenerateResult{})
                     : eng->generate(prompt, sp, limits, on_text, &h->stop);
    {
      std::lock_guard lock(h->mu);
      h->result = std::move(r);
      h->done = true;
    }
    HandOver::signal(h, io_);
  });

  Completion out;
  out.model_load_ms = waited_ms;
  bool cancelled = false;
  bool first = true;
  for (;;) {
    std::string piece;
    bool done = h->take(piece);
    if (!piece.empty()) {
      out.text += piece;
      if (sink && !cancelled) {
        if (first && waited_ms > 0) sink->on_model_load(waited_ms);
        first = false;
        bool more = co_await sink->on_text(piece);
        if (!more) {
          // The reader is gone: stop computing tokens nobody will read.
          cancelled = true;
          h->stop = true;
        }
      }
      continue;  // more may have come while the sink wrote
    }
    if (done) break;
    co_await h->wait();
  }
  if (!h->result) co_return tl::unexpected(fail_with(ErrorType::bad_request, h->result.error()));
  const auto& r = *h->result;
  out.usage.prompt_tokens = r.prompt_tokens;
  out.usage.completion_tokens = r.completion_tokens;
  if (cancelled || r.finish == engine::FinishReason::kNone) out.finish_reason = "cancelled";
  else out.finish_reason = std::string(engine::finish_reason_name(r.finish));
  co_return out;
}

net::awaitable<ProviderResult<Embeddings>> GgufProvider::embed(const std::string& model,
                                                               const std::vector<std::string>& inputs) {
  auto eng = co_await ready(nullptr);
  if (!eng) co_return tl::unexpected(eng.error());
  if (model != model_id_)
    co_return tl::unexpected(fail_with(
        ErrorType::not_found, fmt::format("provider {} serves only model \"{}\", not \"{}\"", opt_.name, model_id_,
                                          model)));
  auto h = std::make_shared<HandOver>();
  net::post(workers_, [this, h, eng = *eng, inputs] {
    std::string error;
    std::vector<std::vector<float>> vectors;
    int tokens = 0;
    for (std::size_t i = 0; i < inputs.size() && error.empty(); ++i) {
      if (shutting_down_) error = "the server is stopping";
      if (!error.empty()) break;
      auto ids = eng->tokenize(inputs[i], true);
      tokens += static_cast<int>(ids.size());
      auto v = eng->embed(ids);
      if (!v) error = fmt::format("input[{}]: {}", i, v.error());
      else vectors.push_back(std::move(*v));
    }
    {
      std::lock_guard lock(h->mu);
      if (!error.empty()) h->result = tl::unexpected(error);
      else h->result = engine::GenerateResult{};
      h->vectors = std::move(vectors);
      h->tokens = tokens;
      h->done = true;
    }
    HandOver::signal(h, io_);
  });
  for (;;) {
    std::string ignored;
    if (h->take(ignored)) break;
    co_await h->wait();
  }
  if (!h->result) co_return tl::unexpected(fail_with(ErrorType::bad_request, h->result.error()));
  Embeddings out;
  out.vectors = std::move(h->vectors);
  out.prompt_tokens = h->tokens;
  co_return out;
}

}  // namespace aifn::models
