// Instances over their life: scale to zero, min_instances, deadlines,
// crashes, memory limits, spreading load, cancellation and shutdown.
#include <sys/socket.h>

#include <future>
#include <set>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "fixtures.h"

namespace aifn::e2e {
namespace {

using namespace std::chrono_literals;

int instance_pid(Server& s, const std::string& fn) {
  auto arr = json(s.get("/admin/functions/" + fn + "/instances").body).at("instances").as_array();
  return arr.empty() ? -1 : static_cast<int>(arr[0].at("pid").as_int64());
}

TEST(Lifecycle, ScalesToZeroAfterIdleTimeout) {
  FunctionsDir fns{{"idle", "idle_timeout = \"300ms\"\n"}};
  Server s(fns.path());
  auto r = s.post("/fn/idle", "{}");
  int pid = json_int(r.body, "pid");
  EXPECT_EQ(instance_count(s, "idle"), 1u);
  EXPECT_TRUE(eventually([&] { return instance_count(s, "idle") == 0; }, 3s));
  EXPECT_TRUE(eventually([&] { return !process_alive(pid); }, 2s));
  // The next call is a cold start again.
  EXPECT_EQ(s.post("/fn/idle", "{}").header("x-aifn-cold-start"), "true");
}

TEST(Lifecycle, MinInstancesAreStartedAtBootAndKept) {
  FunctionsDir fns{{"warm", "min_instances = 1\nidle_timeout = \"200ms\"\n"}};
  Server s(fns.path());
  ASSERT_TRUE(eventually([&] { return instance_count(s, "warm") == 1; }, 5s));
  // Give it time to become ready, then idle well past idle_timeout.
  std::this_thread::sleep_for(900ms);
  EXPECT_EQ(instance_count(s, "warm"), 1u);
  auto r = s.post("/fn/warm", "{}");
  EXPECT_EQ(r.header("x-aifn-cold-start"), "false") << r.body;
}

TEST(Lifecycle, DeadlineKillsTheWholeProcessGroupWith504) {
  FunctionsDir fns{{"deadline", "timeout = \"500ms\"\n"}};
  Server s(fns.path());
  s.post("/fn/deadline", "{}");  // warm: time the deadline, not the boot
  int pid = instance_pid(s, "deadline");
  auto pidfile = fns.path() / "deadline" / "child.pid";  // in the function's folder: instances have their own /tmp
  auto t0 = std::chrono::steady_clock::now();
  auto r = s.post("/fn/deadline", R"({"sleep_ms":10000,"child_pid_file":")" + pidfile.string() + "\"}");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(error_type(r.body), "timeout");
  EXPECT_GE(took, 490ms);
  EXPECT_LT(took, 900ms);  // deadline plus a small margin
  std::ifstream f(pidfile);
  int child = 0;
  f >> child;
  ASSERT_GT(child, 0);
  EXPECT_TRUE(eventually([&] { return !process_alive(pid) && !process_alive(child); }, 2s));
  // The next call gets a fresh instance.
  auto next = s.post("/fn/deadline", "{}");
  EXPECT_EQ(next.status, 200);
  EXPECT_NE(json_int(next.body, "pid"), pid);
}

TEST(Lifecycle, CrashGives502AndTheNextCallWorks) {
  FunctionsDir fns{{"crashy", ""}};
  Server s(fns.path());
  auto r = s.post("/fn/crashy", R"({"crash":true})");
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(error_type(r.body), "instance_crashed");
  auto ok = s.post("/fn/crashy", "{}");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("x-aifn-cold-start"), "true");
  EXPECT_NE(s.log().find("event=instance_exit"), std::string::npos);
}

TEST(Lifecycle, MemoryLimitGivesOutOfMemory) {
  FunctionsDir fns{{"hungry", "memory = \"96MiB\"\n"}};
  Server s(fns.path());
  if (s.log().find("mode=cgroup") == std::string::npos)
    GTEST_SKIP() << "no writable memory cgroup on this machine; the rlimit fallback does not cover Node";
  auto r = s.post("/fn/hungry", R"({"alloc_mb":400})");
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(error_type(r.body), "out_of_memory") << r.body;
  EXPECT_EQ(s.post("/fn/hungry", R"({"alloc_mb":10})").status, 200);
}

