#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "security/api_keys.h"
#include "security/auth.h"
#include "security/limits.h"
#include "security/secret_box.h"
#include "security/secrets.h"

namespace aifn::security {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "aifn-sec-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto s = store::open_store("sqlite:" + (dir_ / "aifn.db").string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
  }
  fs::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(SecurityTest, SecretsAreSealedAtRestAndOpenOnlyWithTheirKey) {
  auto box = SecretBox::open(dir_.string(), "");
  ASSERT_TRUE(box) << box.error().message;
  EXPECT_EQ(mode_of(dir_ / "master.key"), 0600u);
  Secrets secrets(*store_, *box);
  ASSERT_TRUE(secrets.set("SLACK_TOKEN", "xoxb-very-secret"));
  auto row = store_->get_secret("SLACK_TOKEN");
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->sealed.find("xoxb"), std::string::npos);  // not in the clear
  EXPECT_EQ(**secrets.get("SLACK_TOKEN"), "xoxb-very-secret");
  EXPECT_FALSE(*secrets.get("MISSING"));

  // The same master key file opens it again; another key does not.
  auto again = SecretBox::open(dir_.string(), "");
  EXPECT_EQ(*again->unseal((*row)->sealed), "xoxb-very-secret");
  auto other = SecretBox::open(dir_.string(), std::string(64, 'a'));
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->unseal((*row)->sealed));
  EXPECT_FALSE(SecretBox::open(dir_.string(), "short"));

  EXPECT_FALSE(secrets.set("1BAD", "x"));
  EXPECT_FALSE(secrets.set("BIG", std::string(kMaxSecretBytes + 1, 'x')));
  auto tampered = (*row)->sealed;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(box->unseal(tampered));
}

TEST_F(SecurityTest, KeysAreShownOnceStoredHashedAndRevocable) {
  ApiKeys keys(*store_);
  ASSERT_TRUE(keys.load());
  EXPECT_FALSE(keys.any_created());
  auto made = keys.create({"ci", {"invoke:summarize", "models"}, "20/s", "50000/min", "5.00/day"});
  ASSERT_TRUE(made) << made.error().message;
  const auto& [row, text] = *made;
  EXPECT_EQ(text.rfind("aifn_" + row.id + ".", 0), 0u);
  auto stored = store_->list_keys();
  EXPECT_EQ(stored->at(0).hash.find(text.substr(text.find('.') + 1)), std::string::npos);
  auto k = keys.authenticate(text);
  ASSERT_TRUE(k);
  EXPECT_DOUBLE_EQ(k->rate.per_second, 20);
  EXPECT_DOUBLE_EQ(*k->budget_per_day, 5.0);
  EXPECT_FALSE(keys.authenticate(text + "x"));
  EXPECT_FALSE(keys.authenticate("aifn_" + row.id + ".wrong"));
  EXPECT_FALSE(keys.authenticate("not-a-key"));

  ApiKeys reloaded(*store_);  // a restart keeps it
  ASSERT_TRUE(reloaded.load());
  EXPECT_TRUE(reloaded.authenticate(text));
  EXPECT_TRUE(*keys.revoke(row.id));
  EXPECT_FALSE(keys.authenticate(text));
  EXPECT_TRUE(keys.any_created());

  EXPECT_FALSE(keys.create({"x", {"root"}, "", "", ""}));
  EXPECT_FALSE(keys.create({"x", {}, "", "", ""}));
  EXPECT_FALSE(keys.create({"x", {"models"}, "fast", "", ""}));
  EXPECT_FALSE(keys.create({"x", {"models"}, "", "", "5/h"}));
}

TEST(Scopes, AdminAndWildcardsAllowWhatTheySay) {
  EXPECT_TRUE(scope_allows({"admin"}, "invoke:x"));
  EXPECT_TRUE(scope_allows({"invoke:*"}, "invoke:x"));
  EXPECT_FALSE(scope_allows({"invoke:*"}, "models"));
  EXPECT_TRUE(scope_allows({"invoke:x"}, "invoke:x"));
  EXPECT_FALSE(scope_allows({"invoke:x"}, "invoke:y"));
  EXPECT_EQ(Auth::scope_for("/fn/summarize"), "invoke:summarize");
  EXPECT_EQ(Auth::scope_for("/fn/summarize/jobs"), "invoke:summarize");
  EXPECT_EQ(Auth::scope_for("/2015-03-31/functions/summarize/invocations"), "invoke:summarize");
  EXPECT_EQ(Auth::scope_for("/v1/chat/completions"), "models");
  EXPECT_EQ(Auth::scope_for("/healthz"), "");
  EXPECT_EQ(Auth::scope_for("/metrics"), "admin");
  EXPECT_EQ(Auth::scope_for("/admin/keys"), "admin");
  EXPECT_EQ(Auth::scope_for("/jobs/abc"), "invoke:?");
}

