// Turning generated tokens into text that is safe to show as it is produced.
//   Utf8Stream: passes bytes through but holds back a trailing, still
//     incomplete UTF-8 sequence until it completes (or the stream ends, when
//     it is flushed as is). Invalid bytes that can never complete pass at once.
//   GenerationStream: one request's output: token -> piece -> Utf8Stream, plus
//     the end conditions: an end-of-generation token (unless ignore_eos), a
//     stop string (text from the stop string on is never emitted; text that
//     might be the start of one is held back until it is known not to be), or
//     max_tokens.
// Called by the engine's generate loop, which writes what push() returns to
// the client. One object per request; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "engine/tokenizer.h"

namespace aifn::engine {

class Utf8Stream {
 public:
  // Returns the bytes that can be shown now.
  std::string push(std::string_view bytes);
  // Returns what is held back (possibly a partial sequence) and empties it.
  std::string flush();
  size_t held() const { return pending_.size(); }

 private:
  std::string pending_;
};

enum class FinishReason {
  kNone,    // still running
  kEog,     // the model produced an end-of-generation token
  kStop,    // a stop string appeared
  kLength,  // max_tokens reached
};

// OpenAI's finish_reason: "stop" for kEog and kStop, "length", or "" while running.
std::string_view finish_reason_name(FinishReason reason);

struct GenerationLimits {
  int32_t max_tokens = 128;        // tokens to generate; <= 0 means none
  std::vector<std::string> stop;   // stop strings (empty ones are ignored)
  bool ignore_eos = false;         // keep going past end-of-generation tokens
};

class GenerationStream {
 public:
  // tokenizer must outlive the stream.
  // With max_tokens <= 0 the stream is done() (kLength) before any token.
  GenerationStream(const Tokenizer& tokenizer, GenerationLimits limits);

  // Feeds one sampled token. Returns the text that may be emitted now; when
  // the token ends generation, that includes everything still held back
  // (except text from a stop string on). An id outside the vocabulary is an
  // error. Pushing after done() returns "".
  tl::expected<std::string, std::string> push(TokenId id);

  // For a caller that ends generation itself (cancel, deadline): returns what
  // is held back, cut at a stop string if one is there. The reason stays
  // kNone unless that happened.
  std::string finish();

  bool done() const { return reason_ != FinishReason::kNone; }
  FinishReason finish_reason() const { return reason_; }
  int32_t n_tokens() const { return n_tokens_; }

 private:
  // Splits pending_ into what can go out now and what must wait.
  std::string release(bool final);

  const Tokenizer& tokenizer_;
  GenerationLimits limits_;
  std::string pending_;  // text not yet emitted
  int32_t n_tokens_ = 0;
  FinishReason reason_ = FinishReason::kNone;
};

}  // namespace aifn::engine
