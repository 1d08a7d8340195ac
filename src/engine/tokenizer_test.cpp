// Tokenizer tests: llama.cpp's reference vectors for every model in the
// shared testdata, round trips, hostile input, and small hand-made
// vocabularies that pin down the merge order and special-token handling.
#include "engine/tokenizer.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>

#include "engine/gguf.h"
#include "engine/test_util.h"
#include "engine/unicode.h"

namespace aifn::engine {
namespace {

namespace json = boost::json;

std::string to_hex(std::string_view bytes) {
  std::string out;
  char buf[3];
  for (char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
    out += buf;
  }
  return out;
}

std::vector<TokenId> ids_of(const json::value& v) {
  std::vector<TokenId> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<TokenId>(x.to_number<int64_t>()));
  return out;
}

struct Reference {
  std::string name;
  json::value vectors;
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Tokenizer> tokenizer;
};

// Loads each reference model's tokenizer once for the whole binary.
const std::vector<Reference>& references() {
  static const std::vector<Reference> refs = [] {
    std::vector<Reference> out;
    const std::string dir = testing::testdata_dir();
    for (const std::string& stem : testing::reference_models()) {
      Reference r;
      r.name = stem;
      const std::string json_path = dir + "/" + stem + ".json";
      if (!std::filesystem::exists(json_path)) continue;
      r.vectors = json::parse(testing::read_file(json_path));
      auto file = GgufFile::open(dir + "/" + stem + ".gguf");
      if (!file) {
        ADD_FAILURE() << stem << ": " << file.error();
        continue;
      }
      r.gguf = std::move(*file);
      auto tok = Tokenizer::from_gguf(*r.gguf);
      if (!tok) {
        ADD_FAILURE() << stem << ": " << tok.error();
        continue;
      }
      r.tokenizer = std::move(*tok);
      out.push_back(std::move(r));
    }
    return out;
  }();
  return refs;
}

TEST(TokenizerVectors, EveryReferenceModelIsPresent) {
  // Five models ship in the testdata; a missing one would silently skip tests.
  EXPECT_GE(references().size(), 5u) << "testdata dir: " << testing::testdata_dir();
}

TEST(TokenizerVectors, TokenizeMatchesLlamaCpp) {
  for (const Reference& r : references()) {
    const auto& vocab = r.vectors.at("vocab").as_object();
    EXPECT_EQ(r.tokenizer->n_vocab(), static_cast<size_t>(vocab.at("n_vocab").to_number<int64_t>()));
    EXPECT_EQ(r.tokenizer->bos_id(), vocab.at("bos_id").to_number<int64_t>());
    EXPECT_EQ(r.tokenizer->eos_id(), vocab.at("eos_id").to_number<int64_t>());
    EXPECT_EQ(r.tokenizer->add_bos(), vocab.at("add_bos").as_bool());
    EXPECT_EQ(r.tokenizer->kind() == Tokenizer::Kind::kSpm, vocab.at("type").as_string() == "spm");
    for (const auto& c : r.vectors.at("tokenization").as_array()) {
      const std::string text(c.at("text").as_string());
      EXPECT_EQ(r.tokenizer->tokenize(text, false), ids_of(c.at("no_bos")))
          << r.name << " text: " << text;
      EXPECT_EQ(r.tokenizer->tokenize(text, true), ids_of(c.at("with_bos")))
          << r.name << " text: " << text;
    }
    const auto& prompt = r.vectors.at("prompt").as_object();
    EXPECT_EQ(r.tokenizer->tokenize(std::string(prompt.at("text").as_string()), true),
              ids_of(prompt.at("tokens")))
        << r.name;
  }
}

TEST(TokenizerVectors, PiecesAndDetokenizeMatchLlamaCpp) {
  for (const Reference& r : references()) {
    for (const auto& c : r.vectors.at("tokenization").as_array()) {
      const std::vector<TokenId> ids = ids_of(c.at("no_bos"));
      const auto& hex = c.at("pieces_hex").as_array();
      ASSERT_EQ(ids.size(), hex.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        auto piece = r.tokenizer->token_to_piece(ids[i]);
        ASSERT_TRUE(piece.has_value());
        EXPECT_EQ(to_hex(*piece), hex[i].as_string()) << r.name << " token " << ids[i];
      }
      auto text = r.tokenizer->detokenize(ids);
      ASSERT_TRUE(text.has_value());
      EXPECT_EQ(*text, c.at("detokenized").as_string()) << r.name;
    }
    // The greedy continuation's text is the plain concatenation of pieces
    // (what a streaming client sees), EOS contributing nothing.
    const auto& greedy = r.vectors.at("greedy").as_object();
    std::string streamed;
    for (TokenId id : ids_of(greedy.at("tokens"))) streamed += r.tokenizer->token_to_piece(id).value();
    EXPECT_EQ(to_hex(streamed), greedy.at("text_hex").as_string()) << r.name;
  }
}

const std::vector<std::string>& round_trip_strings() {
  static const std::vector<std::string> strings = {
      "",
      "a",
      " ",
      "  ",
      "\n",
      "Hello, World!",
      "  two leading spaces and trailing  ",
      "tabs\tand\nnewlines\r\n\r\nand more",
      "naïve café — “quoted” … ’s",
      "日本語のテキスト",
      "Ελληνικά и русский текст",
      "emoji 🙂🚀👍🏽 and flags 🇩🇪",
      "mixed123numbers4567and 89",
      "it's we're they've I'm we'll he'd IT'S",
      "<s></s><unk><|begin_of_text|><|end_of_text|>",
      "\x01\x02\x7f control bytes",
      "x",
      "€€€€€",
      "     ",
      "a\u00a0b\u3000c",       // no-break and ideographic spaces
      "e\u0301 combining",     // a mark after a letter
  };
  return strings;
}

TEST(TokenizerRoundTrip, PiecesConcatenateToTheInput) {
  for (const Reference& r : references()) {
    const bool spm = r.tokenizer->kind() == Tokenizer::Kind::kSpm;
    for (const std::string& s : round_trip_strings()) {
      std::string joined;
      for (TokenId id : r.tokenizer->tokenize(s, false)) joined += r.tokenizer->token_to_piece(id).value();
      // SentencePiece added one space in front of non-empty text.
      EXPECT_EQ(joined, (spm && !s.empty()) ? " " + s : s) << r.name << ": " << s;
    }
  }
}

TEST(TokenizerRoundTrip, DetokenizeInvertsTokenize) {
  for (const Reference& r : references()) {
    for (const std::string& s : round_trip_strings()) {
      auto text = r.tokenizer->detokenize(r.tokenizer->tokenize(s, false));
      ASSERT_TRUE(text.has_value());
      EXPECT_EQ(*text, s) << r.name;
    }
  }
}

TEST(TokenizerRoundTrip, InvalidUtf8IsKeptBySpmAndReplacedByBpe) {
  const std::vector<std::string> inputs = {
      std::string("\xff\xfe bad"), std::string("cut \xe2\x82"), std::string("\xc0\xaf overlong"),
      std::string("\xed\xa0\x80 surrogate"), std::string("\x80\x80\x80"),
      std::string("ok \xf8\x88\x80\x80\x80 five"), std::string("\xf4\x90\x80\x80 too big"),
  };
  for (const Reference& r : references()) {
    const bool spm = r.tokenizer->kind() == Tokenizer::Kind::kSpm;
    for (const std::string& s : inputs) {
      auto text = r.tokenizer->detokenize(r.tokenizer->tokenize(s, false));
      ASSERT_TRUE(text.has_value());
      EXPECT_EQ(*text, spm ? s : sanitize_utf8(s)) << r.name << ": " << to_hex(s);
    }
  }
}

TEST(TokenizerHostile, OutOfRangeIdsAreErrors) {
  for (const Reference& r : references()) {
    const auto n = static_cast<TokenId>(r.tokenizer->n_vocab());
    EXPECT_FALSE(r.tokenizer->token_to_piece(-1).has_value());
    EXPECT_FALSE(r.tokenizer->token_to_piece(n).has_value());
    EXPECT_FALSE(r.tokenizer->detokenize(std::vector<TokenId>{5, n}).has_value());
    EXPECT_FALSE(r.tokenizer->detokenize(std::vector<TokenId>{INT32_MIN}).has_value());
    EXPECT_TRUE(r.tokenizer->token_to_piece(n - 1).has_value());
    EXPECT_TRUE(r.tokenizer->token_text(n).empty());
  }
}

TEST(TokenizerHostile, LongAndRandomInputDoesNotCrash) {
  std::string junk;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1664525u + 1013904223u;
    junk.push_back(static_cast<char>(x >> 24));
  }
  for (const Reference& r : references()) {
    const auto ids = r.tokenizer->tokenize(junk, true, true);
    EXPECT_FALSE(ids.empty());
    auto text = r.tokenizer->detokenize(ids, true);
    ASSERT_TRUE(text.has_value());
  }
}

