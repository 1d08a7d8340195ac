// Sampler tests: each step of the chain on small hand-made logit rows.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

namespace aifn::engine {
namespace {

SamplingParams plain(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  return p;
}

std::map<TokenId, int> histogram(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<TokenId, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(logits).value()];
  return h;
}

TEST(Sampler, GreedyPicksTheFirstMaximum) {
  auto s = Sampler::create(plain(0.0f)).value();
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 3.0f, 2.0f, 3.0f}).value(), 1);
  EXPECT_EQ(s.sample(std::vector<float>{-5.0f}).value(), 0);
}

TEST(Sampler, SameSeedSameTokens) {
  const std::vector<float> logits = {0.1f, 0.5f, 0.2f, 0.9f, 0.0f, 0.3f};
  auto a = Sampler::create(plain(1.0f)).value();
  auto b = Sampler::create(plain(1.0f)).value();
  std::vector<TokenId> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(logits).value());
    tb.push_back(b.sample(logits).value());
  }
  EXPECT_EQ(ta, tb);
  auto params = plain(1.0f);
  params.seed = 43;
  auto c = Sampler::create(params).value();
  std::vector<TokenId> tc;
  for (int i = 0; i < 50; ++i) tc.push_back(c.sample(logits).value());
  EXPECT_NE(ta, tc);
  EXPECT_EQ(a.seed(), 42u);
}

TEST(Sampler, TemperatureFollowsTheSoftmax) {
  // p = softmax([0, ln 3]) = [0.25, 0.75].
  auto s = Sampler::create(plain(1.0f)).value();
  auto h = histogram(s, {0.0f, std::log(3.0f)}, 4000);
  EXPECT_NEAR(h[1] / 4000.0, 0.75, 0.03);
  // A low temperature sharpens it: [0, ln 3] / 0.5 -> p1 = 9/10.
  auto cold = Sampler::create(plain(0.5f)).value();
  h = histogram(cold, {0.0f, std::log(3.0f)}, 4000);
  EXPECT_NEAR(h[1] / 4000.0, 0.9, 0.02);
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  auto p = plain(1.0f);
  p.top_k = 2;
  auto s = Sampler::create(p).value();
  auto h = histogram(s, {1.0f, 0.9f, 1.1f, 0.0f}, 2000);
  EXPECT_EQ(h.count(1) + h.count(3), 0u);
  EXPECT_GT(h[0], 0);
  EXPECT_GT(h[2], 0);
}

TEST(Sampler, TopPKeepsTheSmallestSufficientSet) {
  // p = [0.5, 0.3, 0.2] (logits are logs). top_p 0.7 keeps 0 and 1.
  auto p = plain(1.0f);
  p.top_p = 0.7f;
  auto s = Sampler::create(p).value();
  auto h = histogram(s, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 3000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_NEAR(h[0] / 3000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  // Relative to the best (0.5): 0.3 is 0.6x, 0.2 is 0.4x. min_p 0.5 drops token 2.
  auto p = plain(1.0f);
  p.min_p = 0.5f;
  auto s = Sampler::create(p).value();
  auto h = histogram(s, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 3000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_GT(h[1], 0);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  auto p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  auto s = Sampler::create(p).value();
  s.accept(0);
  // 3.0 / 2 = 1.5 < 2.0: token 1 wins now.
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f}).value(), 1);
  auto t = Sampler::create(p).value();
  t.accept(0);
  // -1 * 2 = -2 < -1.5.
  EXPECT_EQ(t.sample(std::vector<float>{-1.0f, -1.5f}).value(), 1);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesSubtract) {
  auto q = plain(0.0f);
  q.frequency_penalty = 0.2f;
  auto f = Sampler::create(q).value();
  f.accept(0);
  f.accept(0);
  EXPECT_EQ(f.sample(std::vector<float>{1.0f, 0.7f}).value(), 1);  // 1 - 2*0.2 = 0.6
  auto r = plain(0.0f);
  r.presence_penalty = 0.5f;
  auto pr = Sampler::create(r).value();
  pr.accept(0);
  pr.accept(0);
  EXPECT_EQ(pr.sample(std::vector<float>{1.0f, 0.7f}).value(), 1);  // 1 - 0.5
  auto once = Sampler::create(r).value();
  once.accept(0);
  EXPECT_EQ(once.sample(std::vector<float>{1.0f, 0.4f}).value(), 0);  // 0.5 > 0.4
}

TEST(Sampler, PenaltiesOnlySeeTheLastNTokens) {
  auto p = plain(0.0f);
  p.repeat_penalty = 10.0f;
  p.penalty_last_n = 2;
  auto s = Sampler::create(p).value();
  s.accept(0);
  s.accept(2);
  s.accept(2);  // token 0 left the window
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, 5.0f}).value(), 0);
  p.penalty_last_n = 0;  // off
  auto off = Sampler::create(p).value();
  off.accept(2);
  EXPECT_EQ(off.sample(std::vector<float>{3.0f, 2.0f, 5.0f}).value(), 2);
}

TEST(Sampler, HostileLogitsAreHandled) {
  auto s = Sampler::create(plain(1.0f)).value();
  EXPECT_FALSE(s.sample(std::vector<float>{}).has_value());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(s.sample(std::vector<float>{nan, -inf}).has_value());
  EXPECT_EQ(s.sample(std::vector<float>{nan, 1.0f, -inf}).value(), 1);
  EXPECT_EQ(s.sample(std::vector<float>{0.0f, inf, 1.0f}).value(), 1);
  auto g = Sampler::create(plain(0.0f)).value();
  EXPECT_EQ(g.sample(std::vector<float>{nan, 2.0f}).value(), 1);
}

TEST(Sampler, RejectsBadParameters) {
  auto p = plain(1.0f);
  p.top_p = 0.0f;
  EXPECT_FALSE(Sampler::create(p).has_value());
  p = plain(1.0f);
  p.min_p = 1.5f;
  EXPECT_FALSE(Sampler::create(p).has_value());
  p = plain(std::numeric_limits<float>::quiet_NaN());
  EXPECT_FALSE(Sampler::create(p).has_value());
  p = plain(1.0f);
  p.repeat_penalty = 0.0f;
  EXPECT_FALSE(Sampler::create(p).has_value());
  p = plain(1.0f);
  p.penalty_last_n = -1;
  EXPECT_FALSE(Sampler::create(p).has_value());
}

}  // namespace
}  // namespace aifn::engine
