#include "engine/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "engine/gguf.h"
#include "engine/unicode.h"

namespace aifn::engine {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// End-of-turn token texts llama.cpp treats as end of generation (and as
// control tokens) whatever the GGUF says about them.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
};

bool is_special_type(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Parses "<0xXX>" (the byte tokens of SentencePiece vocabularies).
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    value <<= 4;
    if (c >= '0' && c <= '9') value |= c - '0';
    else if (c >= 'A' && c <= 'F') value |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') value |= c - 'a' + 10;
    else return -1;
  }
  return value;
}

// llama.cpp's clean_spaces pass of llama_detokenize (what Hugging Face calls
// clean_up_tokenization_spaces): " ?" " !" " ." " ," lose the space, " ' "
// becomes "'", and " 's" " 'm" " 're" " 've" lose the space.
std::string clean_spaces(const std::string& in) {
  std::string a;
  a.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char x = in[i];
    if (i > 0 && in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a.push_back(x);
  }
  std::string b;
  b.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i];
    if (i > 0 && x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();  // the space before
      b.push_back(x);
      a[++i] = '\0';  // and the one after (llama.cpp blanks it in place, so a
      continue;       // following " ' " no longer sees a space before it)
    }
    b.push_back(x);
  }
  std::string c;
  c.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    const char x = b[i];
    if (i > 0 && b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const char x2 = i + 2 < b.size() ? b[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
        c.pop_back();
      }
    }
    c.push_back(x);
  }
  return c;
}

}  // namespace

tl::expected<TokenizerSpec, std::string> TokenizerSpec::from_gguf(const GgufFile& file) {
  TokenizerSpec spec;
  auto model = file.get_string("tokenizer.ggml.model");
  if (!model) return tl::unexpected(std::string("GGUF has no tokenizer.ggml.model"));
  spec.model = *model;
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return tl::unexpected(std::string("GGUF has no tokenizer.ggml.tokens array"));
  spec.tokens = std::move(*tokens);
  if (auto v = file.get_float_array("tokenizer.ggml.scores")) spec.scores = std::move(*v);
  if (auto v = file.get_int_array("tokenizer.ggml.token_type")) spec.token_types = std::move(*v);
  if (auto v = file.get_string_array("tokenizer.ggml.merges")) spec.merges = std::move(*v);
  spec.pre = file.get_string("tokenizer.ggml.pre").value_or("default");
  spec.chat_template = file.get_string("tokenizer.chat_template").value_or("");

  const bool spm = spec.model == "llama";
  // llama.cpp's defaults when a key is absent.
  spec.bos_id = spm ? 1 : kNoToken;
  spec.eos_id = spm ? 2 : kNoToken;
  spec.unk_id = spm ? 0 : kNoToken;
  spec.add_bos = spm || spec.pre == "llama3" || spec.pre == "llama-v3" ||
                 spec.pre == "llama-bpe" || spec.pre == "falcon3";
  spec.add_eos = false;
  spec.add_space_prefix = spm;

  const size_t n = spec.tokens.size();
  auto read_id = [&](const char* key, TokenId& id) {
    if (auto v = file.get_int(key); v && *v >= 0 && static_cast<uint64_t>(*v) < n) {
      id = static_cast<TokenId>(*v);
    }
  };
  read_id("tokenizer.ggml.bos_token_id", spec.bos_id);
  read_id("tokenizer.ggml.eos_token_id", spec.eos_id);
  read_id("tokenizer.ggml.unknown_token_id", spec.unk_id);
  read_id("tokenizer.ggml.padding_token_id", spec.pad_id);
  read_id("tokenizer.ggml.eot_token_id", spec.eot_id);
  read_id("tokenizer.ggml.eom_token_id", spec.eom_id);
  if (auto v = file.get_bool("tokenizer.ggml.add_bos_token")) spec.add_bos = *v;
  if (auto v = file.get_bool("tokenizer.ggml.add_eos_token")) spec.add_eos = *v;
  if (auto v = file.get_bool("tokenizer.ggml.add_space_prefix")) spec.add_space_prefix = *v;
  return spec;
}