TEST(TokenizerSpecials, ControlTokenTextIsPlainUnlessParseSpecial) {
  for (const Reference& r : references()) {
    const TokenId eos = r.tokenizer->eos_id();
    const std::string eos_text(r.tokenizer->token_text(eos));
    const std::string text = "a" + eos_text + "b";
    const auto plain = r.tokenizer->tokenize(text, false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), eos), 0) << r.name;
    const auto parsed = r.tokenizer->tokenize(text, false, true);
    EXPECT_EQ(std::count(parsed.begin(), parsed.end(), eos), 1) << r.name;
    // Control tokens print nothing unless asked to.
    EXPECT_EQ(r.tokenizer->token_to_piece(eos).value(), "");
    EXPECT_EQ(r.tokenizer->token_to_piece(eos, true).value(), eos_text);
    EXPECT_TRUE(r.tokenizer->is_eog(eos));
    EXPECT_FALSE(r.tokenizer->is_eog(r.tokenizer->bos_id()));
  }
}

TEST(TokenizerSpecials, DetokenizeRemoveSpecialDropsBosAndKeepsSpace) {
  for (const Reference& r : references()) {
    const auto ids = r.tokenizer->tokenize("Hello world", true);
    // llama.cpp: with BOS removed, the text's leading space is kept.
    const bool spm = r.tokenizer->kind() == Tokenizer::Kind::kSpm;
    EXPECT_EQ(r.tokenizer->detokenize(ids, true).value(), spm ? " Hello world" : "Hello world");
    EXPECT_EQ(r.tokenizer->detokenize(ids, false).value(), spm ? " Hello world" : "Hello world");
    EXPECT_EQ(r.tokenizer->detokenize(ids, false, true).value(),
              std::string(r.tokenizer->token_text(r.tokenizer->bos_id())) +
                  (spm ? " Hello world" : "Hello world"));
  }
}

