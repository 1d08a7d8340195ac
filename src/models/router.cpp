#include "models/router.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "models/gguf_provider.h"
#include "models/openai_provider.h"

namespace aifn::models {
namespace net = boost::asio;

namespace {

// Forwards to the client's sink and remembers whether anything went out: after
// that a failure can no longer fall back to another target.
class TrackingSink : public TextSink {
 public:
  explicit TrackingSink(TextSink& inner) : inner_(inner) {}
  net::awaitable<bool> on_text(std::string_view text) override {
    streamed = true;
    bool ok = co_await inner_.on_text(text);
    co_return ok;
  }
  void on_model_load(double ms) override { inner_.on_model_load(ms); }
  bool streamed = false;

 private:
  TextSink& inner_;
};

ProviderError error_of(ErrorType t, std::string msg) { return {Error(t, std::move(msg)), false}; }

}  // namespace

Router::Router(std::vector<config::ModelRoute> models, std::vector<std::unique_ptr<Provider>> providers,
               std::set<std::string> unavailable)
    : models_(std::move(models)), providers_(std::move(providers)), unavailable_(std::move(unavailable)) {}

Provider* Router::provider(const std::string& name) const {
  for (const auto& p : providers_)
    if (p->name() == name) return p.get();
  return nullptr;
}

Expected<std::vector<Target>> Router::resolve(const std::string& model) const {
  auto target_of = [this](const std::string& t) -> std::optional<Target> {
    auto slash = t.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == t.size()) return std::nullopt;
    Target out;
    out.provider_name = t.substr(0, slash);
    out.model_id = t.substr(slash + 1);
    out.provider = provider(out.provider_name);
    if (!out.provider && !unavailable_.contains(out.provider_name)) return std::nullopt;
    return out;
  };
  for (const auto& m : models_) {
    if (m.name != model) continue;
    std::vector<Target> targets;
    for (const auto& t : m.route)
      if (auto tg = target_of(t)) targets.push_back(std::move(*tg));
    bool any = std::any_of(targets.begin(), targets.end(), [](const Target& t) { return t.provider != nullptr; });
    if (!any) return fail(ErrorType::unavailable, fmt::format("no provider of model \"{}\" is available", model));
    return targets;
  }
  auto direct = target_of(model);
  if (!direct) return fail(ErrorType::not_found, fmt::format("the model \"{}\" does not exist", model));
  if (!direct->provider)
    return fail(ErrorType::unavailable, fmt::format("provider \"{}\" is not available", direct->provider_name));
  return std::vector<Target>{std::move(*direct)};
}

net::awaitable<std::vector<ModelEntry>> Router::list() {
  std::vector<ModelEntry> out;
  for (const auto& m : models_)
    if (resolve(m.name)) out.push_back({m.name, "aifn"});
  for (const auto& p : providers_) {
    auto ids = co_await p->list_models();
    if (!ids) {
      spdlog::warn("event=list_models_failed provider={} error=\"{}\"", p->name(), ids.error().error.message);
      continue;
    }
    for (const auto& id : *ids) out.push_back({p->name() + "/" + id, p->name()});
  }
  co_return out;
}

net::awaitable<ProviderResult<Served<Completion>>> Router::complete(const std::string& model, CompletionRequest& req,
                                                                    TextSink* sink) {
  auto targets = resolve(model);
  if (!targets) co_return tl::unexpected(ProviderError{targets.error(), false});
  ProviderError last = error_of(ErrorType::unavailable, fmt::format("no provider of model \"{}\" is available", model));
  for (const auto& t : *targets) {
    if (!t.provider) continue;
    req.model = t.model_id;
    std::optional<TrackingSink> tracking;
    if (sink) tracking.emplace(*sink);
    auto r = co_await t.provider->complete(req, tracking ? &*tracking : nullptr);
    if (r) co_return Served<Completion>{std::move(*r), t.name()};
    last = std::move(r.error());
    if (!last.retryable || (tracking && tracking->streamed)) break;
    spdlog::warn("event=model_fallback model={} target={} error=\"{}\"", model, t.name(), last.error.message);
  }
  co_return tl::unexpected(std::move(last));
}