TEST(Limits, RequestRateIsATokenBucket) {
  Limits limits;
  ApiKey k;
  k.row.id = "k1";
  k.rate = *parse_rate("2/s");
  auto t0 = Limits::Clock::now();
  EXPECT_TRUE(limits.take_request(k, t0));
  EXPECT_TRUE(limits.take_request(k, t0));
  auto refused = limits.take_request(k, t0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().type, ErrorType::rate_limited);
  EXPECT_EQ(refused.error().retry_after_seconds, 1);
  EXPECT_TRUE(limits.take_request(k, t0 + 600ms));  // refilled at 2/s
}

TEST(Limits, ParallelReservationsCannotOvershootTheBudget) {
  Limits limits;
  ApiKey k;
  k.row.id = "k1";
  k.budget_per_day = 1.0;
  std::atomic<int> admitted{0};
  std::vector<std::thread> calls;
  for (int i = 0; i < 16; ++i)
    calls.emplace_back([&] {
      if (limits.reserve(k, 0.3)) {  // worst case 0.3 each: at most 3 fit in 1.0
        ++admitted;
        std::this_thread::sleep_for(10ms);
        limits.settle(k, 0.3, 0.1);
      }
    });
  for (auto& t : calls) t.join();
  EXPECT_GE(admitted.load(), 3);
  EXPECT_LE(limits.spent_today("k1"), 1.0);
  limits.set_spent_today("k1", 0.95);
  auto refused = limits.reserve(k, 0.1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().type, ErrorType::budget_exceeded);
  EXPECT_GT(*refused.error().retry_after_seconds, 0);
}

TEST_F(SecurityTest, AutoModeIsOpenOnLoopbackUntilAKeyExists) {
  ApiKeys keys(*store_);
  ASSERT_TRUE(keys.load());
  Auth auth({"auto", "127.0.0.1", "", dir_.string()}, keys);
  ASSERT_TRUE(auth.start());
  EXPECT_TRUE(auth.open());
  EXPECT_TRUE(auth.check("/admin/functions", ""));
  auto made = keys.create({"ci", {"invoke:hello"}, "", "", ""});
  EXPECT_FALSE(auth.open());
  auto r = auth.check("/fn/hello", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::unauthorized);
  EXPECT_TRUE(auth.check("/fn/hello", "Bearer " + made->second));
  r = auth.check("/fn/other", "Bearer " + made->second);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, ErrorType::forbidden);
  EXPECT_TRUE(auth.check("/healthz", ""));
  // The admin key was generated when auth became required.
  auto file = dir_ / "admin.key";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(mode_of(file), 0600u);
  std::string admin;
  std::ifstream(file) >> admin;
  auto a = auth.check("/admin/keys", "Bearer " + admin);
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->admin);
  EXPECT_FALSE(auth.check("/admin/keys", "Bearer " + made->second));
}

TEST_F(SecurityTest, RequiredModeWithAnAdminKeyFromTheEnvironment) {
  ApiKeys keys(*store_);
  Auth auth({"required", "0.0.0.0", "let-me-in", dir_.string()}, keys);
  ASSERT_TRUE(auth.start());
  EXPECT_FALSE(fs::exists(dir_ / "admin.key"));
  EXPECT_TRUE(auth.check("/metrics", "Bearer let-me-in"));
  EXPECT_FALSE(auth.check("/metrics", "Bearer let-me-out"));
  EXPECT_TRUE(auth.check("/v1/models", "Bearer aifn_inv_0123"));  // left to the model gateway
  Auth off({"off", "0.0.0.0", "", dir_.string()}, keys);
  ASSERT_TRUE(off.start());
  EXPECT_TRUE(off.check("/admin/keys", ""));
  Auth bad({"sometimes", "0.0.0.0", "", dir_.string()}, keys);
  EXPECT_FALSE(bad.start());
}

}  // namespace
}  // namespace aifn::security
