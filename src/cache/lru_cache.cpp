#include "cache/lru_cache.h"

#include <algorithm>
#include <vector>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

namespace aifn::cache {

std::optional<Entry> LruCache::get(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  if (it->second->expires <= Clock::now()) {
    erase(it->second);
    ++stats_.misses;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  return it->second->value;
}

void LruCache::put(const std::string& key, Entry value, std::chrono::milliseconds ttl) {
  Slot slot{key, std::move(value), Clock::now() + ttl};
  std::size_t need = slot.bytes();
  std::lock_guard lk(mu_);
  if (auto it = index_.find(key); it != index_.end()) erase(it->second);
  if (need > max_bytes_ || ttl.count() <= 0) return;
  while (bytes_ + need > max_bytes_ && !lru_.empty()) {
    erase(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(std::move(slot));
  index_[key] = lru_.begin();
  bytes_ += need;
}

void LruCache::erase(std::list<Slot>::iterator it) {
  bytes_ -= it->bytes();
  index_.erase(it->key);
  lru_.erase(it);
}

CacheStats LruCache::stats() const {
  std::lock_guard lk(mu_);
  CacheStats s = stats_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  return s;
}

namespace {

void write_canonical(const boost::json::value& v, std::string& out) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      const auto& o = v.get_object();
      std::vector<const boost::json::key_value_pair*> fields;
      fields.reserve(o.size());
      for (const auto& kv : o) fields.push_back(&kv);
      std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
      out += '{';
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ',';
        out += boost::json::serialize(boost::json::string(fields[i]->key()));
        out += ':';
        write_canonical(fields[i]->value(), out);
      }
      out += '}';
      break;
    }
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_canonical(x, out);
      }
      out += ']';
      break;
    }
    default:
      out += boost::json::serialize(v);
  }
}

}  // namespace

std::string canonical_json(const boost::json::value& v) {
  std::string out;
  write_canonical(v, out);
  return out;
}

std::string cache_key(std::initializer_list<std::string_view> parts) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (auto p : parts) {
    // Length-prefixed, so ("ab","c") and ("a","bc") differ.
    std::uint64_t n = p.size();
    EVP_DigestUpdate(ctx, &n, sizeof n);
    EVP_DigestUpdate(ctx, p.data(), p.size());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return fmt::format("{:02x}", fmt::join(md, md + len, ""));
}

}  // namespace aifn::cache
