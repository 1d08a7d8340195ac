// aifn::cache::LruCache — answers kept for reuse: the function response cache
// ([cache] ttl in function.toml) and the model gateway's exact-match cache.
// Bounded by total bytes (keys + values); the least recently used entry goes
// first when a new one needs room, and an entry past its expiry is never
// returned. Thread-safe (one mutex): io threads and workers may share it.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/json/value.hpp>

namespace aifn::cache {

struct Entry {
  std::string content_type;
  std::string body;
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::size_t entries = 0;
  std::size_t bytes = 0;
};

class LruCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LruCache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  std::optional<Entry> get(const std::string& key);
  // Keeps `value` for `ttl`. An entry larger than the whole cache is not kept.
  void put(const std::string& key, Entry value, std::chrono::milliseconds ttl);
  CacheStats stats() const;

 private:
  struct Slot {
    std::string key;
    Entry value;
    Clock::time_point expires;
    std::size_t bytes() const { return key.size() + value.body.size() + value.content_type.size() + 64; }
  };
  void erase(std::list<Slot>::iterator it);  // REQUIRES: mu_ held

  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::list<Slot> lru_;  // front = most recently used; guarded by mu_
  std::unordered_map<std::string, std::list<Slot>::iterator> index_;  // guarded by mu_
  std::size_t bytes_ = 0;                                               // guarded by mu_
  CacheStats stats_;                                                    // guarded by mu_
};

// JSON text with object keys sorted (recursively) and no insignificant
// whitespace, so equal documents give equal text: the cache's notion of
// "identical input".
std::string canonical_json(const boost::json::value& v);

// A fixed-size digest of the parts of a cache key (SHA-256, hex), so keys
// stay small whatever the input size, and parts cannot run into each other.
std::string cache_key(std::initializer_list<std::string_view> parts);

}  // namespace aifn::cache
