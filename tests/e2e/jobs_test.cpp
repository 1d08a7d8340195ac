// Background jobs end to end (DESIGN.md §6, §7): the real server, real Node
// instances, real HTTP clients: results land on the job, retries back off,
// cancel kills, idempotency keys, the SSE feed, signed callbacks checked by
// a real receiver, kill -9 with 200 jobs, the pool-sharing rule, and the
// official AWS SDK's Invoke.
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "fixtures.h"

namespace aifn::e2e {
namespace {

using namespace std::chrono_literals;

std::string str(const boost::json::value& v, const char* key) {
  return boost::json::value_to<std::string>(v.at(key));
}

std::string enqueue(Server& s, const std::string& fn, const std::string& body,
                    std::map<std::string, std::string> headers = {}) {
  auto r = s.post("/fn/" + fn + "/jobs", body, std::move(headers));
  if (r.status != 202) throw std::runtime_error("enqueue: " + std::to_string(r.status) + " " + r.body);
  return str(json(r.body), "id");
}

boost::json::value job(Server& s, const std::string& id) { return json(s.get("/jobs/" + id).body); }

// Polls until the job is in a final state; returns it.
boost::json::value wait_final(Server& s, const std::string& id, std::chrono::milliseconds limit = 30s) {
  boost::json::value j;
  eventually([&] {
    j = job(s, id);
    auto st = str(j, "status");
    return st == "succeeded" || st == "failed" || st == "cancelled";
  }, limit);
  return j;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Lines equal to `line`; every line when `line` is empty.
int count_lines(const std::string& text, const std::string& line) {
  int n = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) n += line.empty() || l == line;
  return n;
}

// A child process whose stdout lines are collected (the webhook receiver).
class Child {
 public:
  explicit Child(std::vector<std::string> args, std::vector<std::string> env = {}) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(p[1], 1);
      ::close(p[0]);
      ::close(p[1]);
      for (auto& e : env) ::putenv(e.data());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    fd_ = p[0];
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd_, buf, sizeof buf)) > 0) {
        std::lock_guard lk(mu_);
        out_.append(buf, n);
      }
    });
  }
  ~Child() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reader_.join();
    ::close(fd_);
  }
  std::vector<boost::json::value> lines() {
    std::lock_guard lk(mu_);
    std::vector<boost::json::value> v;
    std::istringstream in(out_);
    for (std::string l; std::getline(in, l);) {
      boost::system::error_code ec;
      auto j = boost::json::parse(l, ec);
      if (!ec) v.push_back(j);
    }
    return v;
  }

 private:
  int pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::string out_;
};

TEST(Jobs, EnqueueAnswers202AndTheResultLandsOnTheJob) {
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path());
  auto r = s.post("/fn/work/jobs", R"({"sleep_ms": 50, "n": 7})");
  ASSERT_EQ(r.status, 202) << r.body;
  auto body = json(r.body);
  auto id = str(body, "id");
  EXPECT_EQ(str(body, "status"), "queued");
  EXPECT_EQ(str(body, "status_url"), "/jobs/" + id);
  EXPECT_EQ(r.header("location"), "/jobs/" + id);
  auto j = wait_final(s, id);
  ASSERT_EQ(str(j, "status"), "succeeded") << j;
  EXPECT_EQ(j.at("result").at("event").at("n").as_int64(), 7);
  EXPECT_EQ(j.at("attempts").as_int64(), 1);
  EXPECT_FALSE(j.at("created_at").is_null());
  EXPECT_FALSE(j.at("finished_at").is_null());
  auto list = json(s.get("/jobs?function=work&status=succeeded").body);
  ASSERT_EQ(list.at("jobs").as_array().size(), 1u);
  EXPECT_EQ(str(list.at("jobs").as_array()[0], "id"), id);
}

TEST(Jobs, BadRequestsGetClearErrors) {
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path());
  EXPECT_EQ(s.post("/fn/work/jobs", "{nope").status, 400);
  EXPECT_EQ(s.post("/fn/missing/jobs", "{}").status, 404);
  auto cb = s.post("/fn/work/jobs", "{}", {{"Aifn-Callback-Url", "ftp://x/y"}});
  EXPECT_EQ(cb.status, 400);
  EXPECT_EQ(error_type(cb.body), "bad_request");
  EXPECT_EQ(s.get("/jobs/job_nope").status, 404);
  EXPECT_EQ(s.get("/jobs?status=sleeping").status, 400);
  EXPECT_EQ(s.get("/jobs?limit=0").status, 400);
}

