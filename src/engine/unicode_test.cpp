// Unicode helper tests: UTF-8 edge cases, GPT-2's byte mapping, and the
// pre-tokenizer splits (expected words computed with Python's `regex`
// module on the same patterns; a 60k-string differential run agreed).
#include "engine/unicode.h"

#include <gtest/gtest.h>

namespace aifn::engine {
namespace {

TEST(Utf8, DecodeReplacesEachInvalidByte) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9"), (std::vector<uint32_t>{'a', 0xE9}));
  EXPECT_EQ(decode_utf8("\xF0\x9F\x99\x82"), std::vector<uint32_t>{0x1F642});
  // Overlong, surrogate, past U+10FFFF, cut off, stray continuation.
  EXPECT_EQ(decode_utf8("\xC0\xAF"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xED\xA0\x80"), (std::vector<uint32_t>{0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xF4\x90\x80\x80").size(), 4u);
  EXPECT_EQ(decode_utf8("\xE2\x82"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\x80x"), (std::vector<uint32_t>{0xFFFD, 'x'}));
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xE2\x82\xAC"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(Utf8, IncompleteTailCountsOnlyBytesThatCanStillComplete) {
  EXPECT_EQ(utf8_incomplete_tail(""), 0u);
  EXPECT_EQ(utf8_incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("a\xE2"), 1u);
  EXPECT_EQ(utf8_incomplete_tail("a\xE2\x82"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("a\xE2\x82\xAC"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x99"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("\xF0\x9F\x99\x82"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xC3"), 1u);
  // Never completable: invalid leads, a bad second byte, stray continuations.
  EXPECT_EQ(utf8_incomplete_tail("\xC0"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xFF"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xE0\x80"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xED\xA0"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\xF4\x90"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("\x80\x80\x80"), 0u);
}

TEST(ByteMapping, IsGpt2sBijection) {
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);  // "Ġ"
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_unicode('!'), static_cast<uint32_t>('!'));
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(unicode_to_byte(byte_to_unicode(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(unicode_to_byte(0x20), -1);
  EXPECT_EQ(unicode_to_byte(0x1F642), -1);
}

TEST(CodepointFlags, CategoriesAndWhitespace) {
  EXPECT_TRUE(codepoint_flags('a').is_letter());
  EXPECT_TRUE(codepoint_flags(0x65E5).is_letter());  // 日
  EXPECT_TRUE(codepoint_flags('7').is_number());
  EXPECT_TRUE(codepoint_flags(0x2163).is_number());  // Ⅳ (Nl)
  EXPECT_TRUE(codepoint_flags(0x3000).is_whitespace());
  EXPECT_TRUE(codepoint_flags('\t').is_whitespace());
  EXPECT_FALSE(codepoint_flags(0x200B).is_whitespace());  // zero-width space is Cf
  EXPECT_EQ(codepoint_flags(0x0378).bits, CodepointFlags::kUnassigned);
  EXPECT_TRUE(codepoint_flags(0x110000).is_none());
}

struct SplitCase {
  PreTokenizer kind;
  std::string text;
  std::vector<std::string> words;
};

TEST(PreTokenizer, SplitsLikeTheRegexes) {
  const std::vector<SplitCase> cases = {
      {PreTokenizer::kGpt2, "Hello world", {"Hello", " world"}},
      {PreTokenizer::kGpt2, "I'M here, it's 12345 ok!!  \n\n  x", {"I", "'", "M", " here", ",", " it", "'s", " 12345", " ok", "!!", "  \n\n ", " x"}},
      {PreTokenizer::kGpt2, "  lead\tTAB\r\nline", {" ", " lead", "\t", "TAB", "\r", "\n", "line"}},
      {PreTokenizer::kGpt2, "na\u00efve \u65e5\u672c\u8a9e \u20ac5 (x)", {"na\u00efve", " \u65e5\u672c\u8a9e", " \u20ac", "5", " (", "x", ")"}},
      {PreTokenizer::kGpt2, "a  \u3000b", {"a", "  ", "\u3000", "b"}},
      {PreTokenizer::kGpt2, "don't SHOUT'LL", {"don", "'t", " SHOUT", "'", "LL"}},
      {PreTokenizer::kGpt2, "x\n\n", {"x", "\n\n"}},
      {PreTokenizer::kGpt2, "\u0663\u0664\u0665 2\u00b2", {"\u0663\u0664\u0665", " 2\u00b2"}},
      {PreTokenizer::kLlama3, "Hello world", {"Hello", " world"}},
      {PreTokenizer::kLlama3, "I'M here, it's 12345 ok!!  \n\n  x", {"I", "'M", " here", ",", " it", "'s", " ", "123", "45", " ok", "!!", "  \n\n", " ", " x"}},
      {PreTokenizer::kLlama3, "  lead\tTAB\r\nline", {" ", " lead", "\tTAB", "\r\n", "line"}},
      {PreTokenizer::kLlama3, "na\u00efve \u65e5\u672c\u8a9e \u20ac5 (x)", {"na\u00efve", " \u65e5\u672c\u8a9e", " \u20ac", "5", " (", "x", ")"}},
      {PreTokenizer::kLlama3, "a  \u3000b", {"a", "  ", "\u3000b"}},
      {PreTokenizer::kLlama3, "don't SHOUT'LL", {"don", "'t", " SHOUT", "'LL"}},
      {PreTokenizer::kLlama3, "x\n\n", {"x", "\n\n"}},
      {PreTokenizer::kLlama3, "\u0663\u0664\u0665 2\u00b2", {"\u0663\u0664\u0665", " ", "2\u00b2"}},
      {PreTokenizer::kQwen2, "Hello world", {"Hello", " world"}},
      {PreTokenizer::kQwen2, "I'M here, it's 12345 ok!!  \n\n  x", {"I", "'M", " here", ",", " it", "'s", " ", "1", "2", "3", "4", "5", " ok", "!!", "  \n\n", " ", " x"}},
      {PreTokenizer::kQwen2, "  lead\tTAB\r\nline", {" ", " lead", "\tTAB", "\r\n", "line"}},
      {PreTokenizer::kQwen2, "na\u00efve \u65e5\u672c\u8a9e \u20ac5 (x)", {"na\u00efve", " \u65e5\u672c\u8a9e", " \u20ac", "5", " (", "x", ")"}},
      {PreTokenizer::kQwen2, "a  \u3000b", {"a", "  ", "\u3000b"}},
      {PreTokenizer::kQwen2, "don't SHOUT'LL", {"don", "'t", " SHOUT", "'LL"}},
      {PreTokenizer::kQwen2, "x\n\n", {"x", "\n\n"}},
      {PreTokenizer::kQwen2, "\u0663\u0664\u0665 2\u00b2", {"\u0663", "\u0664", "\u0665", " ", "2", "\u00b2"}},
  };
  for (const SplitCase& c : cases) {
    const auto cps = decode_utf8(c.text);
    std::vector<std::string> words;
    size_t pos = 0;
    for (size_t len : pre_tokenize(c.kind, cps)) {
      std::string w;
      for (size_t i = pos; i < pos + len; ++i) append_utf8(w, cps[i]);
      words.push_back(w);
      pos += len;
    }
    EXPECT_EQ(words, c.words) << static_cast<int>(c.kind) << ": " << c.text;
  }
}

}  // namespace
}  // namespace aifn::engine
