// Chat templates: renders a list of chat messages into the prompt text a
// model was trained on. No Jinja: the format is recognised from markers in
// the GGUF's tokenizer.chat_template (see detect_chat_format) and rendered by
// hand. Formats: ChatML (Qwen, many fine-tunes; also the fallback), Llama 3,
// Llama 2 (system in <<SYS>>), Mistral [INST] (system folded into the first
// user turn), Gemma and Phi-3.
// The result is a list of segments: template markup (tokenize with control
// tokens parsed) and message content (tokenized as plain text, so a user
// cannot forge "<|im_end|>"); pass it to Tokenizer::tokenize(segments, true).
// The BOS token is not part of the rendering: the tokenizer adds it.
// Called by the engine's chat-completions path. Pure functions: thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "engine/tokenizer.h"

namespace aifn::engine {

enum class ChatFormat { kChatMl, kLlama3, kLlama2, kMistral, kGemma, kPhi3 };

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Owns the text; segments() views it.
class ChatPrompt {
 public:
  void markup(std::string_view text) { append(text, true); }
  void content(std::string_view text) { append(text, false); }

  // The whole prompt as one string (what llama.cpp would tokenize with
  // parse_special; useful for logs and tests).
  const std::string& text() const { return text_; }
  std::vector<TextSegment> segments() const;
  // Strings that end the assistant's turn (stop strings for models whose
  // end-of-turn marker is not a single control token).
  std::vector<std::string> stop;

 private:
  void append(std::string_view text, bool special);
  std::string text_;
  std::vector<std::pair<size_t, bool>> ends_;  // segment end offsets, parse_special
};

// Picks the format from a template's source; ChatML when nothing matches
// (including an empty template).
ChatFormat detect_chat_format(std::string_view template_source);

std::string_view chat_format_name(ChatFormat format);  // "chatml", "llama3", ...
std::optional<ChatFormat> chat_format_from_name(std::string_view name);

// Renders messages; with add_generation_prompt the assistant's turn is opened
// so the model continues as the assistant. A role other than system, user or
// assistant is an error (a role string is written into markup).
tl::expected<ChatPrompt, std::string> render_chat(ChatFormat format,
                                                  std::span<const ChatMessage> messages,
                                                  bool add_generation_prompt = true);

}  // namespace aifn::engine
