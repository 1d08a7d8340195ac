#include "engine/chat_template.h"

#include "engine/unicode.h"

namespace aifn::engine {

namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// A role for an error message: short and valid UTF-8.
std::string sanitize_role(std::string_view role) { return sanitize_utf8(role.substr(0, 40)); }

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

void render_chatml(ChatPrompt& p, std::span<const ChatMessage> msgs, bool gen) {
  for (const ChatMessage& m : msgs) {
    p.markup("<|im_start|>" + m.role + "\n");
    p.content(m.content);
    p.markup("<|im_end|>\n");
  }
  if (gen) p.markup("<|im_start|>assistant\n");
  p.stop = {"<|im_end|>"};
}

void render_llama3(ChatPrompt& p, std::span<const ChatMessage> msgs, bool gen) {
  // Meta's template trims each message.
  for (const ChatMessage& m : msgs) {
    p.markup("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n");
    p.content(trim(m.content));
    p.markup("<|eot_id|>");
  }
  if (gen) p.markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
  p.stop = {"<|eot_id|>"};
}

// Llama 2 (Meta's template): "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]
// {assistant} </s><s>[INST] {user} [/INST]"; the first <s> is the tokenizer's BOS.
// Mistral: the same turns without <<SYS>>: "[INST] {user} [/INST]{assistant}</s>",
// the system prompt folded into the first user turn.
void render_inst(ChatPrompt& p, std::span<const ChatMessage> msgs, bool llama2) {
  std::string system;
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") {
      if (!system.empty()) system += "\n\n";
      system += trim(m.content);
    }
  }
  bool first_user = true;
  bool after_assistant = false;
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") continue;
    if (m.role == "user") {
      p.markup(after_assistant ? (llama2 ? "<s>[INST] " : "[INST] ") : "[INST] ");
      if (first_user && !system.empty()) {
        if (llama2) {
          p.markup("<<SYS>>\n");
          p.content(system);
          p.markup("\n<</SYS>>\n\n");
        } else {
          p.content(system + "\n\n");
        }
      }
      first_user = false;
      p.content(trim(m.content));
      p.markup(" [/INST]");
      after_assistant = false;
    } else {  // assistant
      if (llama2) {
        p.content(" ");
        p.content(trim(m.content));
        p.markup(" </s>");
      } else {
        p.content(trim(m.content));
        p.markup("</s>");
      }
      after_assistant = true;
    }
  }
  if (first_user && !system.empty()) {
    // Only a system message: still show it to the model.
    p.markup("[INST] ");
    if (llama2) {
      p.markup("<<SYS>>\n");
      p.content(system);
      p.markup("\n<</SYS>>\n\n [/INST]");
    } else {
      p.content(system);
      p.markup(" [/INST]");
    }
  }
  p.stop = {"</s>"};
}

// Gemma: "<start_of_turn>user\n{content}<end_of_turn>\n", the assistant is
// "model", and the system prompt is folded into the first user turn.
void render_gemma(ChatPrompt& p, std::span<const ChatMessage> msgs, bool gen) {
  std::string system;
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") system += std::string(trim(m.content)) + "\n\n";
  }
  bool first_user = true;
  for (const ChatMessage& m : msgs) {
    if (m.role == "system") continue;
    p.markup(std::string("<start_of_turn>") + (m.role == "assistant" ? "model" : "user") + "\n");
    if (m.role == "user" && first_user) {
      p.content(system);
      first_user = false;
    }
    p.content(trim(m.content));
    p.markup("<end_of_turn>\n");
  }
  if (gen) p.markup("<start_of_turn>model\n");
  p.stop = {"<end_of_turn>"};
}

void render_phi3(ChatPrompt& p, std::span<const ChatMessage> msgs, bool gen) {
  for (const ChatMessage& m : msgs) {
    p.markup("<|" + m.role + "|>\n");
    p.content(m.content);
    p.markup("<|end|>\n");
  }
  if (gen) p.markup("<|assistant|>\n");
  p.stop = {"<|end|>"};
}

}  // namespace

void ChatPrompt::append(std::string_view text, bool special) {
  if (text.empty()) return;
  text_.append(text);
  if (!ends_.empty() && ends_.back().second == special) {
    ends_.back().first = text_.size();
  } else {
    ends_.emplace_back(text_.size(), special);
  }
}

std::vector<TextSegment> ChatPrompt::segments() const {
  std::vector<TextSegment> out;
  size_t start = 0;
  for (const auto& [end, special] : ends_) {
    out.push_back({std::string_view(text_).substr(start, end - start), special});
    start = end;
  }
  return out;
}

ChatFormat detect_chat_format(std::string_view t) {
  if (contains(t, "<|im_start|>")) return ChatFormat::kChatMl;
  if (contains(t, "<|start_header_id|>")) return ChatFormat::kLlama3;
  if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? ChatFormat::kLlama2 : ChatFormat::kMistral;
  if (contains(t, "<start_of_turn>")) return ChatFormat::kGemma;
  if (contains(t, "<|assistant|>") && contains(t, "<|end|>")) return ChatFormat::kPhi3;
  return ChatFormat::kChatMl;
}

std::string_view chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatMl: return "chatml";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kLlama2: return "llama2";
    case ChatFormat::kMistral: return "mistral";
    case ChatFormat::kGemma: return "gemma";
    case ChatFormat::kPhi3: return "phi3";
  }
  return "chatml";
}

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (ChatFormat f : {ChatFormat::kChatMl, ChatFormat::kLlama3, ChatFormat::kLlama2,
                       ChatFormat::kMistral, ChatFormat::kGemma, ChatFormat::kPhi3}) {
    if (chat_format_name(f) == name) return f;
  }
  return std::nullopt;
}

tl::expected<ChatPrompt, std::string> render_chat(ChatFormat format,
                                                  std::span<const ChatMessage> messages,
                                                  bool add_generation_prompt) {
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return tl::unexpected("unsupported chat role '" + sanitize_role(m.role) +
                            "' (expected system, user or assistant)");
    }
  }
  ChatPrompt p;
  switch (format) {
    case ChatFormat::kChatMl: render_chatml(p, messages, add_generation_prompt); break;
    case ChatFormat::kLlama3: render_llama3(p, messages, add_generation_prompt); break;
    case ChatFormat::kLlama2: render_inst(p, messages, true); break;
    case ChatFormat::kMistral: render_inst(p, messages, false); break;
    case ChatFormat::kGemma: render_gemma(p, messages, add_generation_prompt); break;
    case ChatFormat::kPhi3: render_phi3(p, messages, add_generation_prompt); break;
  }
  return p;
}

}  // namespace aifn::engine