// The port the webhook receiver announces ({"listening": PORT}); 0 when it
// has not within 20 s.
int listening_port(Child& receiver) {
  int port = 0;
  eventually([&] {
    for (auto& l : receiver.lines())
      if (l.as_object().contains("listening")) port = static_cast<int>(l.at("listening").as_int64());
    return port != 0;
  }, 20s);
  return port;
}

TEST(Jobs, FailedRunsAreRetriedWithBackoffThenSucceed) {
  FunctionsDir fns{{"flaky", "[retry]\nmax_attempts = 3\nbackoff = \"100ms\"\n"}};
  Server s(fns.path());
  auto count = fns.path() / "flaky" / "runs";  // inside the function folder: instances have their own /tmp
  auto id = enqueue(s, "flaky", R"({"count_file": ")" + count.string() + R"(", "fail_times": 2})");
  auto j = wait_final(s, id);
  ASSERT_EQ(str(j, "status"), "succeeded") << j << s.log();
  EXPECT_EQ(j.at("attempts").as_int64(), 3);
  EXPECT_EQ(count_lines(read_file(count), "run"), 3);
}

TEST(Jobs, ExhaustedRetriesFailWithTheLastErrorAndRetryReplaysIt) {
  FunctionsDir fns{{"flaky", "[retry]\nmax_attempts = 2\nbackoff = \"50ms\"\n"}};
  Server s(fns.path());
  auto count = fns.path() / "flaky" / "runs";
  auto id = enqueue(s, "flaky", R"({"count_file": ")" + count.string() + R"(", "fail_times": 2})");
  auto j = wait_final(s, id);
  ASSERT_EQ(str(j, "status"), "failed") << j;
  EXPECT_EQ(j.at("attempts").as_int64(), 2);
  EXPECT_EQ(str(j.at("error"), "type"), "function_error");
  EXPECT_NE(str(j.at("error"), "message").find("run 2 fails"), std::string::npos) << j;
  // Dead-letter replay: the third run succeeds (fail_times = 2).
  auto r = s.post("/jobs/" + id + "/retry", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(json(r.body), "status"), "queued");
  j = wait_final(s, id);
  EXPECT_EQ(str(j, "status"), "succeeded") << j;
  EXPECT_EQ(count_lines(read_file(count), "run"), 3);
  EXPECT_EQ(s.post("/jobs/" + id + "/retry", "").status, 409) << "a succeeded job is not run again";
}

TEST(Jobs, CancelWhileRunningKillsTheWork) {
  FunctionsDir fns{{"slow", "job_timeout = \"2m\"\n"}};
  Server s(fns.path());
  auto pid_file = fns.path() / "slow" / "child.pid";
  auto id = enqueue(s, "slow", R"({"sleep_ms": 60000, "child_pid_file": ")" + pid_file.string() + "\"}");
  ASSERT_TRUE(eventually([&] { return fs::exists(pid_file) && fs::file_size(pid_file) > 0; }, 20s)) << s.log();
  int child = std::stoi(read_file(pid_file));
  ASSERT_TRUE(process_alive(child));
  auto r = http::fetch({.method = "DELETE", .url = s.url("/jobs/" + id)});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(str(json(r->body), "status"), "cancelled");
  EXPECT_TRUE(eventually([&] { return !process_alive(child); }, 10s)) << "the instance's process group is killed";
  EXPECT_EQ(str(job(s, id), "status"), "cancelled");
  auto again = http::fetch({.method = "DELETE", .url = s.url("/jobs/" + id)});
  EXPECT_EQ(again->status, 409);
}