TEST(Lifecycle, ConcurrentCallsSpreadOverUpToMaxInstances) {
  FunctionsDir fns{{"spread", "max_instances = 3\nqueue_timeout = \"10s\"\n"}};
  Server s(fns.path());
  std::vector<std::future<http::ClientResponse>> calls;
  for (int i = 0; i < 6; ++i)
    calls.push_back(std::async(std::launch::async, [&] { return s.post("/fn/spread", R"({"sleep_ms":400})"); }));
  std::set<int> pids;
  for (auto& c : calls) {
    auto r = c.get();
    ASSERT_EQ(r.status, 200) << r.body;
    pids.insert(json_int(r.body, "pid"));
  }
  EXPECT_EQ(pids.size(), 3u);
  EXPECT_EQ(instance_count(s, "spread"), 3u);
}

TEST(Lifecycle, SharedInstanceKeepsCallsWithTheSameRequestIdApart) {
  FunctionsDir fns{{"shared", "concurrency = 2\nmax_instances = 1\n"}};
  Server s(fns.path());
  auto call = [&](int ms) {
    return s.post("/fn/shared", R"({"sleep_ms":)" + std::to_string(ms) + "}", {{"X-Request-Id", "same-id"}});
  };
  auto a = std::async(std::launch::async, call, 600);
  auto b = std::async(std::launch::async, call, 300);
  auto ra = a.get(), rb = b.get();
  ASSERT_EQ(ra.status, 200) << ra.body;
  ASSERT_EQ(rb.status, 200) << rb.body;
  EXPECT_EQ(json_int(ra.body, "pid"), json_int(rb.body, "pid"));
  EXPECT_EQ(json(ra.body).at("event").at("sleep_ms").as_int64(), 600);  // each got its own answer
  EXPECT_EQ(json(rb.body).at("event").at("sleep_ms").as_int64(), 300);
}

TEST(Lifecycle, ATimeoutOnASharedInstanceTellsTheOtherCallWhy) {
  FunctionsDir fns{{"pair", "concurrency = 2\nmax_instances = 1\ntimeout = \"1s\"\n"}};
  Server s(fns.path());
  ASSERT_EQ(s.post("/fn/pair", "{}").status, 200);  // warm, so both calls start when sent
  auto slow = std::async(std::launch::async, [&] { return s.post("/fn/pair", R"({"sleep_ms":5000})"); });
  std::this_thread::sleep_for(200ms);
  auto other = std::async(std::launch::async, [&] { return s.post("/fn/pair", R"({"sleep_ms":3000})"); });
  auto rs = slow.get(), ro = other.get();
  EXPECT_EQ(rs.status, 504) << rs.body;
  EXPECT_EQ(ro.status, 502) << ro.body;
  EXPECT_EQ(error_type(ro.body), "instance_crashed");
  EXPECT_NE(ro.body.find("another call"), std::string::npos) << ro.body;
}

// Sends a call to `fn` and closes the connection after `stay`, mid-call.
void call_and_leave(Server& s, const std::string& fn, const std::string& body, std::chrono::milliseconds stay) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket sock(io);
  sock.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(s.port())});
  std::string req = "POST /fn/" + fn + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  boost::asio::write(sock, boost::asio::buffer(req));
  std::this_thread::sleep_for(stay);
}

TEST(Lifecycle, ClientDisconnectCancelsTheCall) {
  FunctionsDir fns{{"leaver", ""}};
  Server s(fns.path());
  s.post("/fn/leaver", "{}");
  int pid = instance_pid(s, "leaver");
  call_and_leave(s, "leaver", R"({"sleep_ms":5000})", 300ms);
  EXPECT_TRUE(eventually([&] { return !process_alive(pid); }, 3s));
  auto usage = json(s.get("/admin/usage").body).at("rows").as_array();
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].at("calls").as_int64(), 2);
  EXPECT_EQ(usage[0].at("errors").as_int64(), 1);
  EXPECT_GE(usage[0].at("billed_ms").as_int64(), 250);  // what ran is billed
}