// --- Hand-made vocabularies -------------------------------------------------

TokenizerSpec tiny_spm() {
  TokenizerSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    spec.tokens.push_back(buf);
    spec.token_types.push_back(6);
  }
  spec.scores.assign(spec.tokens.size(), 0.0f);
  auto add = [&](std::string text, float score) {
    spec.tokens.push_back(std::move(text));
    spec.scores.push_back(score);
    spec.token_types.push_back(1);
  };
  add("\xE2\x96\x81", -100);  // ▁
  add("a", -100);
  add("b", -100);
  add("ab", -1);   // 263
  add("ba", -1);   // 264
  add("\xE2\x96\x81" "a", -5);
  add("aa", -2);
  add("<|user|>", 0);
  spec.token_types.back() = 4;  // user-defined: always matched
  spec.bos_id = 1;
  spec.eos_id = 2;
  spec.unk_id = 0;
  spec.add_bos = true;
  spec.add_space_prefix = true;
  return spec;
}

TEST(SpmTokenizer, EqualScoresMergeLeftmostFirst) {
  auto tok = Tokenizer::create(tiny_spm()).value();
  const TokenId ab = tok->find_token("ab"), ba = tok->find_token("ba");
  const TokenId b = tok->find_token("b");
  // "▁aba": "▁a" (-5) loses to "ab" and "ba" (-1 each); leftmost "ab" wins,
  // leaving "▁" "ab" "a".
  const auto ids = tok->tokenize("aba", false);
  EXPECT_EQ(ids, (std::vector<TokenId>{tok->find_token("\xE2\x96\x81"), ab, tok->find_token("a")}));
  // Without the prefix: "bab" -> "ba" "b".
  auto spec = tiny_spm();
  spec.add_space_prefix = false;
  auto plain = Tokenizer::create(spec).value();
  EXPECT_EQ(plain->tokenize("bab", false), (std::vector<TokenId>{ba, b}));
}

TEST(SpmTokenizer, HigherScoreWinsOverPosition) {
  auto tok = Tokenizer::create(tiny_spm()).value();
  // "▁aab": "aa" (-2) vs "ab" (-1): "ab" wins though it is to the right.
  const auto ids = tok->tokenize("aab", false);
  EXPECT_EQ(ids, (std::vector<TokenId>{tok->find_token("\xE2\x96\x81" "a"), tok->find_token("ab")}));
}