TEST(Jobs, IdempotencyKeyReturnsTheSameJob) {
  FunctionsDir fns{{"work", ""}, {"other", ""}};
  Server s(fns.path());
  auto a = s.post("/fn/work/jobs", R"({"x":1})", {{"Idempotency-Key", "order-42"}});
  auto b = s.post("/fn/work/jobs", R"({"x":2})", {{"Idempotency-Key", "order-42"}});
  auto c = s.post("/fn/work/jobs", R"({"x":3})", {{"Idempotency-Key", "order-43"}});
  auto d = s.post("/fn/other/jobs", R"({"x":4})", {{"Idempotency-Key", "order-42"}});
  ASSERT_EQ(a.status, 202);
  ASSERT_EQ(b.status, 202);
  EXPECT_EQ(str(json(a.body), "id"), str(json(b.body), "id"));
  EXPECT_EQ(b.header("idempotent-replayed"), "true");
  EXPECT_NE(str(json(a.body), "id"), str(json(c.body), "id"));
  EXPECT_NE(str(json(a.body), "id"), str(json(d.body), "id")) << "keys are per function";
  auto j = wait_final(s, str(json(a.body), "id"));
  EXPECT_EQ(j.at("result").at("event").at("x").as_int64(), 1) << "the first request's input runs";
  EXPECT_EQ(json(s.get("/jobs?function=work").body).at("jobs").as_array().size(), 2u);
}

TEST(Jobs, EventsStreamStatusChangesAndOutput) {
  FunctionsDir fns{{"streamer", "", "node", "index.stream"}};
  Server s(fns.path());
  auto id = enqueue(s, "streamer", R"({"chunks": 3, "gap_ms": 150})");
  std::string sse;
  auto r = http::fetch({.method = "GET", .url = s.url("/jobs/" + id + "/events"), .timeout = 30s,
                        .on_data = [&](std::string_view d) { sse += d; }});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->header("content-type"), "text/event-stream");
  EXPECT_NE(sse.find("event: output\ndata: \"chunk0\\n\""), std::string::npos) << sse;
  EXPECT_NE(sse.find("event: output\ndata: \"chunk2\\n\""), std::string::npos) << sse;
  EXPECT_NE(sse.find("\"status\":\"succeeded\""), std::string::npos) << sse;
  EXPECT_EQ(job(s, id).at("result").as_string(), "chunk0\nchunk1\nchunk2\n");
}

