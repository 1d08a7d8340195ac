#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "engine/quant.h"

namespace aifn::engine {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS

// Size in bytes of a scalar type, 0 for STRING/ARRAY/unknown.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    default: return 0;
  }
}

bool is_known_type(uint32_t t) { return t <= 12; }

// Bounds-checked little-endian cursor over the file.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <typename T>
  bool read(T* out) {
    if (left() < sizeof(T)) return false;
    std::memcpy(out, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool read_string(std::string_view* out) {
    uint64_t n = 0;
    if (!read(&n) || n > left()) return false;
    *out = std::string_view(reinterpret_cast<const char*>(base_ + pos_), size_t(n));
    pos_ += n;
    return true;
  }
  bool skip(uint64_t n) {
    if (n > left()) return false;
    pos_ += n;
    return true;
  }
  const uint8_t* here() const { return base_ + pos_; }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

std::string at(const Cursor& c) { return " at byte " + std::to_string(c.pos()); }

tl::expected<void, std::string> read_scalar(Cursor& c, GgufType t, GgufValue* v) {
  auto fail = [&] { return tl::unexpected("truncated value" + at(c)); };
  switch (t) {
    case GgufType::UINT8: { uint8_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = x; v->f = x; break; }
    case GgufType::INT8: { int8_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = uint64_t(x); v->f = x; break; }
    case GgufType::BOOL: {
      uint8_t x; if (!c.read(&x)) return fail();
      if (x > 1) return tl::unexpected("bool value " + std::to_string(x) + at(c));
      v->i = x; v->u = x; v->f = x; break;
    }
    case GgufType::UINT16: { uint16_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = x; v->f = x; break; }
    case GgufType::INT16: { int16_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = uint64_t(x); v->f = x; break; }
    case GgufType::UINT32: { uint32_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = x; v->f = x; break; }
    case GgufType::INT32: { int32_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = uint64_t(x); v->f = x; break; }
    case GgufType::UINT64: {
      uint64_t x; if (!c.read(&x)) return fail();
      v->u = x; v->i = x > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max() : int64_t(x);
      v->f = double(x); break;
    }
    case GgufType::INT64: { int64_t x; if (!c.read(&x)) return fail(); v->i = x; v->u = uint64_t(x); v->f = double(x); break; }
    case GgufType::FLOAT32: { float x; if (!c.read(&x)) return fail(); v->f = x; break; }
    case GgufType::FLOAT64: { double x; if (!c.read(&x)) return fail(); v->f = x; break; }
    case GgufType::STRING: if (!c.read_string(&v->str)) return tl::unexpected("truncated string" + at(c)); break;
    default: return tl::unexpected("bad value type" + at(c));
  }
  return {};
}

tl::expected<void, std::string> read_value(Cursor& c, GgufType t, GgufValue* v) {
  v->type = t;
  if (t != GgufType::ARRAY) return read_scalar(c, t, v);
  uint32_t et = 0;
  uint64_t n = 0;
  if (!c.read(&et) || !c.read(&n)) return tl::unexpected("truncated array header" + at(c));
  if (!is_known_type(et)) return tl::unexpected("unknown array element type " + std::to_string(et) + at(c));
  v->array_type = GgufType(et);
  v->count = n;
  if (v->array_type == GgufType::ARRAY) return tl::unexpected("nested arrays are not supported" + at(c));
  if (v->array_type == GgufType::STRING) {
    // Each string needs at least its 8-byte length: bound the count before reserving.
    if (n > c.left() / 8) return tl::unexpected("string array of " + std::to_string(n) + " entries exceeds the file" + at(c));
    v->strings.reserve(size_t(n));
    for (uint64_t k = 0; k < n; ++k) {
      std::string_view s;
      if (!c.read_string(&s)) return tl::unexpected("truncated string in array" + at(c));
      v->strings.push_back(s);
    }
    return {};
  }
  uint64_t es = scalar_size(v->array_type);
  if (n > c.left() / es) return tl::unexpected("array of " + std::to_string(n) + " entries exceeds the file" + at(c));
  v->array_data = c.here();
  if (v->array_type == GgufType::BOOL) {
    for (uint64_t k = 0; k < n; ++k)
      if (v->array_data[k] > 1) return tl::unexpected("bool array value out of range" + at(c));
  }
  c.skip(n * es);
  return {};
}

// Reads element k of a numeric array as double / int64.
double array_float(const GgufValue& v, uint64_t k) {
  GgufValue e;
  Cursor c(v.array_data + k * scalar_size(v.array_type), scalar_size(v.array_type));
  (void)read_scalar(c, v.array_type, &e);
  return e.f;
}
int64_t array_int(const GgufValue& v, uint64_t k) {
  GgufValue e;
  Cursor c(v.array_data + k * scalar_size(v.array_type), scalar_size(v.array_type));
  (void)read_scalar(c, v.array_type, &e);
  return e.i;
}

bool is_integer(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::INT8 || t == GgufType::UINT16 || t == GgufType::INT16 ||
         t == GgufType::UINT32 || t == GgufType::INT32 || t == GgufType::UINT64 || t == GgufType::INT64 ||
         t == GgufType::BOOL;
}

}  // namespace

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, size_t(size_));
}

