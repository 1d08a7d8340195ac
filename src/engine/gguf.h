// GGUF reader: opens a GGUF v2/v3 model file read-only through mmap (or from a
// byte buffer, for tests and the fuzzer) and exposes its metadata key/values and
// tensor table. Every count, length and offset in the file is checked against the
// file size before use, so a truncated or hostile file gives an error message,
// never a crash, an out-of-bounds read or a huge allocation.
// Called by the engine's model loader and tokenizer. A GgufFile is immutable once
// open() returns: any number of threads may read it concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace aifn::engine {

// GGUF metadata value types (GGUF spec, "gguf_metadata_value_type").
enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12
};

// One metadata value. Scalars are decoded eagerly; numeric arrays stay in the
// mapped file (data/count) and are decoded by the accessors; string arrays are
// views into the mapped file.
struct GgufValue {
  GgufType type = GgufType::UINT8;
  // Scalars: integers and bools in i (u64 values above INT64_MAX are kept in u),
  // floats in f, strings in str.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string_view str;
  // Arrays.
  GgufType array_type = GgufType::UINT8;
  uint64_t count = 0;
  const uint8_t* array_data = nullptr;       // numeric arrays: count packed elements
  std::vector<std::string_view> strings;     // string arrays
};

// A tensor as described by the file. data points into the mapping and holds
// nbytes bytes (checked at open).
struct TensorInfo {
  std::string name;
  uint32_t type = 0;  // ggml type id (see quant.h)
  std::vector<uint64_t> ne;
  uint64_t offset = 0;  // relative to the start of the tensor data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
};

class GgufFile {
 public:
  static tl::expected<std::unique_ptr<GgufFile>, std::string> open(const std::string& path);
  // Copies bytes; the returned file does not borrow them.
  static tl::expected<std::unique_ptr<GgufFile>, std::string> from_memory(std::string_view bytes);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  // File offset of the tensor data section (TensorInfo::offset is relative to it).
  uint64_t data_offset() const { return data_offset_; }

  bool has(std::string_view key) const;
  const GgufValue* find(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;  // any integer type or bool
  std::optional<double> get_float(std::string_view key) const;  // f32/f64 and integers
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> get_float_array(std::string_view key) const;    // any numeric array
  std::optional<std::vector<int32_t>> get_int_array(std::string_view key) const;    // integer/bool arrays
  std::vector<std::string> keys() const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  tl::expected<void, std::string> parse();

  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;        // mmap'ed region (open) or nullptr
  std::unique_ptr<uint64_t[]> owned_;  // from_memory copy (8-byte aligned)
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<std::string> key_order_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace aifn::engine