net::awaitable<ProviderResult<Served<Embeddings>>> Router::embed(const std::string& model,
                                                                 const std::vector<std::string>& inputs) {
  auto targets = resolve(model);
  if (!targets) co_return tl::unexpected(ProviderError{targets.error(), false});
  ProviderError last = error_of(ErrorType::unavailable, fmt::format("no provider of model \"{}\" is available", model));
  for (const auto& t : *targets) {
    if (!t.provider) continue;
    auto r = co_await t.provider->embed(t.model_id, inputs);
    if (r) co_return Served<Embeddings>{std::move(*r), t.name()};
    last = std::move(r.error());
    if (!last.retryable) break;
    spdlog::warn("event=model_fallback model={} target={} error=\"{}\"", model, t.name(), last.error.message);
  }
  co_return tl::unexpected(std::move(last));
}

int Router::reload_keys(const std::string& secret_name) {
  int n = 0;
  for (auto& p : providers_) {
    auto* op = dynamic_cast<OpenAIProvider*>(p.get());
    if (op == nullptr || !op->key_uses_secret(secret_name)) continue;
    op->reload_key();
    ++n;
  }
  return n;
}

std::unique_ptr<Router> make_router(const config::Server& cfg, const net::any_io_executor& io,
                                    const std::function<Expected<std::string>(std::string_view)>& resolve_key) {
  std::vector<config::Provider> wanted = cfg.providers;
  std::vector<config::ModelRoute> models = cfg.models;
  if (wanted.empty()) {
    // DESIGN.md §3 default: the generated test model, when it is there.
    config::Provider local;
    local.name = "local";
    local.kind = "gguf";
    local.path = "models/tiny.gguf";
    if (std::filesystem::exists(local.path)) wanted.push_back(local);
    else spdlog::info("event=no_default_model path={} hint=\"make model generates it\"", local.path);
    if (models.empty()) models.push_back(config::ModelRoute{"default", {"local/tiny"}});
  }
  std::vector<std::unique_ptr<Provider>> providers;
  std::set<std::string> unavailable;
  // Tokenizers for upstream answers without usage figures: the named gguf
  // provider, else the first one.
  std::map<std::string, GgufProvider*> ggufs;
  GgufProvider* first_gguf = nullptr;
  std::vector<std::pair<OpenAIProvider*, std::string>> want_tokenizer;
  for (const auto& p : wanted) {
    if (p.kind == "gguf") {
      auto g = std::make_unique<GgufProvider>(io, GgufOptions{p.name, p.path, p.threads, 4});
      ggufs[p.name] = g.get();
      if (!first_gguf) first_gguf = g.get();
      providers.push_back(std::move(g));
    } else if (p.kind == "openai") {
      // The key is resolved here and again when its secret changes; its
      // reference may be named in a log, the key never.
      auto op = OpenAIProvider::create(io, p, resolve_key ? resolve_key : env_key_resolver(), upstream_options(p));
      if (op) {
        if (auto problem = (*op)->key_problem())
          spdlog::warn("event=provider_unavailable provider={} kind=openai reason=\"{}\" until=\"its key is set\"",
                       p.name, problem->error.message);
        want_tokenizer.emplace_back(op->get(), p.tokenizer);
        providers.push_back(std::move(*op));
      } else {
        spdlog::warn("event=provider_unavailable provider={} kind=openai reason=\"{}\"", p.name, op.error().message);
        unavailable.insert(p.name);
      }
    } else {
      spdlog::warn("event=provider_unavailable provider={} kind={} reason=\"this build has no {} provider\"", p.name,
                   p.kind, p.kind);
      unavailable.insert(p.name);
    }
  }
  for (auto& [op, name] : want_tokenizer) {
    GgufProvider* g = name.empty() ? first_gguf : (ggufs.contains(name) ? ggufs[name] : nullptr);
    if (g) op->set_token_counter([g](std::string_view text) { return g->count_tokens(text); });
  }
  return std::make_unique<Router>(std::move(models), std::move(providers), std::move(unavailable));
}

}  // namespace aifn::models