TEST(Jobs, CallbackIsSignedAndARealReceiverVerifiesIt) {
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path());
  auto secret_file = s.data_dir() / "webhook_secret";
  ASSERT_TRUE(fs::exists(secret_file));
  EXPECT_EQ(fs::status(secret_file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto secret = read_file(secret_file);
  while (!secret.empty() && secret.back() == '\n') secret.pop_back();
  ASSERT_EQ(secret.rfind("whsec_", 0), 0u);
  Child receiver({"node", (fs::path(source_dir()) / "examples/webhook-verify/receiver.js").string(), "0"},
                 {"WEBHOOK_SECRET=" + secret, "FAIL_FIRST=1"});
  const int port = listening_port(receiver);
  ASSERT_NE(port, 0) << "the receiver did not start";
  auto id = enqueue(s, "work", R"({"x": 1})",
                    {{"Aifn-Callback-Url", "http://127.0.0.1:" + std::to_string(port) + "/hook"}});
  ASSERT_TRUE(eventually([&] {
    auto j = job(s, id);
    return j.as_object().contains("callback") && str(j.at("callback"), "state") == "delivered";
  }, 30s)) << job(s, id) << s.log();
  auto j = job(s, id);
  EXPECT_EQ(j.at("callback").at("attempts").as_int64(), 2) << "the first delivery got 500 and was retried";
  int verified = 0, refused = 0;
  for (auto& l : receiver.lines()) {
    auto& o = l.as_object();
    if (!o.contains("verified")) continue;
    if (!o.at("verified").as_bool()) ++refused;
    if (o.at("verified").as_bool() && o.contains("job")) {
      ++verified;
      EXPECT_EQ(str(l, "job"), id);
      EXPECT_EQ(str(l, "type"), "job.succeeded");
    }
  }
  EXPECT_EQ(verified, 1);
  EXPECT_EQ(refused, 0);
}

TEST(Jobs, HttpsCallbackIsDeliveredToAVerifiedReceiver) {
  FunctionsDir fns{{"work", ""}};
  // A CA and a certificate for 127.0.0.1 made here, for the receiver.
  auto tls = fns.path() / "tls";
  fs::create_directories(tls);
  std::string d = tls.string();
  std::string make =
      "cd " + d + " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out req.csr"
      " && printf 'subjectAltName=IP:127.0.0.1' > ext.cnf"
      " && openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out cert.pem";
  ASSERT_EQ(std::system((make + " > /dev/null 2>&1").c_str()), 0);
  Server s(fns.path(), {}, "[jobs]\ncallback_ca_file = \"" + d + "/ca.pem\"\n");
  auto secret = read_file(s.data_dir() / "webhook_secret");
  while (!secret.empty() && secret.back() == '\n') secret.pop_back();
  Child receiver({"node", (fs::path(source_dir()) / "examples/webhook-verify/receiver.js").string(), "0"},
                 {"WEBHOOK_SECRET=" + secret, "TLS_CERT=" + d + "/cert.pem", "TLS_KEY=" + d + "/key.pem"});
  const int port = listening_port(receiver);
  ASSERT_NE(port, 0) << "the receiver did not start";
  auto id = enqueue(s, "work", "{}", {{"Aifn-Callback-Url", "https://127.0.0.1:" + std::to_string(port) + "/hook"}});
  ASSERT_TRUE(eventually([&] {
    auto j = job(s, id);
    return j.as_object().contains("callback") && str(j.at("callback"), "state") == "delivered";
  }, 30s)) << job(s, id) << s.log();
  bool verified = false;
  for (auto& l : receiver.lines())
    if (l.as_object().contains("job") && l.at("verified").as_bool()) verified = str(l, "job") == id;
  EXPECT_TRUE(verified);

  // A receiver whose certificate this server does not trust gets nothing.
  Server strict(fns.path());
  auto id2 = enqueue(strict, "work", "{}",
                     {{"Aifn-Callback-Url", "https://127.0.0.1:" + std::to_string(port) + "/hook"}});
  ASSERT_TRUE(eventually([&] {
    auto j = job(strict, id2);
    return j.as_object().contains("callback") && j.at("callback").at("attempts").as_int64() >= 1;
  }, 30s)) << job(strict, id2);
  EXPECT_NE(str(job(strict, id2).at("callback"), "state"), "delivered");
}

TEST(Jobs, WrongSecretIsRefusedByTheReceiver) {
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path());
  Child receiver({"node", (fs::path(source_dir()) / "examples/webhook-verify/receiver.js").string(), "0"},
                 {"WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
  const int port = listening_port(receiver);
  ASSERT_NE(port, 0) << "the receiver did not start";
  enqueue(s, "work", "{}", {{"Aifn-Callback-Url", "http://127.0.0.1:" + std::to_string(port) + "/hook"}});
  EXPECT_TRUE(eventually([&] {
    for (auto& l : receiver.lines())
      if (l.as_object().contains("verified") && !l.at("verified").as_bool()) return true;
    return false;
  }, 20s));
}

TEST(Jobs, SyncCallsKeepAnInstanceWhileJobsFlood) {
  // max_instances = 2: jobs may use one instance; the other serves calls.
  FunctionsDir fns{{"work", "max_instances = 2\nqueue_timeout = \"20s\"\n"}};
  Server s(fns.path());
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(enqueue(s, "work", R"({"sleep_ms": 1500})"));
  ASSERT_TRUE(eventually([&] { return str(job(s, ids[0]), "status") == "running"; }, 20s));
  auto started = std::chrono::steady_clock::now();
  auto r = s.post("/fn/work", R"({"sync": true})");
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_LT(took, 1400ms) << "the sync call did not wait for a job to finish";
  auto running = json(s.get("/jobs?function=work&status=running").body);
  EXPECT_LE(running.at("jobs").as_array().size(), 1u) << "jobs use at most max_instances - 1 instances";
  EXPECT_LE(instance_count(s, "work"), 2u);
}

TEST(Jobs, KillNineWhileJobsRunLosesNoJob) {
  FunctionsDir fns{{"work", "max_instances = 4\n[retry]\nmax_attempts = 3\nbackoff = \"50ms\"\n"}};
  auto data = fns.path() / "data";
  auto runs = fns.path() / "work" / "runs";
  constexpr int kJobs = 200;
  std::vector<std::string> id_of;  // job id by tag number
  std::set<std::string> committed;  // succeeded, as the server said just before the kill
  {
    Server s(fns.path(), {"--data", data.string()});
    for (int i = 0; i < kJobs; ++i)
      id_of.push_back(enqueue(s, "work", R"({"sleep_ms": 20, "count_file": ")" + runs.string() +
                                             R"(", "tag": "j)" + std::to_string(i) + "\"}"));
    ASSERT_EQ(std::set<std::string>(id_of.begin(), id_of.end()).size(), static_cast<std::size_t>(kJobs));
    // Kill once some jobs are done and others are running or queued.
    ASSERT_TRUE(eventually([&] { return count_lines(read_file(runs), "") >= 30; }, 30s));
    const auto done = json(s.get("/jobs?function=work&status=succeeded&limit=1000").body);
    for (auto& j : done.at("jobs").as_array()) committed.insert(str(j, "id"));
    auto instances = children_of(s.pid());
    ::kill(s.pid(), SIGKILL);
    s.stop();
    // Its instances lose their Runtime API; kill them as a supervisor would.
    for (int pid : instances) ::kill(-pid, SIGKILL);
  }
  auto before = read_file(runs);
  Server s(fns.path(), {"--data", data.string()});
  std::map<std::string, int> status;
  ASSERT_TRUE(eventually([&] {
    auto list = json(s.get("/jobs?function=work&limit=1000").body).at("jobs").as_array();
    status.clear();
    for (auto& j : list) ++status[str(j, "status")];
    return list.size() == static_cast<std::size_t>(kJobs) && status["succeeded"] == kJobs;
  }, 90s)) << "succeeded=" << status["succeeded"] << " queued=" << status["queued"]
           << " running=" << status["running"] << " failed=" << status["failed"];
  // At-least-once: every job ran; only those whose result had not committed
  // (running at the kill, or finished with the commit still in flight: a slot
  // is reused while its result commits) ran again.
  auto after = read_file(runs);
  int reruns = 0;
  for (int i = 0; i < kJobs; ++i) {
    int n = count_lines(after, "j" + std::to_string(i));
    EXPECT_GE(n, 1) << "job j" << i << " never ran";
    if (committed.count(id_of[size_t(i)]) != 0) {
      EXPECT_EQ(n, 1) << "job j" << i << " ran again after its result was committed";
    }
    reruns += n - 1;
  }
  EXPECT_FALSE(committed.empty());
  EXPECT_LT(count_lines(before, ""), kJobs) << "the kill came while jobs were still queued";
  std::cout << "[ info ] kill -9: " << count_lines(before, "") << " runs before, " << committed.size()
            << " committed; reruns after restart: " << reruns << "\n";
}

TEST(Jobs, SigtermLetsRunningJobsFinishAndGivesTheRestBack) {
  // Two job slots (max_instances 3 leaves one instance to sync calls).
  FunctionsDir fns{{"work", "max_instances = 3\njob_timeout = \"1m\"\n"}};
  auto data = fns.path() / "data";
  auto runs = fns.path() / "work" / "runs";
  const std::string conf = "[limits]\nshutdown_grace = \"4s\"\n";
  auto body = [&](int ms, const std::string& tag) {
    return R"({"sleep_ms": )" + std::to_string(ms) + R"(, "count_file": ")" + runs.string() + R"(", "tag": ")" +
           tag + "\"}";
  };
  std::string quick, slow;
  std::vector<std::string> queued;
  {
    Server s(fns.path(), {"--data", data.string()}, conf);
    quick = enqueue(s, "work", body(1500, "quick"));  // ends within the grace period
    slow = enqueue(s, "work", body(30000, "slow"));   // does not
    ASSERT_TRUE(eventually([&] { return count_lines(read_file(runs), "") == 2; }, 20s)) << s.log();
    for (int i = 0; i < 3; ++i) queued.push_back(enqueue(s, "work", body(10, "q" + std::to_string(i))));
    auto t0 = std::chrono::steady_clock::now();
    int status = s.stop();
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << s.log();
    EXPECT_GE(took, 3500ms) << "the slow job had the whole grace period";
    EXPECT_LT(took, 10s);
    EXPECT_EQ(count_lines(read_file(runs), ""), 2) << "no job started after SIGTERM";
    EXPECT_NE(s.log().find("event=jobs_released"), std::string::npos) << s.log();
  }
  // After the restart: the quick job's result was committed during the
  // grace period and is not run again; the cut-off one and the queued ones run.
  Server s(fns.path(), {"--data", data.string()}, conf);
  auto q = job(s, quick);
  EXPECT_EQ(str(q, "status"), "succeeded") << q;
  for (auto& id : queued) EXPECT_EQ(str(wait_final(s, id), "status"), "succeeded");
  ASSERT_TRUE(eventually([&] { return count_lines(read_file(runs), "slow") == 2; }, 20s)) << "the slow job runs again";
  EXPECT_EQ(count_lines(read_file(runs), "quick"), 1);
  auto r = http::fetch({.method = "DELETE", .url = s.url("/jobs/" + slow)});
  EXPECT_EQ(r->status, 200);
}