tl::expected<std::unique_ptr<GgufFile>, std::string> GgufFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    std::string err = path + ": " + std::strerror(errno);
    ::close(fd);
    return tl::unexpected(err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return tl::unexpected(path + ": not a regular file");
  }
  if (st.st_size < 24) {
    ::close(fd);
    return tl::unexpected(path + ": " + std::to_string(st.st_size) + " bytes is too small for a GGUF file");
  }
  void* m = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return tl::unexpected(path + ": mmap: " + std::strerror(errno));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->map_ = m;
  f->base_ = static_cast<const uint8_t*>(m);
  f->size_ = uint64_t(st.st_size);
  if (auto r = f->parse(); !r) return tl::unexpected(path + ": " + r.error());
  return f;
}

tl::expected<std::unique_ptr<GgufFile>, std::string> GgufFile::from_memory(std::string_view bytes) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->owned_.reset(new uint64_t[bytes.size() / 8 + 1]);
  if (!bytes.empty()) std::memcpy(f->owned_.get(), bytes.data(), bytes.size());
  f->base_ = reinterpret_cast<const uint8_t*>(f->owned_.get());
  f->size_ = bytes.size();
  if (auto r = f->parse(); !r) return tl::unexpected(r.error());
  return f;
}

tl::expected<void, std::string> GgufFile::parse() {
  Cursor c(base_, size_);
  uint32_t magic = 0;
  if (!c.read(&magic)) return tl::unexpected(std::string("file too small for a GGUF header"));
  if (magic != kMagic) return tl::unexpected(std::string("not a GGUF file (bad magic)"));
  if (!c.read(&version_)) return tl::unexpected(std::string("truncated GGUF header"));
  if (version_ == 1) return tl::unexpected(std::string("GGUF version 1 is not supported (only 2 and 3)"));
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xFFFF) == 0) return tl::unexpected(std::string("big-endian GGUF files are not supported"));
    return tl::unexpected("unsupported GGUF version " + std::to_string(version_));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.read(&n_tensors) || !c.read(&n_kv)) return tl::unexpected(std::string("truncated GGUF header"));
  // A key/value pair needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor
  // info at least 8 + 4 + 4 + 8. Bound the counts before any allocation.
  if (n_kv > c.left() / 13) return tl::unexpected("metadata count " + std::to_string(n_kv) + " exceeds the file");
  if (n_tensors > c.left() / 24) return tl::unexpected("tensor count " + std::to_string(n_tensors) + " exceeds the file");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    if (!c.read_string(&key)) return tl::unexpected("truncated metadata key #" + std::to_string(k) + at(c));
    uint32_t t = 0;
    if (!c.read(&t)) return tl::unexpected("truncated metadata type for '" + std::string(key) + "'" + at(c));
    if (!is_known_type(t)) return tl::unexpected("unknown type " + std::to_string(t) + " for key '" + std::string(key) + "'");
    GgufValue v;
    if (auto r = read_value(c, GgufType(t), &v); !r) return tl::unexpected("key '" + std::string(key) + "': " + r.error());
    if (kv_.count(key) != 0) return tl::unexpected("duplicate metadata key '" + std::string(key) + "'");
    key_order_.emplace_back(key);
    kv_.emplace(std::string(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!is_integer(a->type) || a->i <= 0 || a->i > (1 << 20) || (a->i & (a->i - 1)) != 0)
      return tl::unexpected(std::string("general.alignment must be a power of two up to 1 MiB"));
    alignment_ = uint64_t(a->i);
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo ti;
    std::string_view name;
    if (!c.read_string(&name)) return tl::unexpected("truncated tensor name #" + std::to_string(k) + at(c));
    ti.name = std::string(name);
    uint32_t n_dims = 0;
    if (!c.read(&n_dims)) return tl::unexpected("truncated tensor '" + ti.name + "'" + at(c));
    if (n_dims == 0 || n_dims > kMaxDims)
      return tl::unexpected("tensor '" + ti.name + "' has " + std::to_string(n_dims) + " dimensions (1..4 allowed)");
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      if (!c.read(&ne)) return tl::unexpected("truncated tensor '" + ti.name + "'" + at(c));
      if (ne == 0 || ne > (uint64_t(1) << 40) || elems > (uint64_t(1) << 62) / ne)
        return tl::unexpected("tensor '" + ti.name + "' has an invalid dimension " + std::to_string(ne));
      elems *= ne;
      ti.ne.push_back(ne);
    }
    if (!c.read(&ti.type) || !c.read(&ti.offset)) return tl::unexpected("truncated tensor '" + ti.name + "'" + at(c));
    const TypeTraits* tt = type_traits(ti.type);
    if (tt == nullptr) return tl::unexpected("tensor '" + ti.name + "' has unknown type id " + std::to_string(ti.type));
    if (ti.ne[0] % tt->block_size != 0)
      return tl::unexpected("tensor '" + ti.name + "': row length " + std::to_string(ti.ne[0]) +
                            " is not a multiple of the " + tt->name + " block size " + std::to_string(tt->block_size));
    ti.nbytes = elems / tt->block_size * tt->type_size;
    if (ti.offset % alignment_ != 0) return tl::unexpected("tensor '" + ti.name + "' offset is not aligned");
    if (tensor_index_.count(ti.name) != 0) return tl::unexpected("duplicate tensor '" + ti.name + "'");
    tensor_index_.emplace(ti.name, tensors_.size());
    tensors_.push_back(std::move(ti));
  }

  uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > size_ && !tensors_.empty()) return tl::unexpected(std::string("tensor data section is missing (file truncated)"));
  uint64_t data_size = data_start <= size_ ? size_ - data_start : 0;
  data_offset_ = data_start;
  for (TensorInfo& ti : tensors_) {
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      return tl::unexpected("tensor '" + ti.name + "' (" + std::to_string(ti.nbytes) + " bytes at offset " +
                            std::to_string(ti.offset) + ") extends past the end of the file (data section is " +
                            std::to_string(data_size) + " bytes)");
    ti.data = base_ + data_start + ti.offset;
  }
  return {};
}

bool GgufFile::has(std::string_view key) const { return kv_.find(key) != kv_.end(); }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::STRING) return std::nullopt;
  return std::string(v->str);
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !is_integer(v->type)) return std::nullopt;
  return v->i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !(is_integer(v->type) || v->type == GgufType::FLOAT32 || v->type == GgufType::FLOAT64))
    return std::nullopt;
  return v->f;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !is_integer(v->type)) return std::nullopt;
  return v->i != 0;
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::ARRAY || v->array_type != GgufType::STRING) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(v->strings.size());
  for (std::string_view s : v->strings) out.emplace_back(s);
  return out;
}

std::optional<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::ARRAY || scalar_size(v->array_type) == 0) return std::nullopt;
  std::vector<float> out(size_t(v->count));
  for (uint64_t k = 0; k < v->count; ++k) out[k] = float(array_float(*v, k));
  return out;
}

std::optional<std::vector<int32_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::ARRAY || !is_integer(v->array_type)) return std::nullopt;
  std::vector<int32_t> out(size_t(v->count));
  for (uint64_t k = 0; k < v->count; ++k) out[k] = int32_t(array_int(*v, k));
  return out;
}

std::vector<std::string> GgufFile::keys() const { return key_order_; }

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace aifn::engine
