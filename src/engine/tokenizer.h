// Tokenizer: turns text into token ids and back for a GGUF model's own
// vocabulary, matching llama.cpp (b4747) token for token. Two algorithms:
// SentencePiece-style ("llama": spaces become U+2581, pieces merge by score,
// unknown characters fall back to <0xXX> byte tokens) and byte-level BPE
// ("gpt2": GPT-2's byte-to-char mapping, a pre-tokenizer regex chosen by
// tokenizer.ggml.pre, ranked merges). Built from a plain TokenizerSpec so it
// can be tested without a model file; from_gguf() fills the spec from a GGUF.
// Called by the engine (prompt in, sampled tokens out) and by the gateway's
// token counting. Immutable after create(): any number of threads may call
// its const methods concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace aifn::engine {

class GgufFile;

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Everything a tokenizer needs, as the GGUF's tokenizer.ggml.* keys hold it.
struct TokenizerSpec {
  std::string model = "llama";        // "llama" (SentencePiece) | "gpt2" (byte-level BPE)
  std::string pre = "default";        // gpt2 pre-tokenizer: "gpt-2", "llama-bpe", "qwen2", ...
  std::vector<std::string> tokens;    // token text by id
  std::vector<float> scores;          // SentencePiece merge scores (empty: all 0)
  std::vector<int32_t> token_types;   // TokenType values (empty: all normal)
  std::vector<std::string> merges;    // BPE merges "left right", highest priority first
  TokenId bos_id = kNoToken;
  TokenId eos_id = kNoToken;
  TokenId unk_id = kNoToken;
  TokenId pad_id = kNoToken;
  TokenId eot_id = kNoToken;          // end of turn (e.g. <|eot_id|>), also ends generation
  TokenId eom_id = kNoToken;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;      // SentencePiece: prefix the text with one space
  // detokenize() tidies " ," " 's" etc. as llama.cpp does for most BPE vocabularies
  // (create() sets it from model/pre when not given: true for gpt2 except qwen2 and
  // the other pre-tokenizers llama.cpp exempts).
  std::optional<bool> clean_spaces;
  std::string chat_template;          // tokenizer.chat_template, if any (for chat_template.h)

  // Reads tokenizer.ggml.* (and tokenizer.chat_template), with llama.cpp's
  // defaults for keys that are absent.
  static tl::expected<TokenizerSpec, std::string> from_gguf(const GgufFile& file);
};

// A piece of a prompt and whether control-token text inside it becomes
// control tokens (template markup) or stays text (user content).
struct TextSegment {
  std::string_view text;
  bool parse_special = false;
};

class Tokenizer {
 public:
  enum class Kind { kSpm, kBpe };

  // Checks the spec (ids in range, array sizes agree, known model) and builds
  // the lookup tables.
  static tl::expected<std::unique_ptr<Tokenizer>, std::string> create(TokenizerSpec spec);
  static tl::expected<std::unique_ptr<Tokenizer>, std::string> from_gguf(const GgufFile& file);

  // llama_tokenize: add_special adds BOS/EOS as add_bos/add_eos say;
  // parse_special makes text equal to a control token's text that token
  // (user-defined tokens always match, as in llama.cpp). Never fails: any
  // bytes tokenize (BPE reads invalid UTF-8 as U+FFFD, SentencePiece keeps
  // the raw bytes via byte tokens).
  std::vector<TokenId> tokenize(std::string_view text, bool add_special,
                                bool parse_special = false) const;

  // Tokenizes segments as if they were one text, but finds control tokens
  // only in segments with parse_special, so user content that spells
  // "<|im_end|>" cannot forge template markup. Text on either side of a
  // segment boundary is tokenized together (merges can span it).
  std::vector<TokenId> tokenize(std::span<const TextSegment> segments, bool add_special) const;

  // llama_token_to_piece: the bytes a token stands for (SentencePiece U+2581
  // -> space, byte tokens -> their byte, BPE chars -> bytes). Control and
  // unknown tokens give "" unless special. An id out of range is an error.
  tl::expected<std::string, std::string> token_to_piece(TokenId id, bool special = false) const;

  // llama_detokenize: the concatenated pieces. With add_space_prefix the
  // first token's leading space is dropped (it was added by tokenize), unless
  // the first token is BOS and remove_special is false. remove_special also
  // drops a leading BOS and trailing EOS.
  tl::expected<std::string, std::string> detokenize(std::span<const TokenId> tokens,
                                                    bool remove_special = false,
                                                    bool unparse_special = false) const;

  Kind kind() const { return kind_; }
  size_t n_vocab() const { return spec_.tokens.size(); }
  TokenId bos_id() const { return spec_.bos_id; }
  TokenId eos_id() const { return spec_.eos_id; }
  bool add_bos() const { return spec_.add_bos; }
  bool add_eos() const { return spec_.add_eos; }
  // End of generation: EOS, EOT, EOM and the usual end-of-turn control tokens
  // (<|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, <|endoftext|>, ...).
  bool is_eog(TokenId id) const;
  const std::vector<TokenId>& eog_ids() const { return eog_ids_; }
  // Raw vocabulary text of a token ("" when out of range).
  std::string_view token_text(TokenId id) const;
  TokenType token_type(TokenId id) const;
  // Id of the token whose text is exactly text, or kNoToken.
  TokenId find_token(std::string_view text) const;
  const TokenizerSpec& spec() const { return spec_; }

 private:
  Tokenizer() = default;

  struct Fragment {
    std::string_view text;     // raw text when token == kNoToken
    TokenId token = kNoToken;  // a special token matched in the input
  };
  std::vector<Fragment> partition_special(std::string_view text, bool parse_special) const;
  std::vector<TokenId> tokenize_fragments(const std::vector<Fragment>& fragments,
                                          bool add_special) const;
  void tokenize_spm(std::string_view text, std::vector<TokenId>& out) const;
  void tokenize_bpe(std::string_view text, std::vector<TokenId>& out) const;
  void bpe_word(std::string_view word, std::vector<TokenId>& out) const;
  TokenId spm_byte_token(uint8_t byte) const;
  int merge_rank(std::string_view left, std::string_view right) const;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  TokenizerSpec spec_;
  Kind kind_ = Kind::kSpm;
  int pre_ = 0;                          // PreTokenizer (unicode.h) for BPE
  bool ignore_merges_ = false;           // llama-3: a word that is a token stays whole
  bool clean_spaces_ = false;
  std::vector<TokenType> types_;
  std::vector<std::string> pieces_;      // decoded bytes of each token
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> text_to_id_;
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> merge_ranks_;  // "l r"
  std::vector<TokenId> special_by_length_;  // control/user-defined/unknown, longest first
  std::vector<TokenId> eog_ids_;
  std::vector<TokenId> byte_tokens_;     // SentencePiece <0xXX> ids (kNoToken if absent)
};

}  // namespace aifn::engine
