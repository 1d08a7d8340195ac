#include "engine/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "engine/test_util.h"

namespace aifn::engine {
namespace {

using testing::read_file;
using testing::reference_models;
using testing::testdata_dir;

// Minimal GGUF writer for hand-made hostile files.
struct Bytes {
  std::string s;
  template <typename T>
  Bytes& put(T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& str(std::string_view v) {
    put<uint64_t>(v.size());
    s.append(v);
    return *this;
  }
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes b;
  b.put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  return b;
}

TEST(GgufReader, ReadsEveryReferenceModel) {
  auto models = reference_models();
  ASSERT_FALSE(models.empty()) << "no reference models in " << testdata_dir();
  for (const std::string& m : models) {
    auto f = GgufFile::open(testdata_dir() + "/" + m + ".gguf");
    ASSERT_TRUE(f) << f.error();
    const GgufFile& g = **f;
    EXPECT_EQ(g.version(), 3u);
    EXPECT_EQ(g.get_string("general.architecture"), "llama");
    EXPECT_EQ(g.get_int("general.alignment"), 32);
    auto tokens = g.get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens);
    EXPECT_EQ(int64_t(tokens->size()), *g.get_int("llama.vocab_size"));
    EXPECT_TRUE(g.get_float("llama.rope.freq_base"));
    auto types = g.get_int_array("tokenizer.ggml.token_type");
    ASSERT_TRUE(types);
    EXPECT_EQ(types->size(), tokens->size());
    EXPECT_TRUE(g.get_bool("tokenizer.ggml.add_bos_token").value_or(false));
    const TensorInfo* emb = g.find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    ASSERT_EQ(emb->ne.size(), 2u);
    EXPECT_EQ(int64_t(emb->ne[1]), *g.get_int("llama.vocab_size"));
    EXPECT_EQ(g.find_tensor("no.such.tensor"), nullptr);
    EXPECT_FALSE(g.get_string("no.such.key"));
    EXPECT_FALSE(g.get_int("general.architecture"));  // wrong type
  }
}

TEST(GgufReader, MissingFileIsAnError) {
  auto f = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().find("/nonexistent/model.gguf"), std::string::npos);
}

TEST(GgufReader, EveryTruncationIsAnError) {
  for (const std::string& m : reference_models()) {
    std::string bytes = read_file(testdata_dir() + "/" + m + ".gguf");
    ASSERT_GT(bytes.size(), 1000u);
    auto full = GgufFile::from_memory(bytes);
    ASSERT_TRUE(full) << full.error();
    // Header and metadata densely, the tensor data sparsely.
    std::vector<size_t> cuts;
    for (size_t n = 0; n < bytes.size(); n += n < 512 ? 1 : (n < 16384 ? 13 : 4099)) cuts.push_back(n);
    cuts.push_back(bytes.size() - 1);
    for (size_t n : cuts) {
      auto f = GgufFile::from_memory(std::string_view(bytes).substr(0, n));
      EXPECT_FALSE(f) << m << " truncated to " << n << " bytes was accepted";
    }
  }
}

TEST(GgufReader, RandomCorruptionNeverCrashes) {
  std::string bytes = read_file(testdata_dir() + "/tiny-f32.gguf");
  ASSERT_FALSE(bytes.empty());
  std::mt19937 rng(42);
  int accepted = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string b = bytes.substr(0, 20000);  // header + metadata region is where parsing happens
    int flips = 1 + int(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      size_t pos = rng() % b.size();
      // Flip into values that make counts and lengths hostile.
      static const uint8_t kEvil[] = {0xFF, 0x7F, 0x80, 0x00, 0x01, 0x09, 0x08};
      b[pos] = char(rng() % 2 ? kEvil[rng() % sizeof kEvil] : uint8_t(rng()));
    }
    b += bytes.substr(20000);
    auto f = GgufFile::from_memory(b);
    if (f) {
      ++accepted;
      // Touch both ends of every tensor: ASan flags any range past the copy.
      unsigned sink = 0;
      for (const auto& t : (*f)->tensors()) sink += t.data[0] + t.data[t.nbytes - 1];
      EXPECT_GE(sink, 0u);
      for (const std::string& k : (*f)->keys()) {
        (void)(*f)->get_string_array(k);
        (void)(*f)->get_float_array(k);
        (void)(*f)->get_int_array(k);
      }
    }
  }
  SUCCEED() << accepted << " corrupted files still parsed";
}

