// aifn::models::Provider — one source of model answers behind the model
// gateway (DESIGN.md §8): the built-in engine (`gguf`) or an OpenAI-compatible
// upstream (`openai`). The gateway parses an OpenAI-shaped request into a
// CompletionRequest, picks targets along the model's `route`, and asks each
// target's provider in turn; a failure marked `retryable` before any text was
// streamed moves on to the next target (fallback), anything else is final.
// Providers are used from the io thread: every method is a coroutine on it
// and must not block it (CPU work goes to the provider's own threads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "base/error.h"

namespace aifn::models {

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

// Unset = the provider's default (for an upstream: not sent at all).
struct Sampling {
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> min_p;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
  std::optional<double> repetition_penalty;
  std::optional<std::uint64_t> seed;
  std::optional<int> max_tokens;
  std::vector<std::string> stop;
};

struct CompletionRequest {
  std::string model;  // the provider's own model id: "tiny" of target "local/tiny"
  bool chat = true;   // /v1/chat/completions (messages) or /v1/completions (prompt)
  std::vector<Message> messages;
  std::string prompt;
  Sampling sampling;
  // The client's other request fields, relayed unchanged to OpenAI-compatible
  // upstreams and ignored by the engine.
  boost::json::object extra;
};

struct TokenUsage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

struct Completion {
  std::string text;           // the whole answer (also when it was streamed)
  std::string finish_reason;  // stop | length | cancelled
  TokenUsage usage;           // tokens actually produced, also when cancelled
  double model_load_ms = 0;   // time this call waited for the model to load
};

// Receives a streamed answer piece by piece as it is produced (whole UTF-8
// characters). Returning false means the consumer is gone: the provider stops
// generating (no tokens computed for nobody) and returns what it has with
// finish_reason "cancelled".
class TextSink {
 public:
  virtual ~TextSink() = default;
  virtual boost::asio::awaitable<bool> on_text(std::string_view text) = 0;
  // Called once, before the first on_text, when the call had to wait for the
  // model to load (the gateway reports it as Server-Timing model_load).
  virtual void on_model_load(double /*ms*/) {}
};

struct Embeddings {
  std::vector<std::vector<float>> vectors;  // one per input, in order
  int prompt_tokens = 0;
};

// A provider failure. `retryable`: connect errors, timeouts before the first
// byte, 429 and 5xx from an upstream, after the provider's own retries:
// the gateway may fall back to the route's next target.
struct ProviderError {
  Error error;  // upstream_error | unavailable | timeout | bad_request | not_found ...
  bool retryable = false;
};

template <typename T>
using ProviderResult = tl::expected<T, ProviderError>;

class Provider {
 public:
  virtual ~Provider() = default;
  // The [[providers]] name: targets are "<name>/<model id>".
  virtual const std::string& name() const = 0;
  // Model ids this provider serves, without the "<name>/" prefix.
  virtual boost::asio::awaitable<ProviderResult<std::vector<std::string>>> list_models() = 0;
  // sink == nullptr: not streamed. With a sink, text goes to it as produced
  // and Completion::text still holds all of it.
  virtual boost::asio::awaitable<ProviderResult<Completion>> complete(const CompletionRequest& req,
                                                                      TextSink* sink) = 0;
  virtual boost::asio::awaitable<ProviderResult<Embeddings>> embed(const std::string& model,
                                                                   const std::vector<std::string>& inputs) = 0;
};

}  // namespace aifn::models