TEST(Jobs, RetentionDeletesFinishedJobsButNotUndeliveredCallbacks) {
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path(), {}, "[jobs]\nretention = \"1s\"\n");
  auto done = enqueue(s, "work", "{}");
  // Nothing listens on port 9: the callback stays pending, retried with backoff.
  auto waiting = enqueue(s, "work", "{}", {{"Aifn-Callback-Url", "http://127.0.0.1:9/hook"}});
  ASSERT_EQ(str(wait_final(s, done), "status"), "succeeded");
  ASSERT_EQ(str(wait_final(s, waiting), "status"), "succeeded");
  EXPECT_TRUE(eventually([&] { return s.get("/jobs/" + done).status == 404; }, 10s)) << s.log();
  // The purge logs after its delete commits, so the line may trail the 404.
  EXPECT_TRUE(eventually([&] { return s.log().find("event=jobs_purged count=1") != std::string::npos; }, 5s))
      << s.log();
  auto kept = s.get("/jobs/" + waiting);
  ASSERT_EQ(kept.status, 200) << "its callback is still to be delivered";
  EXPECT_EQ(str(json(kept.body).at("callback"), "state"), "pending") << kept.body;
}

TEST(Jobs, OnTimeoutJobHandsTheSameExecutionOver) {
  FunctionsDir fns{{"long", "timeout = \"1s\"\njob_timeout = \"1m\"\non_timeout = \"job\"\n"}};
  Server s(fns.path());
  auto runs = fns.path() / "long" / "runs";
  auto started = std::chrono::steady_clock::now();
  auto r = s.post("/fn/long", R"({"sleep_ms": 2500, "count_file": ")" + runs.string() + "\"}");
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r.status, 202) << r.body << s.log();
  EXPECT_LT(took, 2500ms) << "the caller got its answer at the timeout, not at the end";
  auto id = str(json(r.body), "id");
  EXPECT_EQ(r.header("location"), "/jobs/" + id);
  EXPECT_EQ(str(json(r.body), "status"), "running");
  auto j = wait_final(s, id);
  ASSERT_EQ(str(j, "status"), "succeeded") << j;
  EXPECT_EQ(j.at("result").at("event").at("sleep_ms").as_int64(), 2500);
  EXPECT_GT(j.at("result").at("remaining_ms").as_int64(), 50'000) << "the runtime was told job_timeout";
  EXPECT_EQ(count_lines(read_file(runs), "run"), 1) << "one execution: nothing restarted";
}