TEST(GgufReader, HostileCountsAreRejectedWithoutAllocating) {
  // Huge tensor and metadata counts.
  EXPECT_FALSE(GgufFile::from_memory(header(uint64_t(1) << 60, 0).s));
  EXPECT_FALSE(GgufFile::from_memory(header(0, uint64_t(1) << 60).s));
  // Huge key length.
  {
    Bytes b = header(0, 1);
    b.put<uint64_t>(uint64_t(1) << 62);
    b.s.append(16, '\0');
    auto f = GgufFile::from_memory(b.s);
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().find("truncated"), std::string::npos);
  }
  // Huge string array and numeric array counts.
  for (uint32_t et : {8u, 4u, 12u}) {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(9).put<uint32_t>(et).put<uint64_t>(uint64_t(1) << 61);
    auto f = GgufFile::from_memory(b.s);
    ASSERT_FALSE(f) << "element type " << et;
    EXPECT_NE(f.error().find("exceeds the file"), std::string::npos) << f.error();
  }
  // Nested arrays and unknown types.
  {
    Bytes b = header(0, 1);
    b.str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1);
    EXPECT_FALSE(GgufFile::from_memory(b.s));
    Bytes c = header(0, 1);
    c.str("k").put<uint32_t>(13).put<uint64_t>(0);
    EXPECT_FALSE(GgufFile::from_memory(c.s));
  }
  // Bad magic and versions.
  EXPECT_FALSE(GgufFile::from_memory("GGML\3\0\0\0"));
  EXPECT_FALSE(GgufFile::from_memory(header(0, 0, 1).s));
  EXPECT_FALSE(GgufFile::from_memory(header(0, 0, 4).s));
  EXPECT_FALSE(GgufFile::from_memory(header(0, 0, 0x03000000).s));
  EXPECT_TRUE(GgufFile::from_memory(header(0, 0, 2).s));
  EXPECT_TRUE(GgufFile::from_memory(header(0, 0, 3).s));
}

Bytes one_tensor(uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes,
                 int64_t alignment = -1) {
  Bytes b = header(1, alignment >= 0 ? 1 : 0);
  if (alignment >= 0) b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(uint32_t(alignment));
  b.str("t").put<uint32_t>(n_dims);
  for (uint64_t n : ne) b.put<uint64_t>(n);
  b.put<uint32_t>(type).put<uint64_t>(offset);
  while (b.s.size() % 32 != 0) b.s.push_back(0);
  b.s.append(data_bytes, '\0');
  return b;
}

TEST(GgufReader, TensorTableIsChecked) {
  {
    auto f = GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 0, 32).s);
    ASSERT_TRUE(f) << f.error();
    const TensorInfo* t = (*f)->find_tensor("t");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->nbytes, 32u);
    EXPECT_EQ((*f)->tensors().size(), 1u);
  }
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 0, 31).s));             // data short
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 32, 32).s));            // offset past data
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, uint64_t(-32), 32).s));  // offset wraps
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 4, 64).s));             // misaligned
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 32).s));    // too many dims
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 0}, 0, 0, 32).s));             // zero dim
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 32).s));
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 99, 0, 32).s));            // unknown type
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {16, 2}, 2, 0, 64).s));            // Q4_0 row not /32
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 0, 32, 3).s));          // alignment not 2^k
  EXPECT_FALSE(GgufFile::from_memory(one_tensor(2, {4, 2}, 0, 0, 32, 0).s));
}

}  // namespace
}  // namespace aifn::engine
