#include "engine/testmodel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace aifn::engine {
namespace {

using Error = tl::unexpected<std::string>;

// splitmix64: a tiny, portable, well-mixed generator (std:: distributions are
// not the same across standard libraries, and the files must be reproducible).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return float((next() >> 40) + 1) / float(1ull << 24); }  // (0, 1]
  // Sum of 4 uniforms, centred and scaled: close enough to normal, and fast.
  float normal() {
    float s4 = uniform() + uniform() + uniform() + uniform();
    return (s4 - 2.f) * 1.7320508f;
  }
};

class GgufWriter {
 public:
  void str(std::string_view s) {
    u64(s.size());
    buf_.append(s);
  }
  void u32(uint32_t v) { put(v); }
  void u64(uint64_t v) { put(v); }
  void f32(float v) { put(v); }
  void key(std::string_view k, uint32_t type) {
    str(k);
    u32(type);
    ++n_kv_;
  }
  void kv_str(std::string_view k, std::string_view v) { key(k, 8), str(v); }
  void kv_u32(std::string_view k, uint32_t v) { key(k, 4), u32(v); }
  void kv_f32(std::string_view k, float v) { key(k, 6), f32(v); }
  void kv_bool(std::string_view k, bool v) { key(k, 7), buf_.push_back(char(v ? 1 : 0)); }
  void kv_str_array(std::string_view k, const std::vector<std::string>& v) {
    key(k, 9), u32(8), u64(v.size());
    for (const std::string& s : v) str(s);
  }
  void kv_f32_array(std::string_view k, const std::vector<float>& v) {
    key(k, 9), u32(6), u64(v.size());
    for (float x : v) f32(x);
  }
  void kv_i32_array(std::string_view k, const std::vector<int32_t>& v) {
    key(k, 9), u32(5), u64(v.size());
    for (int32_t x : v) put(x);
  }
  std::string& buf() { return buf_; }
  uint64_t n_kv() const { return n_kv_; }

 private:
  template <typename T>
  void put(T v) {
    buf_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  std::string buf_;
  uint64_t n_kv_ = 0;
};

struct Tensor {
  std::string name;
  uint32_t type;
  int64_t cols, rows;  // rows == 1 for vectors
  float scale;         // standard deviation of the values (norms: 1 + scale*noise)
  bool norm;
  uint64_t offset = 0, nbytes = 0;
};

constexpr uint64_t kAlign = 32;
uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then
// pieces made of common English fragments (▁-prefixed words and their prefixes,
// letter pairs and triples), then single characters.
void build_vocab(int n_vocab, std::vector<std::string>* tokens, std::vector<float>* scores,
                 std::vector<int32_t>* types) {
  const std::string sp = "\xE2\x96\x81";  // U+2581
  tokens->assign({"<unk>", "<s>", "</s>"});
  types->assign({2, 3, 3});
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens->push_back(name);
    types->push_back(6);
  }
  scores->assign(tokens->size(), 0.f);
  std::vector<std::string> singles;
  singles.push_back(sp);
  for (char c = 33; c < 127; ++c) singles.emplace_back(1, c);
  static const char* kWords[] = {
      "the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "as", "with", "his", "they",
      "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were",
      "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if",
      "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make",
      "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way",
      "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long",
      "down", "day", "did", "get", "come", "made", "may", "part", "quick", "brown", "fox", "jumps", "over", "lazy",
      "dog", "hello", "world", "model", "function", "server", "token"};
  std::vector<std::string> pieces;
  std::set<std::string> seen(tokens->begin(), tokens->end());
  for (const std::string& s : singles) seen.insert(s);
  auto add = [&](const std::string& p) {
    if (seen.insert(p).second) pieces.push_back(p);
  };
  for (const char* w : kWords) {
    std::string word = sp + w;
    for (size_t n = sp.size() + 1; n <= word.size(); ++n) add(word.substr(0, n));
  }
  for (const char* w : kWords) {
    std::string word = w;
    for (size_t n = 2; n <= word.size(); ++n) add(word.substr(0, n));
  }
  const std::string letters = "etaoinshrdlcumwfgypbvkjxqz";
  for (char a : letters)
    for (char b : letters) add(std::string{a, b});
  for (char a : letters)
    for (char b : letters)
      for (char c : letters) add(std::string{a, b, c});
  size_t room = size_t(n_vocab) - tokens->size() - singles.size();
  if (pieces.size() > room) pieces.resize(room);
  for (size_t i = 0; i < pieces.size(); ++i) {
    tokens->push_back(pieces[i]);
    scores->push_back(-float(i));
    types->push_back(1);
  }
  for (size_t i = 0; i < singles.size(); ++i) {
    tokens->push_back(singles[i]);
    scores->push_back(-float(pieces.size() + i));
    types->push_back(1);
  }
  // Pad with unused tokens when the vocabulary is larger than the pieces we have.
  for (int i = int(tokens->size()); i < n_vocab; ++i) {
    tokens->push_back("<unused" + std::to_string(i) + ">");
    scores->push_back(-1e9f);
    types->push_back(5);
  }
}

uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q4_K: return 15;
    case GgmlType::Q5_K: return 17;
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
    default: return 0;
  }
}

// Fills rows [r0, r1) of tensor t into out (already sized for those rows).
void fill_rows(const Tensor& t, uint64_t seed, size_t index, int64_t r0, int64_t r1, uint8_t* out) {
  std::vector<float> row(size_t(t.cols));
  const size_t rb = row_bytes(t.type, t.cols);
  for (int64_t r = r0; r < r1; ++r) {
    Rng rng{seed * 0x100000001B3ull + index * 0x9E3779B97F4A7C15ull + uint64_t(r) * 0xD6E8FEB86659FD93ull};
    rng.next();
    for (float& v : row) v = t.norm ? 1.f + t.scale * rng.normal() : t.scale * rng.normal();
    quantize_row(t.type, row.data(), out + size_t(r - r0) * rb, t.cols);
  }
}

}  // namespace

tl::expected<GgmlType, std::string> parse_type_name(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const std::pair<const char*, GgmlType> kNames[] = {
      {"f32", GgmlType::F32},   {"f16", GgmlType::F16},   {"bf16", GgmlType::BF16}, {"q8_0", GgmlType::Q8_0},
      {"q4_0", GgmlType::Q4_0}, {"q4_k", GgmlType::Q4_K}, {"q5_k", GgmlType::Q5_K}, {"q6_k", GgmlType::Q6_K}};
  for (const auto& [s, t] : kNames)
    if (n == s) return t;
  return Error("unknown tensor type '" + std::string(name) + "' (f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)");
}

