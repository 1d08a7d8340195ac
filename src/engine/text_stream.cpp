#include "engine/text_stream.h"

#include <algorithm>

#include "engine/unicode.h"

namespace aifn::engine {

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  const size_t keep = utf8_incomplete_tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEog:
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kNone:
      break;
  }
  return "";
}

GenerationStream::GenerationStream(const Tokenizer& tokenizer, GenerationLimits limits)
    : tokenizer_(tokenizer), limits_(std::move(limits)) {
  limits_.stop.erase(std::remove(limits_.stop.begin(), limits_.stop.end(), std::string()),
                     limits_.stop.end());
  if (limits_.max_tokens <= 0) reason_ = FinishReason::kLength;
}

std::string GenerationStream::release(bool final) {
  // A stop string anywhere in the unsent text ends generation there. The
  // earliest match wins, so overlapping stop strings cut as early as possible.
  size_t cut = std::string::npos;
  for (const std::string& s : limits_.stop) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    reason_ = FinishReason::kStop;
    return out;
  }
  if (final) {
    std::string out;
    out.swap(pending_);
    return out;
  }
  // Hold back the longest tail that could still grow into a stop string, and
  // an unfinished UTF-8 character.
  size_t hold = utf8_incomplete_tail(pending_);
  for (const std::string& s : limits_.stop) {
    const size_t max = std::min(s.size() - 1, pending_.size());
    for (size_t len = max; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

tl::expected<std::string, std::string> GenerationStream::push(TokenId id) {
  if (done()) return std::string();
  auto piece = tokenizer_.token_to_piece(id);
  if (!piece) return tl::unexpected(piece.error());
  ++n_tokens_;
  if (!limits_.ignore_eos && tokenizer_.is_eog(id)) {
    std::string out = release(true);
    reason_ = FinishReason::kEog;
    return out;
  }
  pending_.append(*piece);
  const bool last = n_tokens_ >= limits_.max_tokens;
  std::string out = release(false);
  if (done()) return out;  // a stop string
  if (last) {
    out += release(true);
    if (!done()) reason_ = FinishReason::kLength;
  }
  return out;
}

std::string GenerationStream::finish() { return release(true); }

}  // namespace aifn::engine
