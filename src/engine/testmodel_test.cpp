#include "engine/testmodel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/test_util.h"
#include "engine/tokenizer.h"

namespace aifn::engine {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("aifn-engine-test-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

struct TempFile {
  std::string path;
  ~TempFile() { std::filesystem::remove(path); }
};

tl::expected<std::shared_ptr<const Model>, std::string> load_bytes(const std::string& bytes) {
  auto f = GgufFile::from_memory(bytes);
  if (!f) return tl::unexpected(f.error());
  return Model::load(std::shared_ptr<const GgufFile>(std::move(*f)));
}

TEST(TestModel, SameConfigGivesSameBytes) {
  TestModelConfig c;
  TempFile a{tmp_path("a.gguf")}, b{tmp_path("b.gguf")};
  ASSERT_TRUE(write_test_model(c, a.path));
  ASSERT_TRUE(write_test_model(c, b.path));
  std::string x = testing::read_file(a.path), y = testing::read_file(b.path);
  EXPECT_EQ(x, y);
  EXPECT_LT(x.size(), size_t(2) << 20);
  c.seed = 2;
  ASSERT_TRUE(write_test_model(c, b.path));
  EXPECT_NE(x, testing::read_file(b.path));
}

TEST(TestModel, EveryWeightTypeLoadsAndRuns) {
  ThreadPool pool(2);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K,
                     GgmlType::Q5_K, GgmlType::Q6_K}) {
    TestModelConfig c;
    c.type = t;
    c.tied = t == GgmlType::Q8_0;
    if (type_traits(uint32_t(t))->block_size == 256) {
      c.n_embd = 256;
      c.n_ff = 512;
      c.n_head = 4;
      c.n_head_kv = 2;
    }
    TempFile f{tmp_path(std::string(type_name(uint32_t(t))) + ".gguf")};
    auto w = write_test_model(c, f.path);
    ASSERT_TRUE(w) << w.error();
    auto g = GgufFile::open(f.path);
    ASSERT_TRUE(g) << g.error();
    EXPECT_EQ(c.tied, (*g)->find_tensor("output.weight") == nullptr);
    std::shared_ptr<const GgufFile> file(std::move(*g));
    auto m = Model::load(file);
    ASSERT_TRUE(m) << type_name(uint32_t(t)) << ": " << m.error();
    Session s(*m, pool, 32);
    std::vector<int32_t> toks{1, 300, 301, 302, 40};
    std::vector<float> logits;
    ASSERT_TRUE(s.eval(toks, Logits::kAll, &logits));
    ASSERT_EQ(logits.size(), toks.size() * size_t(c.n_vocab));
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << type_name(uint32_t(t));
    // The vocabulary works with the GGUF's own tokenizer.
    auto tok = Tokenizer::from_gguf(*file);
    ASSERT_TRUE(tok) << tok.error();
    std::vector<TokenId> ids = (*tok)->tokenize("hello world, the quick brown fox! é日", true);
    EXPECT_EQ(ids.front(), 1);
    EXPECT_LT(ids.size(), 34u);  // pieces merge: fewer tokens than the 41 bytes
    auto back = (*tok)->detokenize(std::span<const TokenId>(ids).subspan(1));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, "hello world, the quick brown fox! é日");
  }
}

// The logits of a model as `type`, from the same float weights (the generator
// draws them from the seed alone, then quantises).
std::vector<float> logits_as(GgmlType type) {
  TestModelConfig c;
  c.type = type;
  c.n_embd = 256;
  c.n_ff = 512;
  c.n_head = 4;
  c.n_head_kv = 2;
  TempFile f{tmp_path(std::string("same-") + type_name(uint32_t(type)) + ".gguf")};
  EXPECT_TRUE(write_test_model(c, f.path));
  auto g = GgufFile::open(f.path);
  EXPECT_TRUE(g);
  if (!g) return {};  // the caller's size check fails
  auto m = Model::load(std::shared_ptr<const GgufFile>(std::move(*g)));
  EXPECT_TRUE(m);
  if (!m) return {};
  ThreadPool pool(2);
  Session s(*m, pool, 32);
  std::vector<float> logits;
  EXPECT_TRUE(s.eval(std::vector<int32_t>{1, 300, 301, 302, 40}, Logits::kAll, &logits));
  return logits;
}

TEST(TestModel, KQuantModelsFollowTheirFloatWeights) {
  // Every matrix of these models is interleaved at load (rows in eights): a
  // layout or stride slip gives logits unrelated to the float model's.
  const std::vector<float> ref = logits_as(GgmlType::F32);
  double ref_norm = 0;
  for (float v : ref) ref_norm += double(v) * v;
  // Measured: 0.186, 0.121 and 0.053 (random weights amplify quantisation
  // error); unrelated logits of the same size would read about 1.4; a wrong
  // Q5_K row stride read NaN.
  const std::pair<GgmlType, double> bounds[] = {{GgmlType::Q4_K, 0.3}, {GgmlType::Q5_K, 0.2}, {GgmlType::Q6_K, 0.1}};
  for (const auto& [t, bound] : bounds) {
    const std::vector<float> got = logits_as(t);
    ASSERT_EQ(got.size(), ref.size());
    double err = 0;
    for (size_t i = 0; i < ref.size(); ++i) err += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    EXPECT_LT(std::sqrt(err / ref_norm), bound) << type_name(uint32_t(t));
  }
}