tl::expected<std::unique_ptr<Tokenizer>, std::string> Tokenizer::from_gguf(const GgufFile& file) {
  auto spec = TokenizerSpec::from_gguf(file);
  if (!spec) return tl::unexpected(spec.error());
  return create(std::move(*spec));
}

tl::expected<std::unique_ptr<Tokenizer>, std::string> Tokenizer::create(TokenizerSpec spec) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const size_t n = spec.tokens.size();
  if (n == 0) return tl::unexpected(std::string("tokenizer has no tokens"));
  if (n > static_cast<size_t>(INT32_MAX)) return tl::unexpected(std::string("tokenizer has too many tokens"));
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return tl::unexpected("tokenizer has " + std::to_string(n) + " tokens but " +
                          std::to_string(spec.scores.size()) + " scores");
  }
  if (!spec.token_types.empty() && spec.token_types.size() != n) {
    return tl::unexpected("tokenizer has " + std::to_string(n) + " tokens but " +
                          std::to_string(spec.token_types.size()) + " token types");
  }
  if (spec.model == "llama") {
    t->kind_ = Kind::kSpm;
  } else if (spec.model == "gpt2") {
    t->kind_ = Kind::kBpe;
  } else {
    return tl::unexpected("unsupported tokenizer model '" + spec.model +
                          "' (supported: llama, gpt2)");
  }
  // Ids outside the vocabulary are treated as absent rather than trusted.
  for (TokenId* id : {&spec.bos_id, &spec.eos_id, &spec.unk_id, &spec.pad_id, &spec.eot_id,
                      &spec.eom_id}) {
    if (*id < 0 || static_cast<size_t>(*id) >= n) *id = kNoToken;
  }
  if (t->kind_ == Kind::kBpe) {
    const std::string& pre = spec.pre;
    bool clean = true;
    if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3") {
      t->pre_ = static_cast<int>(PreTokenizer::kLlama3);
      t->ignore_merges_ = true;
    } else if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "megrez") {
      t->pre_ = static_cast<int>(PreTokenizer::kQwen2);
      clean = pre == "megrez";
    } else {
      // "gpt-2" and friends; unknown names get GPT-2's regex too.
      t->pre_ = static_cast<int>(PreTokenizer::kGpt2);
    }
    t->clean_spaces_ = spec.clean_spaces.value_or(clean);
  } else {
    t->clean_spaces_ = spec.clean_spaces.value_or(false);
  }

  // Empty token texts would match everywhere; llama.cpp renames them too.
  for (size_t i = 0; i < n; ++i) {
    if (spec.tokens[i].empty()) spec.tokens[i] = "[EMPTY_" + std::to_string(i) + "]";
  }
  t->types_.resize(n, TokenType::kNormal);
  for (size_t i = 0; i < spec.token_types.size(); ++i) {
    const int32_t v = spec.token_types[i];
    t->types_[i] = (v >= 1 && v <= 6) ? static_cast<TokenType>(v) : TokenType::kUndefined;
  }
  t->text_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) t->text_to_id_[spec.tokens[i]] = static_cast<TokenId>(i);

  // End of generation, as llama.cpp collects it.
  std::vector<TokenId> eog;
  for (std::string_view text : kEogTexts) {
    auto it = t->text_to_id_.find(text);
    if (it == t->text_to_id_.end()) continue;
    eog.push_back(it->second);
    t->types_[static_cast<size_t>(it->second)] = TokenType::kControl;
  }
  for (TokenId id : {spec.eos_id, spec.eot_id, spec.eom_id}) {
    if (id != kNoToken) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  t->eog_ids_ = std::move(eog);

  if (t->kind_ == Kind::kBpe) {
    t->merge_ranks_.reserve(spec.merges.size());
    for (size_t i = 0; i < spec.merges.size(); ++i) {
      const std::string& m = spec.merges[i];
      const size_t pos = m.find(' ', 1);
      if (pos == std::string::npos) continue;
      t->merge_ranks_.emplace(m, static_cast<int>(std::min<size_t>(i, INT32_MAX)));
    }
  } else {
    t->byte_tokens_.resize(256, kNoToken);
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      auto it = t->text_to_id_.find(std::string_view(buf));
      if (it == t->text_to_id_.end()) it = t->text_to_id_.find(std::string(1, static_cast<char>(b)));
      t->byte_tokens_[static_cast<size_t>(b)] =
          it != t->text_to_id_.end() ? it->second : spec.unk_id;
    }
  }

  // Pieces: the bytes each token stands for when detokenized.
  t->pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = spec.tokens[i];
    const TokenType type = t->types_[i];
    std::string& piece = t->pieces_[i];
    if (type == TokenType::kControl || type == TokenType::kUnknown ||
        type == TokenType::kUserDefined) {
      piece = text;
    } else if (type == TokenType::kNormal) {
      if (t->kind_ == Kind::kSpm) {
        piece = text;
        replace_all(piece, kSpmSpace, " ");
      } else {
        // Byte-level: each char stands for one byte. A char outside the
        // mapping (a malformed vocabulary) is kept as its UTF-8.
        for (uint32_t cp : decode_utf8(text)) {
          const int byte = unicode_to_byte(cp);
          if (byte >= 0) piece.push_back(static_cast<char>(byte));
          else append_utf8(piece, cp);
        }
      }
    } else if (type == TokenType::kByte && t->kind_ == Kind::kSpm) {
      const int byte = parse_byte_token(text);
      if (byte >= 0) piece.push_back(static_cast<char>(byte));
    }
  }

  // Tokens matched in the input before the algorithm runs, longest first so
  // that "<|im_start|>" wins over a shorter token it contains.
  for (size_t i = 0; i < n; ++i) {
    const TokenType type = t->types_[i];
    if (type == TokenType::kControl || type == TokenType::kUserDefined ||
        type == TokenType::kUnknown) {
      t->special_by_length_.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(t->special_by_length_.begin(), t->special_by_length_.end(),
                   [&](TokenId a, TokenId b) {
                     return spec.tokens[static_cast<size_t>(a)].size() >
                            spec.tokens[static_cast<size_t>(b)].size();
                   });
  t->spec_ = std::move(spec);
  return t;
}

std::string_view Tokenizer::token_text(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= spec_.tokens.size()) return {};
  return spec_.tokens[static_cast<size_t>(id)];
}

