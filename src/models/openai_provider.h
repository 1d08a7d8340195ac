// aifn::models::OpenAIProvider — the `openai` provider kind (DESIGN.md §8):
// any OpenAI-compatible HTTP API (OpenAI, vLLM, llama.cpp server, Ollama, a
// second aifn). Requests go through an UpstreamClient (pooled keep-alive
// connections, TLS verification, timeouts, retries); streamed answers are
// decoded from the upstream's SSE as they arrive and each content delta is
// handed to the TextSink at once. The provider key is resolved once, at
// creation, through an injected resolver ("env:NAME" | "secret:NAME") and only
// ever placed in the Authorization header: never in a log, an error or an
// answer (upstream error messages are relayed with the key masked out).
//
// Failures map to ProviderError: connect errors, timeouts, 429 and 5xx (after
// the client's retries) are retryable (the gateway may fall back along the
// route) unless text was already streamed; other 4xx are final with the
// upstream's message; 401/403 is "the upstream refused the provider's key".
//
// Thread-safety: use from the io thread that runs the executor it was made
// with; concurrent calls are fine (each has its own connection).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "base/error.h"
#include "config/config.h"
#include "models/provider.h"
#include "models/upstream_client.h"

namespace aifn::models {

// Turns a key reference ("env:NAME", "secret:NAME") into the key. Injected so
// the secret store can plug in; env_key_resolver() handles "env:" only.
using KeyResolver = std::function<Expected<std::string>(std::string_view reference)>;
KeyResolver env_key_resolver();
// "env:NAME" as above, and "secret:NAME" through `get_secret` (the secret
// store: Secrets::get). A secret that is not there is `unavailable`.
using SecretGetter = std::function<Expected<std::optional<std::string>>(const std::string& name)>;
KeyResolver secret_key_resolver(SecretGetter get_secret);

// Counts the tokens of a text with a model's tokenizer; nullopt when it
// cannot now (the model is still loading).
using TokenCounter = std::function<std::optional<int>(std::string_view text)>;

// The client options a [[providers]] entry asks for (timeouts, max_attempts,
// ca_file); the rest keep UpstreamOptions' defaults.
UpstreamOptions upstream_options(const config::Provider& cfg);

class OpenAIProvider final : public Provider {
 public:
  // Fails on a bad base_url, an unreadable ca_file or a key reference that is
  // not a reference (messages name the reference, never the key). A key that
  // is not there yet leaves the provider unavailable (key_problem()) until
  // reload_key() resolves it.
  static Expected<std::unique_ptr<OpenAIProvider>> create(boost::asio::any_io_executor ex,
                                                          const config::Provider& cfg,
                                                          const KeyResolver& resolve_key,
                                                          UpstreamOptions opts = {});

  const std::string& name() const override { return name_; }
  boost::asio::awaitable<ProviderResult<std::vector<std::string>>> list_models() override;
  boost::asio::awaitable<ProviderResult<Completion>> complete(const CompletionRequest& req, TextSink* sink) override;
  boost::asio::awaitable<ProviderResult<Embeddings>> embed(const std::string& model,
                                                           const std::vector<std::string>& inputs) override;

  UpstreamClient& client() { return *client_; }
  // For answers without usage figures (an upstream that ignores
  // stream_options.include_usage): the tokens are counted with this
  // tokenizer; without one (or while it loads) they are estimated, one token
  // per streamed delta and four bytes per token otherwise.
  void set_token_counter(TokenCounter counter) { count_tokens_ = std::move(counter); }

  // True when the key comes from the secret `name` ("secret:NAME").
  bool key_uses_secret(std::string_view name) const;
  // Resolves the key reference again (the secret was set or removed):
  // later requests use the new key; while the reference cannot be resolved,
  // calls fail as unavailable, naming the reference.
  void reload_key();
  // Why calls fail now (the key reference does not resolve); nullopt when the key is there.
  std::optional<ProviderError> key_problem() const;

 private:
  OpenAIProvider() = default;
  UpstreamRequest request(const char* method, std::string_view path, std::string body) const;
  // Maps a non-2xx upstream answer or a transport failure to a ProviderError.
  ProviderError error_from(const UpstreamResponse& res) const;
  ProviderError error_from(const Error& e, bool streamed) const;
  std::string mask_key(std::string text) const;
  std::string key() const;
  TokenUsage count_usage(const CompletionRequest& req, const std::string& text, int deltas) const;

  std::string name_;
  std::string base_url_;  // without a trailing '/'
  std::string key_ref_;   // api_key as configured ("env:NAME" | "secret:NAME" | "")
  KeyResolver resolve_key_;
  mutable std::mutex key_mu_;   // the key may be replaced (rotation) while calls run
  std::string key_;             // guarded by key_mu_; empty: no Authorization header
  std::string old_key_;         // guarded by key_mu_: the key before the last rotation, still masked
  std::optional<Error> key_error_;  // guarded by key_mu_: the reference no longer resolves
  std::shared_ptr<UpstreamClient> client_;
  TokenCounter count_tokens_;
};

// The JSON body of an upstream completion request (exposed for tests).
std::string openai_completion_body(const CompletionRequest& req, bool stream);

}  // namespace aifn::models
