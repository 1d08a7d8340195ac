// Text stream tests: UTF-8 holdback, stop strings, EOS and max_tokens.
#include "engine/text_stream.h"

#include <gtest/gtest.h>

namespace aifn::engine {
namespace {

TEST(Utf8Stream, HoldsBackAPartialCharacterUntilItCompletes) {
  Utf8Stream s;
  EXPECT_EQ(s.push("a\xE2"), "a");
  EXPECT_EQ(s.held(), 1u);
  EXPECT_EQ(s.push("\x82"), "");
  EXPECT_EQ(s.push("\xAC" "b"), "\xE2\x82\xAC" "b");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.push("\x99\x82"), "\xF0\x9F\x99\x82");
  EXPECT_EQ(s.flush(), "");
}

TEST(Utf8Stream, FlushesAPartialCharacterAsIsAtTheEnd) {
  Utf8Stream s;
  EXPECT_EQ(s.push("x\xE6\x97"), "x");
  EXPECT_EQ(s.flush(), "\xE6\x97");
  EXPECT_EQ(s.held(), 0u);
}

TEST(Utf8Stream, InvalidBytesPassAtOnce) {
  Utf8Stream s;
  EXPECT_EQ(s.push("\xFF"), "\xFF");
  EXPECT_EQ(s.push("\xC0"), "\xC0");          // can never start a character
  EXPECT_EQ(s.push("\x80\x80"), "\x80\x80");  // stray continuations
}

// A byte-level tokenizer where token i < 256 is byte i, plus EOS.
std::unique_ptr<Tokenizer> byte_tokenizer() {
  TokenizerSpec spec;
  spec.model = "llama";
  spec.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    spec.tokens.push_back(buf);
    spec.token_types.push_back(6);
  }
  spec.tokens.push_back("</s>");
  spec.token_types.push_back(3);
  spec.eos_id = 256;
  return Tokenizer::create(spec).value();
}

std::string run(GenerationStream& g, std::string_view bytes) {
  std::string out;
  for (char c : bytes) out += g.push(static_cast<uint8_t>(c)).value();
  return out;
}

TEST(GenerationStream, EmitsCompleteCharactersAsTheyArrive) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {}, false});
  EXPECT_EQ(g.push('h').value(), "h");
  EXPECT_EQ(g.push(0xE2).value(), "");
  EXPECT_EQ(g.push(0x82).value(), "");
  EXPECT_EQ(g.push(0xAC).value(), "\xE2\x82\xAC");
  EXPECT_FALSE(g.done());
}

TEST(GenerationStream, EosEndsAndFlushesAPartialCharacter) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {}, false});
  EXPECT_EQ(run(g, "ok\xE2\x82"), "ok");
  EXPECT_EQ(g.push(256).value(), "\xE2\x82");
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.finish_reason(), FinishReason::kEog);
  EXPECT_EQ(finish_reason_name(g.finish_reason()), "stop");
  EXPECT_EQ(g.push('x').value(), "");
}

TEST(GenerationStream, IgnoreEosKeepsGoing) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {}, true});
  EXPECT_EQ(g.push(256).value(), "");
  EXPECT_FALSE(g.done());
  EXPECT_EQ(g.push('a').value(), "a");
}

TEST(GenerationStream, MaxTokensEndsWithLength) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {3, {}, false});
  EXPECT_EQ(g.push('a').value(), "a");
  EXPECT_EQ(g.push('b').value(), "b");
  EXPECT_EQ(g.push(0xE2).value(), "\xE2");  // the last token flushes as is
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.finish_reason(), FinishReason::kLength);
  EXPECT_EQ(finish_reason_name(g.finish_reason()), "length");
  EXPECT_EQ(g.n_tokens(), 3);
  GenerationStream none(*tok, {0, {}, false});
  EXPECT_TRUE(none.done());
}

TEST(GenerationStream, StopStringIsNeverEmitted) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {"\nUser:"}, false});
  // "\nUs" could start the stop string: held back.
  EXPECT_EQ(run(g, "Hi\nUs"), "Hi");
  EXPECT_EQ(run(g, "e"), "");
  EXPECT_EQ(run(g, "r:"), "");
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(run(g, "more"), "");
}

TEST(GenerationStream, HeldTextThatIsNotAStopStringIsReleased) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {"\nUser:", "###"}, false});
  EXPECT_EQ(run(g, "a\nUs"), "a");
  EXPECT_EQ(run(g, "ed"), "\nUsed");
  EXPECT_EQ(run(g, "##"), "");
  EXPECT_EQ(run(g, "x"), "##x");
  EXPECT_FALSE(g.done());
}

TEST(GenerationStream, TextBeforeAStopStringInTheSameTokenIsEmitted) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {"b"}, false});
  EXPECT_EQ(run(g, "aab"), "aa");
  EXPECT_TRUE(g.done());
}

TEST(GenerationStream, EosReleasesAHeldStopPrefix) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {"STOP"}, false});
  EXPECT_EQ(run(g, "x ST"), "x ");
  EXPECT_EQ(g.push(256).value(), "ST");
  GenerationStream h(*tok, {100, {"STOP"}, false});
  EXPECT_EQ(run(h, "y STO"), "y ");
  EXPECT_EQ(h.finish(), "STO");
}

TEST(GenerationStream, OutOfRangeTokenIsAnError) {
  auto tok = byte_tokenizer();
  GenerationStream g(*tok, {100, {}, false});
  EXPECT_FALSE(g.push(257).has_value());
  EXPECT_FALSE(g.push(-3).has_value());
  EXPECT_EQ(g.n_tokens(), 0);
}

}  // namespace
}  // namespace aifn::engine