TokenType Tokenizer::token_type(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= types_.size()) return TokenType::kUndefined;
  return types_[static_cast<size_t>(id)];
}

TokenId Tokenizer::find_token(std::string_view text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? kNoToken : it->second;
}

bool Tokenizer::is_eog(TokenId id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

std::vector<Tokenizer::Fragment> Tokenizer::partition_special(std::string_view text,
                                                              bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({text, kNoToken});
  for (TokenId id : special_by_length_) {
    if (!parse_special && is_special_type(types_[static_cast<size_t>(id)])) continue;
    const std::string_view tok = spec_.tokens[static_cast<size_t>(id)];
    if (text.find(tok) == std::string_view::npos) continue;  // cheap skip
    std::vector<Fragment> next;
    next.reserve(frags.size() + 2);
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      while (true) {
        const size_t hit = rest.find(tok);
        if (hit == std::string_view::npos) break;
        if (hit > 0) next.push_back({rest.substr(0, hit), kNoToken});
        next.push_back({{}, id});
        rest.remove_prefix(hit + tok.size());
      }
      if (!rest.empty()) next.push_back({rest, kNoToken});
    }
    frags = std::move(next);
  }
  return frags;
}

std::vector<TokenId> Tokenizer::tokenize(std::string_view text, bool add_special,
                                         bool parse_special) const {
  return tokenize_fragments(partition_special(text, parse_special), add_special);
}

