#include "cache/lru_cache.h"

#include <thread>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace aifn::cache {
namespace {

using namespace std::chrono_literals;

TEST(LruCache, ReturnsWhatWasPutUntilItExpires) {
  LruCache c(1 << 20);
  c.put("k", {"application/json", R"({"a":1})"}, 80ms);
  auto e = c.get("k");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, R"({"a":1})");
  EXPECT_EQ(e->content_type, "application/json");
  std::this_thread::sleep_for(120ms);
  EXPECT_FALSE(c.get("k"));
  EXPECT_EQ(c.stats().entries, 0u);
  EXPECT_EQ(c.stats().hits, 1u);
  EXPECT_EQ(c.stats().misses, 1u);
}

TEST(LruCache, EvictsTheLeastRecentlyUsedToStayWithinItsSize) {
  LruCache c(3 * (1000 + 64 + 2));  // room for three 1000-byte entries
  std::string body(1000, 'x');
  c.put("k1", {"", body}, 1h);
  c.put("k2", {"", body}, 1h);
  c.put("k3", {"", body}, 1h);
  ASSERT_TRUE(c.get("k1"));  // k1 is now the most recent; k2 the least
  c.put("k4", {"", body}, 1h);
  EXPECT_TRUE(c.get("k1"));
  EXPECT_FALSE(c.get("k2"));
  EXPECT_TRUE(c.get("k3"));
  EXPECT_TRUE(c.get("k4"));
  EXPECT_EQ(c.stats().evictions, 1u);
  EXPECT_LE(c.stats().bytes, 3u * (1000 + 64 + 2));
}

TEST(LruCache, ReplacingAKeyKeepsOneEntryAndTooLargeIsNotKept) {
  LruCache c(4096);
  c.put("k", {"", "one"}, 1h);
  c.put("k", {"", "two"}, 1h);
  EXPECT_EQ(c.get("k")->body, "two");
  EXPECT_EQ(c.stats().entries, 1u);
  c.put("big", {"", std::string(8192, 'x')}, 1h);
  EXPECT_FALSE(c.get("big"));
  EXPECT_TRUE(c.get("k"));
}

TEST(CanonicalJson, EqualDocumentsGiveEqualText) {
  auto a = boost::json::parse(R"({"b": [1, {"z": 1, "y": "s"}], "a": null})");
  auto b = boost::json::parse(R"({ "a":null,"b":[1,{"y":"s","z":1}]})");
  EXPECT_EQ(canonical_json(a), canonical_json(b));
  EXPECT_EQ(canonical_json(a), R"({"a":null,"b":[1,{"y":"s","z":1}]})");
  EXPECT_NE(canonical_json(boost::json::parse(R"([1,2])")), canonical_json(boost::json::parse(R"([2,1])")));
}

TEST(CacheKey, PartsCannotRunIntoEachOther) {
  EXPECT_NE(cache_key({"ab", "c"}), cache_key({"a", "bc"}));
  EXPECT_EQ(cache_key({"fn", "1", "{}"}), cache_key({"fn", "1", "{}"}));
  EXPECT_EQ(cache_key({"x"}).size(), 64u);
}

}  // namespace
}  // namespace aifn::cache