// An instance stopped because its call ended early (deadline, client gone)
// is not handed to a call waiting for one: that call gets a fresh instance.
TEST(Lifecycle, ACallQueuedBehindATimedOutOneGetsAFreshInstance) {
  FunctionsDir fns{{"single", "max_instances = 1\ntimeout = \"800ms\"\nqueue_timeout = \"10s\"\n"}};
  Server s(fns.path());
  ASSERT_EQ(s.post("/fn/single", "{}").status, 200);  // warm
  int pid = instance_pid(s, "single");
  auto slow = std::async(std::launch::async, [&] { return s.post("/fn/single", R"({"sleep_ms":5000})"); });
  std::this_thread::sleep_for(300ms);
  auto queued = s.post("/fn/single", "{}");
  EXPECT_EQ(slow.get().status, 504);
  ASSERT_EQ(queued.status, 200) << queued.body;
  EXPECT_NE(json_int(queued.body, "pid"), pid);
  EXPECT_EQ(queued.header("x-aifn-cold-start"), "true");
}

TEST(Lifecycle, ACallQueuedBehindACancelledOneGetsAFreshInstance) {
  FunctionsDir fns{{"single", "max_instances = 1\nqueue_timeout = \"10s\"\n"}};
  Server s(fns.path());
  ASSERT_EQ(s.post("/fn/single", "{}").status, 200);  // warm
  int pid = instance_pid(s, "single");
  auto queued = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(150ms);  // behind the call that leaves
    return s.post("/fn/single", "{}");
  });
  call_and_leave(s, "single", R"({"sleep_ms":5000})", 400ms);
  auto r = queued.get();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(json_int(r.body, "pid"), pid);
}

// A caller who leaves while its call waits for an instance takes the call out
// of the queue: when the busy instance then dies, no instance is started for
// it (before: a cold start for the departed call).
TEST(Lifecycle, ACallerWhoLeavesWhileQueuedStartsNoInstance) {
  FunctionsDir fns{{"single", "max_instances = 1\nqueue_timeout = \"10s\"\n"}};
  Server s(fns.path());
  auto dying = std::async(std::launch::async, [&] { return s.post("/fn/single", R"({"sleep_ms":1200,"crash":true})"); });
  ASSERT_TRUE(eventually([&] { return instance_count(s, "single") == 1; }, 5s));
  call_and_leave(s, "single", "{}", 300ms);  // queued behind the dying call, then gone
  // Recorded at once, not when an instance frees up: it never ran.
  ASSERT_TRUE(eventually([&] {
    auto rows = json(s.get("/admin/usage").body).at("rows").as_array();
    return !rows.empty() && rows[0].at("errors").as_int64() == 1;
  }, 3s));
  EXPECT_EQ(dying.get().status, 502);
  EXPECT_TRUE(eventually([&] { return instance_count(s, "single") == 0; }, 3s));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(instance_count(s, "single"), 0u);
  auto rows = json(s.get("/admin/usage").body).at("rows").as_array();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("calls").as_int64(), 2);
  EXPECT_EQ(rows[0].at("cold_starts").as_int64(), 1);  // the dying call's only
  EXPECT_EQ(s.post("/fn/single", "{}").status, 200);
}

TEST(Lifecycle, SigtermFinishesCallsInFlightAndLeavesNoChild) {
  FunctionsDir fns{{"busy", "min_instances = 2\n"}};
  Server s(fns.path());
  ASSERT_TRUE(eventually([&] { return children_of(s.pid()).size() == 2; }, 5s));
  auto kids = children_of(s.pid());
  auto call = std::async(std::launch::async, [&] { return s.post("/fn/busy", R"({"sleep_ms":700})"); });
  std::this_thread::sleep_for(200ms);
  int status = s.stop();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(call.get().status, 200);
  for (int k : kids) EXPECT_FALSE(process_alive(k)) << k;
}

}  // namespace
}  // namespace aifn::e2e