std::vector<TokenId> Tokenizer::tokenize(std::span<const TextSegment> segments,
                                         bool add_special) const {
  // Raw text that touches across a segment boundary must be one fragment, so
  // it is copied into joined (reserved up front: the views must not move).
  size_t total = 0;
  for (const TextSegment& s : segments) total += s.text.size();
  std::string joined;
  joined.reserve(total);
  std::vector<Fragment> frags;
  for (const TextSegment& s : segments) {
    for (const Fragment& f : partition_special(s.text, s.parse_special)) {
      if (f.token != kNoToken) {
        frags.push_back(f);
        continue;
      }
      const char* end = joined.data() + joined.size();
      const bool extends = !frags.empty() && frags.back().token == kNoToken &&
                           frags.back().text.data() + frags.back().text.size() == end;
      joined.append(f.text);
      if (extends) {
        frags.back().text = std::string_view(frags.back().text.data(),
                                             frags.back().text.size() + f.text.size());
      } else {
        frags.push_back({std::string_view(end, f.text.size()), kNoToken});
      }
    }
  }
  return tokenize_fragments(frags, add_special);
}

std::vector<TokenId> Tokenizer::tokenize_fragments(const std::vector<Fragment>& fragments,
                                                   bool add_special) const {
  std::vector<TokenId> out;
  if (add_special && spec_.add_bos && spec_.bos_id != kNoToken) out.push_back(spec_.bos_id);
  bool prev_special = true;  // SentencePiece: prefix the first text with a space
  for (const Fragment& f : fragments) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (kind_ == Kind::kSpm) {
      std::string escaped;
      escaped.reserve(f.text.size() * 2 + 3);
      if (spec_.add_space_prefix && prev_special) escaped.append(kSpmSpace);
      for (char c : f.text) {
        if (c == ' ') escaped.append(kSpmSpace);
        else escaped.push_back(c);
      }
      tokenize_spm(escaped, out);
    } else {
      tokenize_bpe(f.text, out);
    }
    prev_special = false;
  }
  if (add_special && spec_.add_eos && spec_.eos_id != kNoToken) out.push_back(spec_.eos_id);
  return out;
}

TokenId Tokenizer::spm_byte_token(uint8_t byte) const { return byte_tokens_[byte]; }

void Tokenizer::tokenize_spm(std::string_view text, std::vector<TokenId>& out) const {
  struct Symbol {
    size_t start;
    size_t n;  // 0 once merged into its left neighbour
    int prev;
    int next;
  };
  struct Bigram {
    int left;
    int right;
    float score;
    size_t size;
  };
  // Highest score first; on ties the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };

  std::vector<Symbol> symbols;
  for (size_t offs = 0; offs < text.size();) {
    // llama.cpp cuts by the length the first byte announces, even over
    // invalid bytes; cutting by valid characters gives the same symbols for
    // valid UTF-8 and keeps an invalid byte from swallowing the next char.
    const size_t len = utf8_char_length(text, offs);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({offs, len, index - 1, offs + len == text.size() ? -1 : index + 1});
    offs += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const std::string_view joined = text.substr(l.start, l.n + r.n);
    auto it = text_to_id_.find(joined);
    if (it == text_to_id_.end()) return;
    const auto id = static_cast<size_t>(it->second);
    const float score = spec_.scores.empty() ? 0.0f : spec_.scores[id];
    queue.push({left, right, score, joined.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i - 1), static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(b.left)];
    Symbol& r = symbols[static_cast<size_t>(b.right)];
    // Stale: one side was merged away or grew since the pair was queued.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece = text.substr(s.start, s.n);
    auto it = text_to_id_.find(piece);
    if (it != text_to_id_.end()) {
      out.push_back(it->second);
      continue;
    }
    // A merged symbol is always a token, so this is one character the
    // vocabulary lacks: spell it as bytes.
    for (char c : piece) {
      const TokenId id = spm_byte_token(static_cast<uint8_t>(c));
      if (id != kNoToken) out.push_back(id);
    }
  }
}