TEST(TestModel, BadShapesAreRejected) {
  TestModelConfig c;
  c.type = GgmlType::Q4_K;  // 64 is not a multiple of 256
  EXPECT_FALSE(write_test_model(c, tmp_path("bad.gguf")));
  c = TestModelConfig{};
  c.n_head = 5;
  EXPECT_FALSE(write_test_model(c, tmp_path("bad.gguf")));
}

// Replaces the first occurrence of `from` with `to` (same length).
std::string patched(std::string bytes, std::string_view from, std::string_view to) {
  size_t at = bytes.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) bytes.replace(at, from.size(), to);
  return bytes;
}

TEST(ModelLoad, ClearErrorsForBadModels) {
  TempFile f{tmp_path("base.gguf")};
  ASSERT_TRUE(write_test_model(TestModelConfig{}, f.path));
  const std::string bytes = testing::read_file(f.path);
  ASSERT_TRUE(load_bytes(bytes));

  // general.architecture's value "llama" is the first occurrence.
  auto arch = load_bytes(patched(bytes, "llama", "gpt99"));
  ASSERT_FALSE(arch);
  EXPECT_NE(arch.error().find("unsupported architecture 'gpt99'"), std::string::npos) << arch.error();

  auto missing = load_bytes(patched(bytes, "blk.1.ffn_up.weight", "blk.1.ffn_up.weighx"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("missing tensor 'blk.1.ffn_up.weight'"), std::string::npos) << missing.error();

  // feed_forward_length 192 -> 200: every FFN tensor now has the wrong shape.
  std::string key = "llama.feed_forward_length";
  std::string b = bytes;
  size_t at = b.find(key);
  ASSERT_NE(at, std::string::npos);
  uint32_t v = 200;
  std::memcpy(&b[at + key.size() + 4], &v, 4);
  auto shape = load_bytes(b);
  ASSERT_FALSE(shape);
  EXPECT_NE(shape.error().find("has shape [64, 192]; expected [64, 200]"), std::string::npos) << shape.error();
}

// qwen2 rotates (i, i + d/2) pairs (NeoX) where llama rotates (2i, 2i + 1). A
// llama model and a qwen2 model whose Wq/Wk rows are permuted inside every
// head so that NeoX pair i is llama pair i compute the same logits: q.k is
// unchanged when q and k are permuted alike.
TEST(ModelLoad, Qwen2NeoxRopeMatchesPermutedLlama) {
  TestModelConfig c;
  c.n_head = 2;
  c.n_head_kv = 1;
  TempFile f{tmp_path("llama.gguf")};
  ASSERT_TRUE(write_test_model(c, f.path));
  const std::string llama = testing::read_file(f.path);
  auto g = GgufFile::from_memory(llama);
  ASSERT_TRUE(g);
  std::string qwen = patched(llama, "llama", "qwen2");  // general.architecture
  for (size_t at = qwen.find("llama."); at != std::string::npos && at < (*g)->data_offset();
       at = qwen.find("llama.", at))
    qwen.replace(at, 6, "qwen2.");
  const int hd = c.n_embd / c.n_head, half = hd / 2;
  for (int l = 0; l < c.n_layer; ++l) {
    for (const char* name : {"attn_q.weight", "attn_k.weight"}) {
      const TensorInfo* t = (*g)->find_tensor("blk." + std::to_string(l) + "." + name);
      ASSERT_NE(t, nullptr);
      const size_t row = size_t(t->ne[0]) * 4, base = size_t((*g)->data_offset() + t->offset);
      for (uint64_t h = 0; h < t->ne[1] / uint64_t(hd); ++h) {
        for (int i = 0; i < half; ++i) {
          // NeoX row i <- llama row 2i, NeoX row i + half <- llama row 2i + 1.
          size_t src0 = base + (h * hd + 2 * i) * row, src1 = base + (h * hd + 2 * i + 1) * row;
          size_t dst0 = base + (h * hd + i) * row, dst1 = base + (h * hd + i + half) * row;
          qwen.replace(dst0, row, llama, src0, row);
          qwen.replace(dst1, row, llama, src1, row);
        }
      }
    }
  }
  auto ml = load_bytes(llama);
  auto mq = load_bytes(qwen);
  ASSERT_TRUE(ml) << ml.error();
  ASSERT_TRUE(mq) << mq.error();
  EXPECT_EQ((*mq)->config().arch, "qwen2");
  EXPECT_EQ((*mq)->config().rope, RopeType::kNeox);
  ThreadPool pool(1);
  Session sl(*ml, pool, 16), sq(*mq, pool, 16);
  std::vector<int32_t> toks{1, 300, 301, 302, 303, 304, 40, 41};
  std::vector<float> a, b;
  ASSERT_TRUE(sl.eval(toks, Logits::kAll, &a));
  ASSERT_TRUE(sq.eval(toks, Logits::kAll, &b));
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(max_diff, 1e-4);
  // And the rope layout matters: the unpermuted qwen2 model differs.
  std::string plain = patched(llama, "llama", "qwen2");
  for (size_t at = plain.find("llama."); at != std::string::npos && at < (*g)->data_offset();
       at = plain.find("llama.", at))
    plain.replace(at, 6, "qwen2.");
  auto mp = load_bytes(plain);
  ASSERT_TRUE(mp);
  Session sp(*mp, pool, 16);
  std::vector<float> p;
  ASSERT_TRUE(sp.eval(toks, Logits::kAll, &p));
  double diff_plain = 0;
  for (size_t i = 0; i < a.size(); ++i) diff_plain = std::max(diff_plain, double(std::fabs(a[i] - p[i])));
  EXPECT_GT(diff_plain, 1e-2);
}

}  // namespace
}  // namespace aifn::engine