TEST(SpmTokenizer, UnknownCharactersFallBackToBytes) {
  auto tok = Tokenizer::create(tiny_spm()).value();
  const auto ids = tok->tokenize("é", false);  // C3 A9
  EXPECT_EQ(ids, (std::vector<TokenId>{tok->find_token("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->detokenize(ids).value(), "é");
}

TEST(SpmTokenizer, UserDefinedTokensAlwaysMatchAndResetTheSpacePrefix) {
  auto tok = Tokenizer::create(tiny_spm()).value();
  const TokenId user = tok->find_token("<|user|>");
  const auto ids = tok->tokenize("<|user|>a", false);
  // After a special token the next text gets the space prefix again.
  EXPECT_EQ(ids, (std::vector<TokenId>{user, tok->find_token("\xE2\x96\x81" "a")}));
}

TEST(SpmTokenizer, EmptyTextIsEmptyOrJustBos) {
  auto tok = Tokenizer::create(tiny_spm()).value();
  EXPECT_TRUE(tok->tokenize("", false).empty());
  EXPECT_EQ(tok->tokenize("", true), std::vector<TokenId>{1});
}

TEST(TokenizerSpecCheck, RejectsInconsistentSpecs) {
  TokenizerSpec empty;
  EXPECT_FALSE(Tokenizer::create(empty).has_value());
  auto spec = tiny_spm();
  spec.scores.pop_back();
  EXPECT_FALSE(Tokenizer::create(spec).has_value());
  spec = tiny_spm();
  spec.model = "bert";
  EXPECT_FALSE(Tokenizer::create(spec).has_value());
  spec = tiny_spm();
  spec.bos_id = 100000;  // out of range: ignored, not trusted
  auto tok = Tokenizer::create(spec);
  ASSERT_TRUE(tok.has_value());
  EXPECT_EQ((*tok)->bos_id(), kNoToken);
  EXPECT_EQ((*tok)->tokenize("a", true).size(), 1u);
}

std::string bpe_chars(std::string_view bytes) {
  std::string out;
  for (char c : bytes) append_utf8(out, byte_to_unicode(static_cast<uint8_t>(c)));
  return out;
}

TokenizerSpec tiny_bpe(std::string pre) {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(bpe_chars(std::string(1, static_cast<char>(b))));
  spec.merges = {bpe_chars(" ") + " t", "h e", bpe_chars(" t") + " he", "l l", "ll o", "1 2"};
  for (const char* t : {" t", "he", " the", "ll", "llo", "12"}) spec.tokens.push_back(bpe_chars(t));
  spec.tokens.push_back("hello");  // a whole word that the merges never build
  spec.tokens.push_back("<|bos|>");
  spec.tokens.push_back("<|eot_id|>");
  spec.token_types.assign(spec.tokens.size(), 1);
  spec.token_types[spec.tokens.size() - 2] = 3;
  spec.bos_id = static_cast<TokenId>(spec.tokens.size() - 2);
  spec.add_bos = true;
  return spec;
}

TEST(BpeTokenizer, MergesApplyInRankOrder) {
  auto tok = Tokenizer::create(tiny_bpe("gpt-2")).value();
  const auto ids = tok->tokenize(" the hello", false);
  // Words " the" and " hello": " t" (rank 0), "he" (1), " the" (2); then
  // "he", "ll", "llo" with the lone space left over.
  EXPECT_EQ(ids, (std::vector<TokenId>{tok->find_token(bpe_chars(" the")),
                                       tok->find_token(bpe_chars(" ")), tok->find_token("he"),
                                       tok->find_token("llo")}));
}

TEST(BpeTokenizer, Llama3KeepsWholeWordTokensAndMarksEotAsEog) {
  auto gpt2 = Tokenizer::create(tiny_bpe("gpt-2")).value();
  auto llama3 = Tokenizer::create(tiny_bpe("llama-bpe")).value();
  const TokenId hello = llama3->find_token("hello");
  EXPECT_EQ(llama3->tokenize("hello", false), std::vector<TokenId>{hello});
  EXPECT_NE(gpt2->tokenize("hello", false), std::vector<TokenId>{hello});
  const TokenId eot = llama3->find_token("<|eot_id|>");
  EXPECT_TRUE(llama3->is_eog(eot));
  EXPECT_EQ(llama3->token_type(eot), TokenType::kControl);
  EXPECT_EQ(llama3->tokenize("<|eot_id|>", false, true), std::vector<TokenId>{eot});
}

TEST(BpeTokenizer, DigitsGroupByPreTokenizer) {
  const std::string text = "12345";
  auto count_words = [&](const char* pre) {
    auto tok = Tokenizer::create(tiny_bpe(pre)).value();
    return tok->tokenize(text, false);
  };
  const auto t12 = Tokenizer::create(tiny_bpe("gpt-2")).value()->find_token("12");
  // gpt-2: one word "12345" -> "12" "3" "4" "5"; llama3: "123" "45" -> "12" "3" "4" "5";
  // qwen2: one digit per word -> no merge at all.
  EXPECT_EQ(count_words("gpt-2").front(), t12);
  EXPECT_EQ(count_words("llama-bpe").front(), t12);
  EXPECT_EQ(count_words("qwen2").size(), 5u);
  EXPECT_NE(count_words("qwen2").front(), t12);
}

TEST(BpeTokenizer, CleanSpacesFollowsThePreTokenizer) {
  auto gpt2 = Tokenizer::create(tiny_bpe("gpt-2")).value();
  auto qwen = Tokenizer::create(tiny_bpe("qwen2")).value();
  const std::string text = "a , b ' c 's";
  EXPECT_EQ(gpt2->detokenize(gpt2->tokenize(text, false)).value(), "a, b'c's");
  EXPECT_EQ(qwen->detokenize(qwen->tokenize(text, false)).value(), text);
}

}  // namespace
}  // namespace aifn::engine
