#include "engine/unicode.h"

#include <algorithm>
#include <array>

namespace aifn::engine {

namespace unicode_detail {
extern const uint32_t kRangeTable[];
extern const size_t kRangeTableSize;
}  // namespace unicode_detail

CodepointFlags codepoint_flags(uint32_t cp) {
  if (cp > 0x10FFFF) return {};
  const uint32_t* begin = unicode_detail::kRangeTable;
  const uint32_t* end = begin + unicode_detail::kRangeTableSize;
  // First entry whose start is past cp, then step back one. The table starts
  // at U+0000, so the step back is always in range.
  const uint32_t key = (cp << 10) | 0x3FF;
  const uint32_t* it = std::upper_bound(begin, end, key);
  return CodepointFlags{static_cast<uint16_t>(*(it - 1) & 0x3FF)};
}

size_t utf8_sequence_length(uint8_t lead) {
  if (lead < 0xC0) return 1;  // ASCII, or a stray continuation byte
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF8) return 4;
  return 1;
}

namespace {

// Decodes one strict UTF-8 sequence at text[pos]; returns its length, or 0
// when the bytes there are not a valid sequence (or are cut off).
size_t decode_one(std::string_view text, size_t pos, uint32_t& cp) {
  const auto b0 = static_cast<uint8_t>(text[pos]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (text.size() - pos < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(text[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

size_t utf8_char_length(std::string_view text, size_t pos) {
  uint32_t cp = 0;
  const size_t n = decode_one(text, pos, cp);
  return n == 0 ? 1 : n;
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const size_t n = decode_one(text, pos, cp);
    if (n == 0) {
      out.push_back(kReplacementChar);
      ++pos;
    } else {
      out.push_back(cp);
      pos += n;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementChar;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const size_t n = decode_one(text, pos, cp);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

size_t utf8_incomplete_tail(std::string_view text) {
  // A sequence is at most 4 bytes, so an unfinished one starts in the last 3.
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead
    const size_t need = utf8_sequence_length(b);
    if (need <= back) return 0;  // complete (or not a multi-byte lead at all)
    // Check the bytes so far could still become a valid sequence: pad with
    // the smallest continuation that keeps it in range and decode.
    std::string probe(text.substr(n - back));
    if (back == 1) {
      // A second byte every lead allows (E0 needs A0.., F0 needs 90.., F4 ..8F).
      probe.push_back(static_cast<char>(b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80));
    }
    while (probe.size() < need) probe.push_back(static_cast<char>(0x80));
    uint32_t cp = 0;
    return decode_one(probe, 0, cp) == need ? back : 0;
  }
  return 0;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const size_t n = decode_one(text, pos, cp);
    if (n == 0) {
      append_utf8(out, kReplacementChar);
      ++pos;
    } else {
      out.append(text.substr(pos, n));
      pos += n;
    }
  }
  return out;
}

namespace {

struct ByteMaps {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code points 0..323 cover the mapping
};

const ByteMaps& byte_maps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    m.to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                             (b >= 0xAE && b <= 0xFF);
      m.to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      m.to_byte[m.to_cp[b]] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return maps;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t byte) { return byte_maps().to_cp[byte]; }

int unicode_to_byte(uint32_t cp) {
  const auto& m = byte_maps();
  return cp < m.to_byte.size() ? m.to_byte[cp] : -1;
}

namespace {

// A cursor over one fragment's code points. Positions past the end read as
// "no code point" (cp kNone, flags {}), which no class matches; that stands in
// for the regex's end of input.
class Scanner {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFF;

  explicit Scanner(const std::vector<uint32_t>& cps) : cps_(cps) {}

  uint32_t cp(size_t pos) const { return pos < cps_.size() ? cps_[pos] : kNone; }
  CodepointFlags flags(size_t pos) const {
    return pos < cps_.size() ? codepoint_flags(cps_[pos]) : CodepointFlags{};
  }
  size_t size() const { return cps_.size(); }

 private:
  const std::vector<uint32_t>& cps_;
};

uint32_t ascii_lower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

// Length of a contraction ('s 't 're 've 'm 'll 'd) at pos, or 0.
size_t contraction_at(const Scanner& s, size_t pos, bool ignore_case) {
  if (s.cp(pos) != '\'') return 0;
  auto low = [&](size_t p) { return ignore_case ? ascii_lower(s.cp(p)) : s.cp(p); };
  const uint32_t c1 = low(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  const uint32_t c2 = low(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

bool is_other(CodepointFlags f) {
  // [^\s\p{L}\p{N}], but not "past the end".
  return !f.is_none() && !f.is_whitespace() && !f.is_letter() && !f.is_number();
}

// Common tail of every pattern: \s+(?!\S)|\s+ , with Llama 3's \s*[\r\n]+
// tried first when crlf is set. Returns the end of the match, or pos when no
// whitespace is at pos.
size_t match_whitespace(const Scanner& s, size_t pos, bool crlf) {
  size_t n = 0;
  size_t last_newline_end = 0;
  while (s.flags(pos + n).is_whitespace()) {
    const uint32_t c = s.cp(pos + n);
    if (c == '\r' || c == '\n') last_newline_end = pos + n + 1;
    ++n;
  }
  if (crlf && last_newline_end > 0) return last_newline_end;
  // \s+(?!\S): leave the last whitespace to prefix the next word, unless the
  // run reaches the end of the text.
  if (n > 1 && pos + n < s.size()) return pos + n - 1;
  return pos + n;
}

std::vector<size_t> split_gpt2(const std::vector<uint32_t>& cps) {
  const Scanner s(cps);
  std::vector<size_t> words;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = pos;
    const uint32_t c = s.cp(pos);
    if (size_t n = contraction_at(s, pos, false); n > 0) {
      end = pos + n;
    } else {
      // " ?X+" for X in letters, numbers, others: an optional space, then a run.
      const size_t start = pos + (c == ' ' ? 1 : 0);
      const CodepointFlags f = s.flags(start);
      if (f.is_letter()) {
        end = start;
        while (s.flags(end).is_letter()) ++end;
      } else if (f.is_number()) {
        end = start;
        while (s.flags(end).is_number()) ++end;
      } else if (is_other(f)) {
        end = start;
        while (is_other(s.flags(end))) ++end;
      } else {
        end = match_whitespace(s, pos, false);
        if (end == pos) end = pos + 1;  // nothing matched: one code point alone
      }
    }
    words.push_back(end - pos);
    pos = end;
  }
  return words;
}

std::vector<size_t> split_llama3(const std::vector<uint32_t>& cps, size_t max_digits) {
  const Scanner s(cps);
  std::vector<size_t> words;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint32_t c = s.cp(pos);
    const CodepointFlags f = s.flags(pos);
    if (size_t n = contraction_at(s, pos, true); n > 0) {
      words.push_back(n);
      pos += n;
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !f.is_number() &&
        (f.is_letter() || s.flags(pos + 1).is_letter())) {
      size_t end = pos + 1;
      while (s.flags(end).is_letter()) ++end;
      words.push_back(end - pos);
      pos = end;
      continue;
    }
    // \p{N}{1,max_digits}
    if (f.is_number()) {
      size_t end = pos;
      while (end < pos + max_digits && s.flags(end).is_number()) ++end;
      words.push_back(end - pos);
      pos = end;
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    const size_t start = pos + (c == ' ' ? 1 : 0);
    if (is_other(s.flags(start))) {
      size_t end = start;
      while (is_other(s.flags(end))) ++end;
      while (s.cp(end) == '\r' || s.cp(end) == '\n') ++end;
      words.push_back(end - pos);
      pos = end;
      continue;
    }
    size_t end = match_whitespace(s, pos, true);
    if (end == pos) end = pos + 1;
    words.push_back(end - pos);
    pos = end;
  }
  return words;
}

}  // namespace

std::vector<size_t> pre_tokenize(PreTokenizer kind, const std::vector<uint32_t>& cps) {
  switch (kind) {
    case PreTokenizer::kLlama3:
      return split_llama3(cps, 3);
    case PreTokenizer::kQwen2:
      return split_llama3(cps, 1);
    case PreTokenizer::kGpt2:
      break;
  }
  return split_gpt2(cps);
}

}  // namespace aifn::engine