TEST(Jobs, OnTimeoutFailStillAnswers504) {
  FunctionsDir fns{{"long", "timeout = \"500ms\"\n"}};
  Server s(fns.path());
  auto r = s.post("/fn/long", R"({"sleep_ms": 3000})");
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(json(s.get("/jobs").body).at("jobs").as_array().size(), 0u);
}

TEST(Jobs, OnDisconnectJobKeepsTheCallAsAJob) {
  FunctionsDir fns{{"long", "on_disconnect = \"job\"\n"}};
  Server s(fns.path());
  auto runs = fns.path() / "long" / "runs";
  auto r = http::fetch({.method = "POST", .url = s.url("/fn/long"),
                        .body = R"({"sleep_ms": 1500, "count_file": ")" + runs.string() + "\"}", .timeout = 500ms});
  EXPECT_FALSE(r) << "the client gave up";
  std::string id;
  ASSERT_TRUE(eventually([&] {
    auto jobs = json(s.get("/jobs?function=long").body);
    if (jobs.at("jobs").as_array().empty()) return false;
    id = str(jobs.at("jobs").as_array()[0], "id");
    return true;
  }, 10s)) << s.log();
  auto j = wait_final(s, id);
  EXPECT_EQ(str(j, "status"), "succeeded") << j;
  EXPECT_EQ(count_lines(read_file(runs), "run"), 1);
}

