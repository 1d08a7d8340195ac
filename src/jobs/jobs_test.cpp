// The jobs table's guarantees on a real SQLite file, and the webhook signer.
// The worker itself runs against real instances in tests/e2e/jobs_test.cpp.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "jobs/jobs.h"
#include "store/store.h"

namespace aifn::jobs {
namespace {

namespace fs = std::filesystem;

class JobsTable : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() / ("aifn-jobs-test-" + std::to_string(::getpid()) + ".db");
    fs::remove(path_);
    auto s = store::open_store("sqlite:" + path_.string());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    for (auto ext : {"", "-wal", "-shm"}) fs::remove(path_.string() + ext);
  }
  store::JobRecord job(const std::string& id, const std::string& key = "") {
    store::JobRecord j;
    j.id = id;
    j.function = "f";
    j.input = "{}";
    j.max_attempts = 3;
    j.created_ms = 1000;
    j.run_after_ms = 1000;
    j.idempotency_key = key;
    return j;
  }
  store::JobUpdate start(const std::string& id, const std::string& owner) {
    store::JobUpdate u;
    u.kind = store::JobUpdate::Kind::start;
    u.id = id;
    u.owner = owner;
    u.finished_ms = 1500;
    return u;
  }
  store::JobUpdate finish(const std::string& id, const std::string& owner, const std::string& status) {
    store::JobUpdate u;
    u.id = id;
    u.owner = owner;
    u.status = status;
    u.result = "42";
    u.finished_ms = 2000;
    return u;
  }
  fs::path path_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(JobsTable, LeaseTakesDueJobsOnceAndAStartCountsTheAttempt) {
  ASSERT_TRUE(store_->write_jobs({job("a"), job("b")}, {}, 0, nullptr));
  auto first = store_->lease_jobs("f", "n1", 1000, 30'000, 10);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].status, "running");
  EXPECT_EQ((*first)[0].attempts, 0) << "leased ahead, not started";
  std::vector<bool> applied;
  ASSERT_TRUE(store_->write_jobs({}, {start("a", "n1"), start("b", "intruder")}, 0, &applied));
  EXPECT_TRUE(applied[0]);
  EXPECT_FALSE(applied[1]) << "only the lease owner starts a run";
  EXPECT_EQ(store_->get_job("a")->attempts, 1);
  auto second = store_->lease_jobs("f", "n2", 1000, 30'000, 10);
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->empty()) << "a live lease is not taken twice";
}

TEST_F(JobsTable, ExpiredLeaseIsTakenByAnotherNode) {
  ASSERT_TRUE(store_->write_jobs({job("a")}, {}, 0, nullptr));
  ASSERT_EQ(store_->lease_jobs("f", "dead", 1000, 5'000, 10)->size(), 1u);
  ASSERT_TRUE(store_->write_jobs({}, {start("a", "dead")}, 0, nullptr));
  EXPECT_TRUE(store_->lease_jobs("f", "n2", 5'999, 5'000, 10)->empty());
  auto later = store_->lease_jobs("f", "n2", 6'001, 5'000, 10);
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ((*later)[0].attempts, 1) << "the dead node's run counted";
  // The dead node's late answer must not overwrite the new lease.
  std::vector<bool> applied;
  ASSERT_TRUE(store_->write_jobs({}, {finish("a", "dead", "succeeded")}, 0, &applied));
  EXPECT_FALSE(applied[0]);
  ASSERT_TRUE(store_->write_jobs({}, {finish("a", "n2", "succeeded")}, 0, &applied));
  EXPECT_TRUE(applied[0]);
  EXPECT_EQ(store_->get_job("a")->status, "succeeded");
}

TEST_F(JobsTable, CommittedResultIsNeverLeasedAgain) {
  ASSERT_TRUE(store_->write_jobs({job("a")}, {}, 0, nullptr));
  ASSERT_EQ(store_->lease_jobs("f", "n1", 1000, 1'000, 10)->size(), 1u);
  ASSERT_TRUE(store_->write_jobs({}, {finish("a", "n1", "succeeded")}, 0, nullptr));
  EXPECT_TRUE(store_->lease_jobs("f", "n2", 1'000'000, 1'000, 10)->empty());
  EXPECT_EQ(store_->release_leases("n1").value(), 0);
}

TEST_F(JobsTable, RestartedNodeReleasesItsOwnLeases) {
  ASSERT_TRUE(store_->write_jobs({job("a"), job("b")}, {}, 0, nullptr));
  ASSERT_EQ(store_->lease_jobs("f", "n1", 1000, 60'000, 10)->size(), 2u);
  ASSERT_TRUE(store_->write_jobs({}, {start("a", "n1")}, 0, nullptr));
  EXPECT_EQ(store_->release_leases("n1").value(), 2);
  auto again = store_->lease_jobs("f", "n1", 1001, 60'000, 10);
  ASSERT_EQ(again->size(), 2u);
  for (auto& j : *again)
    EXPECT_EQ(j.attempts, j.id == "a" ? 1 : 0) << j.id << ": the interrupted run counts, the unstarted one not";
}

TEST_F(JobsTable, IdempotencyKeyReturnsTheEarlierJobWithinTheWindow) {
  auto a = store_->write_jobs({job("a", "k1"), job("b", "k1"), job("c", "k2")}, {}, 0, nullptr);
  ASSERT_TRUE(a);
  EXPECT_FALSE((*a)[0].existing);
  EXPECT_TRUE((*a)[1].existing);
  EXPECT_EQ((*a)[1].id, "a");
  EXPECT_FALSE((*a)[2].existing);
  // Past the window (created_ms 1000 < since 5000) the key is free again.
  auto b = store_->write_jobs({job("d", "k1")}, {}, 5000, nullptr);
  EXPECT_FALSE((*b)[0].existing);
}

TEST_F(JobsTable, RetryBackoffWaitsUntilRunAfter) {
  ASSERT_TRUE(store_->write_jobs({job("a")}, {}, 0, nullptr));
  ASSERT_EQ(store_->lease_jobs("f", "n1", 1000, 60'000, 10)->size(), 1u);
  auto u = finish("a", "n1", "queued");
  u.run_after_ms = 9000;
  ASSERT_TRUE(store_->write_jobs({}, {u}, 0, nullptr));
  EXPECT_TRUE(store_->lease_jobs("f", "n1", 8999, 60'000, 10)->empty());
  EXPECT_EQ(store_->lease_jobs("f", "n1", 9000, 60'000, 10)->size(), 1u);
}

TEST_F(JobsTable, CancelStopsAQueuedJobAndRefusesAFinishedOne) {
  ASSERT_TRUE(store_->write_jobs({job("a"), job("b")}, {}, 0, nullptr));
  auto c = store_->cancel_job("a", 1500);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, "cancelled");
  EXPECT_EQ(store_->cancel_job("a", 1600).error().type, ErrorType::conflict);
  EXPECT_EQ(store_->cancel_job("zzz", 1600).error().type, ErrorType::not_found);
  ASSERT_EQ(store_->lease_jobs("f", "n1", 2000, 60'000, 10)->size(), 1u) << "only b is left";
  auto r = store_->requeue_job("a", 3000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, "queued");
  EXPECT_EQ(r->attempts, 0);
  EXPECT_EQ(store_->requeue_job("b", 3000).error().type, ErrorType::conflict) << "b is running";
}

TEST_F(JobsTable, PurgeDeletesOldFinishedJobsOnly) {
  auto with_callback = job("cb");
  with_callback.callback_url = "http://127.0.0.1:9/hook";
  ASSERT_TRUE(store_->write_jobs({job("ok"), job("bad"), job("queued"), job("running"), with_callback}, {}, 0,
                                 nullptr));
  ASSERT_EQ(store_->lease_jobs("f", "n1", 1000, 60'000, 10)->size(), 5u);
  ASSERT_TRUE(store_->write_jobs({}, {finish("ok", "n1", "succeeded"), finish("bad", "n1", "failed"),
                                      finish("cb", "n1", "succeeded")},
                                 0, nullptr));
  ASSERT_TRUE(store_->write_jobs({}, {finish("queued", "n1", "queued")}, 0, nullptr));  // a retry waits: not final
  EXPECT_EQ(store_->get_job("cb")->callback_state, "pending");
  EXPECT_EQ(store_->purge_jobs(2000, 100).value(), 0) << "finished at 2000: not before 2000";
  EXPECT_EQ(store_->purge_jobs(2001, 1).value(), 1) << "the limit holds";
  EXPECT_EQ(store_->purge_jobs(2001, 100).value(), 1);
  EXPECT_EQ(store_->get_job("ok").error().type, ErrorType::not_found);
  EXPECT_EQ(store_->get_job("bad").error().type, ErrorType::not_found);
  EXPECT_TRUE(store_->get_job("cb")) << "a callback still to deliver keeps its job";
  EXPECT_TRUE(store_->get_job("queued"));
  EXPECT_TRUE(store_->get_job("running"));
}

TEST_F(JobsTable, ListFiltersByFunctionAndStatus) {
  auto other = job("z");
  other.function = "g";
  ASSERT_TRUE(store_->write_jobs({job("a"), job("b"), other}, {}, 0, nullptr));
  ASSERT_TRUE(store_->cancel_job("b", 1100));
  store::JobFilter f;
  f.function = "f";
  EXPECT_EQ(store_->list_jobs(f)->size(), 2u);
  f.status = "cancelled";
  auto l = store_->list_jobs(f);
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].id, "b");
}

// The Standard Webhooks reference test vector (standard-webhooks repo,
// libraries' tests): same secret, id, timestamp and payload, same signature.
TEST(WebhookSignature, MatchesTheStandardWebhooksTestVector) {
  EXPECT_EQ(sign_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                         R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_EQ(sign_webhook("not-a-secret", "id", 1, "{}"), "");
}

TEST(WebhookSecret, ComesFromTheSecretStoreOrTheDataDir) {
  auto dir = fs::temp_directory_path() / ("aifn-whsec-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  SecretLookup store = [](const std::string& name) -> Expected<std::optional<std::string>> {
    if (name == "WEBHOOK_SECRET") return std::optional<std::string>("whsec_c2VjcmV0");
    if (name == "PLAIN") return std::optional<std::string>("not-whsec");
    return std::optional<std::string>();
  };
  EXPECT_EQ(*load_or_create_webhook_secret("secret:WEBHOOK_SECRET", dir.string(), store), "whsec_c2VjcmV0");
  EXPECT_FALSE(load_or_create_webhook_secret("secret:MISSING", dir.string(), store));
  EXPECT_FALSE(load_or_create_webhook_secret("secret:PLAIN", dir.string(), store));
  auto made = load_or_create_webhook_secret("", dir.string(), store);
  ASSERT_TRUE(made);
  EXPECT_EQ(made->rfind("whsec_", 0), 0u);
  EXPECT_EQ(*load_or_create_webhook_secret("", dir.string(), store), *made);  // kept
  fs::remove_all(dir);
}

TEST(JobJson, ShowsTheErrorObjectAndNullTimes) {
  store::JobRecord j;
  j.id = "job_1";
  j.function = "f";
  j.status = "failed";
  j.error = R"({"error":{"type":"timeout","message":"slow"}})";
  auto o = job_json(j);
  EXPECT_EQ(o.at("error").at("type").as_string(), "timeout");
  EXPECT_TRUE(o.at("started_at").is_null());
  EXPECT_FALSE(o.contains("result"));
}

}  // namespace
}  // namespace aifn::jobs