tl::expected<void, std::string> write_test_model(const TestModelConfig& c, const std::string& path) {
  if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_ff <= 0)
    return Error("sizes must be positive");
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0)
    return Error("n_embd must be a multiple of heads, and heads of kv heads");
  if ((c.n_embd / c.n_head) % 2 != 0) return Error("head size must be even");
  if (c.n_vocab < 259 + 100 || c.n_vocab > (1 << 20)) return Error("vocab must be between 359 and 1048576");
  const uint32_t wt = uint32_t(c.type);
  const TypeTraits* tt = type_traits(wt);
  if (tt == nullptr || !tt->compute) return Error("unsupported weight type");
  for (int64_t cols : {int64_t(c.n_embd), int64_t(c.n_ff)})
    if (cols % tt->block_size != 0)
      return Error("row length " + std::to_string(cols) + " is not a multiple of the " + tt->name + " block size " +
                   std::to_string(tt->block_size));
  const int head_dim = c.n_embd / c.n_head, kv_dim = head_dim * c.n_head_kv;

  // Scales keep activations O(1); q/k larger so attention is far from uniform.
  const float s_in = 1.f / std::sqrt(float(c.n_embd)), s_ff = 1.f / std::sqrt(float(c.n_ff));
  std::vector<Tensor> ts;
  ts.push_back({"token_embd.weight", wt, c.n_embd, c.n_vocab, 1.f, false});
  ts.push_back({"output_norm.weight", 0, c.n_embd, 1, 0.1f, true});
  if (!c.tied) ts.push_back({"output.weight", wt, c.n_embd, c.n_vocab, 2.f * s_in, false});
  for (int l = 0; l < c.n_layer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    ts.push_back({b + "attn_norm.weight", 0, c.n_embd, 1, 0.1f, true});
    ts.push_back({b + "attn_q.weight", wt, c.n_embd, c.n_embd, 2.f * s_in, false});
    ts.push_back({b + "attn_k.weight", wt, c.n_embd, kv_dim, 2.f * s_in, false});
    ts.push_back({b + "attn_v.weight", wt, c.n_embd, kv_dim, s_in, false});
    ts.push_back({b + "attn_output.weight", wt, c.n_embd, c.n_embd, s_in, false});
    ts.push_back({b + "ffn_norm.weight", 0, c.n_embd, 1, 0.1f, true});
    ts.push_back({b + "ffn_gate.weight", wt, c.n_embd, c.n_ff, s_in, false});
    ts.push_back({b + "ffn_up.weight", wt, c.n_embd, c.n_ff, s_in, false});
    ts.push_back({b + "ffn_down.weight", wt, c.n_ff, c.n_embd, s_ff, false});
  }
  uint64_t off = 0;
  for (Tensor& t : ts) {
    t.offset = off;
    t.nbytes = row_bytes(t.type, t.cols) * uint64_t(t.rows);
    off = align_up(off + t.nbytes);
  }

  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  build_vocab(c.n_vocab, &tokens, &scores, &types);

  GgufWriter kv;
  kv.kv_str("general.architecture", "llama");
  kv.kv_str("general.name", c.name);
  kv.kv_u32("general.alignment", uint32_t(kAlign));
  kv.kv_u32("general.file_type", file_type(c.type));
  if (tt->block_size > 1) kv.kv_u32("general.quantization_version", 2);
  kv.kv_u32("llama.vocab_size", uint32_t(c.n_vocab));
  kv.kv_u32("llama.context_length", uint32_t(c.n_ctx));
  kv.kv_u32("llama.embedding_length", uint32_t(c.n_embd));
  kv.kv_u32("llama.block_count", uint32_t(c.n_layer));
  kv.kv_u32("llama.feed_forward_length", uint32_t(c.n_ff));
  kv.kv_u32("llama.attention.head_count", uint32_t(c.n_head));
  kv.kv_u32("llama.attention.head_count_kv", uint32_t(c.n_head_kv));
  kv.kv_u32("llama.rope.dimension_count", uint32_t(head_dim));
  kv.kv_f32("llama.rope.freq_base", c.rope_theta);
  kv.kv_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  kv.kv_str("tokenizer.ggml.model", "llama");
  kv.kv_str_array("tokenizer.ggml.tokens", tokens);
  kv.kv_f32_array("tokenizer.ggml.scores", scores);
  kv.kv_i32_array("tokenizer.ggml.token_type", types);
  kv.kv_u32("tokenizer.ggml.bos_token_id", 1);
  kv.kv_u32("tokenizer.ggml.eos_token_id", 2);
  kv.kv_u32("tokenizer.ggml.unknown_token_id", 0);
  kv.kv_bool("tokenizer.ggml.add_bos_token", true);
  kv.kv_bool("tokenizer.ggml.add_eos_token", false);
  kv.kv_bool("tokenizer.ggml.add_space_prefix", true);

  GgufWriter head;
  head.u32(0x46554747);
  head.u32(3);
  head.u64(ts.size());
  head.u64(kv.n_kv());
  head.buf() += kv.buf();
  for (const Tensor& t : ts) {
    head.str(t.name);
    head.u32(t.rows == 1 ? 1 : 2);
    head.u64(uint64_t(t.cols));
    if (t.rows != 1) head.u64(uint64_t(t.rows));
    head.u32(t.type);
    head.u64(t.offset);
  }
  head.buf().resize(align_up(head.buf().size()), '\0');

  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) return Error(path + ": " + std::strerror(errno));
  auto write = [&](const void* p, size_t n) { return std::fwrite(p, 1, n, f.get()) == n; };
  if (!write(head.buf().data(), head.buf().size())) return Error(path + ": write failed");
  const unsigned n_threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  uint64_t pos = 0;
  std::vector<uint8_t> data;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    data.assign(size_t(t.offset - pos), 0);  // alignment padding
    if (!data.empty() && !write(data.data(), data.size())) return Error(path + ": write failed");
    data.assign(size_t(t.nbytes), 0);
    const size_t rb = row_bytes(t.type, t.cols);
    if (t.rows < 64) {
      fill_rows(t, c.seed, i, 0, t.rows, data.data());
    } else {
      std::vector<std::thread> workers;
      for (unsigned w = 0; w < n_threads; ++w) {
        int64_t r0 = t.rows * w / n_threads, r1 = t.rows * (w + 1) / n_threads;
        workers.emplace_back([&, r0, r1] { fill_rows(t, c.seed, i, r0, r1, data.data() + size_t(r0) * rb); });
      }
      for (std::thread& th : workers) th.join();
    }
    if (!write(data.data(), data.size())) return Error(path + ": write failed");
    pos = t.offset + t.nbytes;
  }
  if (std::fflush(f.get()) != 0) return Error(path + ": write failed");
  return {};
}

}  // namespace aifn::engine