TEST(Jobs, OnDisconnectFinishCompletesTheCall) {
  FunctionsDir fns{{"long", "on_disconnect = \"finish\"\n"}, {"cut", ""}};
  Server s(fns.path());
  for (const char* fn : {"long", "cut"}) {
    auto r = http::fetch({.method = "POST", .url = s.url(std::string("/fn/") + fn),
                          .body = R"({"sleep_ms": 1200})", .timeout = 400ms});
    EXPECT_FALSE(r);
  }
  // finish: the call ran to its end (200); cancel (the default): cut off (499).
  ASSERT_TRUE(eventually([&] {
    auto u = json(s.get("/admin/usage?group_by=function").body).at("rows").as_array();
    return u.size() == 2 && u[0].at("calls").as_int64() == 1 && u[1].at("calls").as_int64() == 1;
  }, 10s));
  auto u = json(s.get("/admin/usage?group_by=function").body);
  for (auto& row : u.at("rows").as_array()) {
    auto expected_errors = str(row, "function") == "long" ? 0 : 1;
    EXPECT_EQ(row.at("errors").as_int64(), expected_errors) << row;
  }
}

TEST(Jobs, AJobRunCanUseItsInvocationTokenWithTheModelGateway) {
  FunctionsDir fns;
  write_function(fns.path() / "asker", "name = \"asker\"\nruntime = \"node\"\nhandler = \"index.handler\"\n",
                 {{"index.js",
                   "exports.handler = async (e, ctx) => {\n"
                   "  const r = await fetch(ctx.aifn.modelsUrl + '/models',\n"
                   "                        {headers: {Authorization: 'Bearer ' + ctx.aifn.token}});\n"
                   "  return {status: r.status};\n"
                   "};\n"}});
  Server s(fns.path());
  auto j = wait_final(s, enqueue(s, "asker", "{}"));
  ASSERT_EQ(str(j, "status"), "succeeded") << j;
  EXPECT_EQ(j.at("result").at("status").as_int64(), 200) << "the job's token is accepted while it runs";
}

TEST(Jobs, AKeySeesOnlyJobsOfFunctionsItMayInvoke) {
  FunctionsDir fns{{"mine", ""}, {"theirs", ""}};
  Server s(fns.path());
  auto as = [&](const std::string& method, const std::string& path, const std::string& key) {
    http::ClientRequest r{.method = method, .url = s.url(path), .body = method == "POST" ? "{}" : ""};
    if (!key.empty()) r.headers["Authorization"] = "Bearer " + key;
    auto res = http::fetch(r);
    if (!res) throw std::runtime_error(method + " " + path + ": " + res.error().message);
    return *res;
  };
  auto made = s.post("/admin/keys", R"({"name":"m","scopes":["invoke:mine"]})");  // open until the first key
  ASSERT_EQ(made.status, 201) << made.body;
  auto key = str(json(made.body), "key");
  std::string admin;
  std::ifstream(s.data_dir() / "admin.key") >> admin;
  auto theirs = as("POST", "/fn/theirs/jobs", admin);
  ASSERT_EQ(theirs.status, 202) << theirs.body;
  auto their_id = str(json(theirs.body), "id");
  auto mine = as("POST", "/fn/mine/jobs", key);
  ASSERT_EQ(mine.status, 202) << mine.body;
  EXPECT_EQ(as("POST", "/fn/theirs/jobs", key).status, 403);
  EXPECT_EQ(as("GET", "/jobs/" + their_id, key).status, 404) << "another function's job is not shown";
  EXPECT_EQ(as("DELETE", "/jobs/" + their_id, key).status, 404);
  EXPECT_EQ(as("GET", "/jobs/" + their_id, admin).status, 200);
  auto listed = json(as("GET", "/jobs", key).body).at("jobs").as_array();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(str(listed[0], "function"), "mine");
  EXPECT_EQ(as("GET", "/jobs", "").status, 401);
}

