// libFuzzer target for the text side of the engine: tokenizing arbitrary
// bytes with both algorithms (with and without special-token parsing),
// detokenizing back, the UTF-8 stream and chat rendering. Checks the round
// trips, so a wrong split is a finding, not only a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/text_stream.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

using namespace aifn::engine;

namespace {

std::unique_ptr<Tokenizer> make(bool spm) {
  TokenizerSpec spec;
  spec.model = spm ? "llama" : "gpt2";
  spec.pre = "qwen2";  // no clean_spaces, so the round trip is exact
  spec.add_space_prefix = spm;
  for (int b = 0; b < 256; ++b) {
    std::string t;
    if (spm) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      t = buf;
    } else {
      append_utf8(t, byte_to_unicode(static_cast<uint8_t>(b)));
    }
    spec.tokens.push_back(t);
    spec.token_types.push_back(spm ? 6 : 1);
  }
  for (const char* t : {"\xE2\x96\x81", "\xE2\x96\x81" "a", "ab", "\xC4\xA0" "t", "he"}) {
    spec.tokens.push_back(t);
    spec.token_types.push_back(1);
  }
  spec.merges = {"\xC4\xA0 t", "h e"};
  spec.tokens.push_back("<|im_end|>");
  spec.token_types.push_back(3);
  spec.scores.assign(spec.tokens.size(), 0.0f);
  return Tokenizer::create(spec).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto spm = make(true);
  static const auto bpe = make(false);
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const Tokenizer* tok : {spm.get(), bpe.get()}) {
    const auto plain = tok->tokenize(text, false, false);
    const std::string back = tok->detokenize(plain).value();
    const std::string want = tok == spm.get() ? text : sanitize_utf8(text);
    // SentencePiece cannot tell a literal U+2581 from an escaped space.
    const bool ambiguous = tok == spm.get() && text.find("\xE2\x96\x81") != std::string::npos;
    if (back != want && !ambiguous) std::abort();
    const auto parsed = tok->tokenize(text, true, true);
    (void)tok->detokenize(parsed, true, true).value();
  }
  Utf8Stream stream;
  std::string streamed;
  for (size_t i = 0; i < text.size(); i += 3) streamed += stream.push(text.substr(i, 3));
  streamed += stream.flush();
  if (streamed != text) std::abort();
  const std::vector<ChatMessage> msgs = {{"system", text}, {"user", text}};
  for (auto f : {ChatFormat::kChatMl, ChatFormat::kLlama2, ChatFormat::kMistral}) {
    auto p = render_chat(f, msgs).value();
    (void)bpe->tokenize(p.segments(), true);
  }
  return 0;
}