void Tokenizer::tokenize_bpe(std::string_view text, std::vector<TokenId>& out) const {
  const std::vector<uint32_t> cps = decode_utf8(text);
  const std::vector<size_t> words = pre_tokenize(static_cast<PreTokenizer>(pre_), cps);
  size_t pos = 0;
  std::string utf8;
  std::string mapped;
  for (size_t len : words) {
    utf8.clear();
    for (size_t i = pos; i < pos + len; ++i) append_utf8(utf8, cps[i]);
    pos += len;
    mapped.clear();
    for (char c : utf8) append_utf8(mapped, byte_to_unicode(static_cast<uint8_t>(c)));
    bpe_word(mapped, out);
  }
}

int Tokenizer::merge_rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left).append(" ").append(right);
  auto it = merge_ranks_.find(key);
  return it == merge_ranks_.end() ? -1 : it->second;
}

void Tokenizer::bpe_word(std::string_view word, std::vector<TokenId>& out) const {
  if (ignore_merges_) {
    if (auto it = text_to_id_.find(word); it != text_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    size_t start;
    size_t n;
    int prev;
    int next;
  };
  struct Bigram {
    int left;
    int right;
    int rank;
    size_t size;
  };
  // Lowest rank (earliest merge) first; on ties the leftmost pair.
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::vector<Symbol> symbols;
  for (size_t offs = 0; offs < word.size();) {
    // word is valid UTF-8 (built by append_utf8).
    const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(word[offs])),
                                word.size() - offs);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({offs, len, index - 1, offs + len == word.size() ? -1 : index + 1});
    offs += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const int rank = merge_rank(word.substr(l.start, l.n), word.substr(r.start, r.n));
    if (rank < 0) return;
    queue.push({left, right, rank, l.n + r.n});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i - 1), static_cast<int>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(b.left)];
    Symbol& r = symbols[static_cast<size_t>(b.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece = word.substr(s.start, s.n);
    if (auto it = text_to_id_.find(piece); it != text_to_id_.end()) {
      out.push_back(it->second);
      continue;
    }
    // A merge whose result is not in the vocabulary: fall back to the
    // single characters (each one byte's token in a sound vocabulary).
    for (size_t offs = 0; offs < piece.size();) {
      const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(piece[offs])),
                                  piece.size() - offs);
      if (auto it = text_to_id_.find(piece.substr(offs, len)); it != text_to_id_.end()) {
        out.push_back(it->second);
      }
      offs += len;
    }
  }
}

tl::expected<std::string, std::string> Tokenizer::token_to_piece(TokenId id, bool special) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) {
    return tl::unexpected("token id " + std::to_string(id) + " is outside the vocabulary of " +
                          std::to_string(pieces_.size()));
  }
  if (!special && is_special_type(types_[static_cast<size_t>(id)])) return std::string();
  return pieces_[static_cast<size_t>(id)];
}

tl::expected<std::string, std::string> Tokenizer::detokenize(std::span<const TokenId> tokens,
                                                             bool remove_special,
                                                             bool unparse_special) const {
  bool remove_space = spec_.add_space_prefix;
  if (remove_special && spec_.add_bos && !tokens.empty() && tokens.front() == spec_.bos_id) {
    // llama.cpp keeps the space then: the text followed a BOS.
    remove_space = false;
    tokens = tokens.subspan(1);
  }
  if (remove_special && spec_.add_eos && !tokens.empty() && tokens.back() == spec_.eos_id) {
    tokens = tokens.subspan(0, tokens.size() - 1);
  }
  std::string text;
  for (TokenId id : tokens) {
    auto piece = token_to_piece(id, unparse_special);
    if (!piece) return tl::unexpected(piece.error());
    std::string_view p = *piece;
    if (remove_space && !p.empty() && p.front() == ' ') p.remove_prefix(1);
    remove_space = false;
    text.append(p);
  }
  if (clean_spaces_) text = clean_spaces(text);
  return text;
}

}  // namespace aifn::engine