// Runs `aifn ARGS` against the server; returns (exit code, stdout + stderr).
std::pair<int, std::string> cli(Server& s, const std::string& args) {
  std::string cmd = "AIFN_SERVER=http://127.0.0.1:" + std::to_string(s.port()) + " " + binary() + " " + args + " 2>&1";
  std::string out;
  int rc = -1;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    rc = WEXITSTATUS(::pclose(p));
  }
  return {rc, out};
}

TEST(Jobs, CliInvokesAsAJobAndManagesJobs) {
  FunctionsDir fns{{"work", "[retry]\nmax_attempts = 1\n"}};
  Server s(fns.path());
  auto [rc, out] = cli(s, "invoke work --job --wait -d '{\"n\": 5}'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(json(out).at("event").at("n").as_int64(), 5);
  auto [frc, fout] = cli(s, "invoke work --job --wait -d '{\"throw\": \"nope\"}'");
  EXPECT_EQ(frc, 1);
  EXPECT_NE(fout.find("failed: function_error: nope"), std::string::npos) << fout;
  auto [qrc, id] = cli(s, "invoke work --job -d '{\"sleep_ms\": 30000}'");
  ASSERT_EQ(qrc, 0) << id;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  ASSERT_EQ(id.rfind("job_", 0), 0u) << id;
  auto [lrc, list] = cli(s, "jobs list --function work");
  EXPECT_EQ(lrc, 0);
  EXPECT_NE(list.find(id), std::string::npos) << list;
  EXPECT_NE(list.find("failed"), std::string::npos) << list;
  auto [crc, cancelled] = cli(s, "jobs cancel " + id);
  EXPECT_EQ(crc, 0) << cancelled;
  auto [grc, got] = cli(s, "jobs get " + id);
  EXPECT_EQ(grc, 0);
  EXPECT_EQ(str(json(got), "status"), "cancelled");
  auto [xrc, missing] = cli(s, "jobs get job_missing");
  EXPECT_EQ(xrc, 1);
  EXPECT_NE(missing.find("404 not_found"), std::string::npos) << missing;
}

TEST(Jobs, OfficialAwsSdkInvokesThroughTheLambdaApi) {
  auto sdk = fs::path(source_dir()) / "tests/node/node_modules/@aws-sdk/client-lambda";
  if (!fs::exists(sdk)) GTEST_SKIP() << "@aws-sdk/client-lambda did not install (npm)";
  FunctionsDir fns{{"work", ""}};
  Server s(fns.path());
  std::string cmd = "node " + (fs::path(source_dir()) / "tests/node/lambda_invoke.mjs").string() +
                    " http://127.0.0.1:" + std::to_string(s.port()) + " work 2>/dev/null";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  std::map<std::string, boost::json::value> by_name;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    boost::system::error_code ec;
    auto v = boost::json::parse(l, ec);
    if (!ec && v.is_object() && v.as_object().contains("name")) by_name[str(v, "name")] = v;
  }
  ASSERT_EQ(by_name.size(), 4u) << out;
  EXPECT_EQ(by_name["ok"].at("status").as_int64(), 200);
  EXPECT_EQ(json(str(by_name["ok"], "payload")).at("event").at("name").as_string(), "Ada");
  EXPECT_EQ(by_name["error"].at("status").as_int64(), 200);
  EXPECT_EQ(str(by_name["error"], "functionError"), "Unhandled");
  EXPECT_EQ(json(str(by_name["error"], "payload")).at("errorMessage").as_string(), "bad input");
  EXPECT_EQ(by_name["event"].at("status").as_int64(), 202);
  EXPECT_EQ(by_name["dryrun"].at("status").as_int64(), 204);
  // The Event invocation became a job and ran.
  ASSERT_TRUE(eventually([&] {
    return json(s.get("/jobs?function=work&status=succeeded").body).at("jobs").as_array().size() == 1;
  }, 20s));
}

}  // namespace
}  // namespace aifn::e2e
