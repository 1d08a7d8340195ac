// Deploys, usage records, logs and the CLI against a real server.
#include <future>
#include <mutex>

#include "fixtures.h"
#include "functions/archive.h"

namespace aifn::e2e {
namespace {

using namespace std::chrono_literals;

TEST(Admin, UsageRowsMatchTheCallsMade) {
  FunctionsDir fns{{"metered", "memory = \"128MiB\"\n"}, {"other", ""}};
  Server s(fns.path());
  for (int i = 0; i < 5; ++i) s.post("/fn/metered", "{}");
  s.post("/fn/metered", R"({"throw":"x"})");
  s.post("/fn/metered", "{bad json");
  s.post("/fn/other", "{}");
  auto rows = json(s.get("/admin/usage?group_by=function").body).at("rows").as_array();
  ASSERT_EQ(rows.size(), 2u);
  auto& m = rows[0].at("function").as_string() == "metered" ? rows[0] : rows[1];
  EXPECT_EQ(m.at("calls").as_int64(), 7);
  EXPECT_EQ(m.at("errors").as_int64(), 2);
  EXPECT_EQ(m.at("cold_starts").as_int64(), 1);
  EXPECT_GT(m.at("gb_seconds").as_double(), 0);
  EXPECT_GT(m.at("cost").as_double(), 0);
  auto cli = run_cli("usage --server " + s.url(""));
  EXPECT_NE(cli.find("metered"), std::string::npos) << cli;
}

TEST(Admin, CostSizesAlwaysOnCapacityFromThePeakOfRecordedCalls) {
  FunctionsDir fns{{"sized", "memory = \"128MiB\"\n"}};
  Server s(fns.path());
  // Two calls overlap (peak 2), then one alone.
  auto a = std::async(std::launch::async, [&] { return s.post("/fn/sized", R"({"sleep_ms":600})"); });
  auto b = std::async(std::launch::async, [&] { return s.post("/fn/sized", R"({"sleep_ms":600})"); });
  ASSERT_EQ(a.get().status, 200);
  ASSERT_EQ(b.get().status, 200);
  ASSERT_EQ(s.post("/fn/sized", "{}").status, 200);
  auto cost = json(s.get("/admin/cost").body);
  auto rows = cost.at("rows").as_array();
  ASSERT_EQ(rows.size(), 1u) << cost;
  const auto& r = rows[0];
  EXPECT_EQ(r.at("function").as_string(), "sized");
  EXPECT_EQ(r.at("calls").as_int64(), 3);
  EXPECT_EQ(r.at("peak_concurrency").as_int64(), 2);
  EXPECT_EQ(r.at("memory_mb").as_int64(), 128);
  const double busy = r.at("utilization").as_double();
  EXPECT_GT(busy, 0.0);
  EXPECT_LE(busy, 1.0);
  EXPECT_GT(r.at("serverless_cost").as_double(), 0.0);
  EXPECT_GT(r.at("always_on_cost").as_double(), 0.0);
  EXPECT_EQ(s.get("/admin/cost?since=oops").status, 400);
  auto cli = run_cli("cost --server " + s.url(""));
  EXPECT_NE(cli.find("sized"), std::string::npos) << cli;
  EXPECT_NE(cli.find("cheaper"), std::string::npos) << cli;
}

TEST(Admin, DeployInstallsANewVersionWhileCallsFinishOnTheOld) {
  FunctionsDir fns{{"versioned", ""}};
  Server s(fns.path());
  auto old_call = std::async(std::launch::async, [&] { return s.post("/fn/versioned", R"({"sleep_ms":800})"); });
  ASSERT_TRUE(eventually([&] { return instance_count(s, "versioned") == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  // Version 2 answers differently.
  auto v2 = fns.path() / "v2";
  write_function(v2, "name = \"versioned\"\nruntime = \"node\"\nhandler = \"index.handler\"\n",
                 {{"index.js", "exports.handler = async () => ({version: 2});"}});
  auto out = run_cli("deploy " + v2.string() + " --server " + s.url(""));
  EXPECT_NE(out.find("deployed versioned version 2"), std::string::npos) << out;
  auto fresh = s.post("/fn/versioned", "{}");
  EXPECT_EQ(fresh.body, R"({"version":2})");
  auto old = old_call.get();
  EXPECT_EQ(old.status, 200);
  EXPECT_TRUE(json(old.body).as_object().contains("pid")) << old.body;  // answered by version 1
  auto info = json(s.get("/admin/functions/versioned").body);
  EXPECT_EQ(info.at("version").as_string(), "2");
}

TEST(Admin, CallsWaitingForAnInstanceMoveToTheNewVersion) {
  FunctionsDir fns{{"busy", "max_instances = 1\nqueue_timeout = \"20s\"\n"}};
  Server s(fns.path());
  auto running = std::async(std::launch::async, [&] { return s.post("/fn/busy", R"({"sleep_ms":3000})"); });
  ASSERT_TRUE(eventually([&] { return instance_count(s, "busy") == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  auto waiting = std::async(std::launch::async, [&] { return s.post("/fn/busy", "{}"); });
  std::this_thread::sleep_for(300ms);  // queued behind the running call
  auto v2 = fns.path() / "v2";
  write_function(v2, "name = \"busy\"\nruntime = \"node\"\nhandler = \"index.handler\"\n",
                 {{"index.js", "exports.handler = async () => ({version: 2});"}});
  ASSERT_NE(run_cli("deploy " + v2.string() + " --server " + s.url("")).find("version 2"), std::string::npos);
  ASSERT_EQ(waiting.wait_for(2500ms), std::future_status::ready);  // not held until the old call ends
  auto w = waiting.get();
  EXPECT_EQ(w.status, 200) << w.body;
  EXPECT_EQ(w.body, R"({"version":2})");
  EXPECT_EQ(running.get().status, 200);
}

// A replaced version's instances exit after its pool has been dropped by the
// registry; each must still find its pool then (a use-after-free before: the
// server answered until an exit landed on freed memory). Run this test
// against the sanitized server (AIFN_TEST_BINARY, `make test` does) to see
// such a fault at once rather than by luck.
TEST(Admin, RedeployingWhileInstancesAreWarmKeepsTheServerUp) {
  FunctionsDir fns{{"warm", "min_instances = 2\n"}};
  Server s(fns.path());
  ASSERT_TRUE(eventually([&] { return instance_count(s, "warm") == 2; }, 10s));
  for (int v = 2; v <= 4; ++v) {
    // One call in flight (its instance exits when it ends) and one idle
    // instance (killed at once) at every deploy.
    auto busy = std::async(std::launch::async, [&] { return s.post("/fn/warm", R"({"sleep_ms":400})"); });
    std::this_thread::sleep_for(150ms);
    auto dir = fns.path() / ("v" + std::to_string(v));
    write_function(dir, "name = \"warm\"\nruntime = \"node\"\nhandler = \"index.handler\"\nmin_instances = 2\n",
                   {{"index.js", "exports.handler = async () => ({version: " + std::to_string(v) + "});"}});
    auto out = run_cli("deploy " + dir.string() + " --server " + s.url(""));
    ASSERT_NE(out.find("version " + std::to_string(v)), std::string::npos) << out;
    EXPECT_EQ(busy.get().status, 200);
    auto now = s.post("/fn/warm", "{}");
    EXPECT_EQ(now.status, 200);
    EXPECT_EQ(now.body, "{\"version\":" + std::to_string(v) + "}");
  }
  // Every replaced instance is gone and the server still stops cleanly.
  auto only_v4 = [&] {
    auto list = json(s.get("/admin/functions/warm/instances").body).at("instances").as_array();
    return std::all_of(list.begin(), list.end(), [](auto& i) { return i.at("version").as_string() == "4"; });
  };
  EXPECT_TRUE(eventually(only_v4, 10s)) << s.get("/admin/functions/warm/instances").body;
  EXPECT_EQ(s.get("/healthz").status, 200);
  EXPECT_EQ(s.stop(), 0);
}

TEST(Admin, DeployedVersionSurvivesARestart) {
  FunctionsDir fns;
  fs::create_directories(fns.path() / "none-here");
  auto src = fns.path() / "src";
  // No `name` in the manifest: the upload's URL names it, also after the restart.
  write_function(src, "runtime = \"node\"\nhandler = \"index.handler\"\n",
                 {{"index.js", "exports.handler = async () => 'kept';"}});
  auto tar = functions::create_tar_gz(src.string());
  ASSERT_TRUE(tar);
  fs::path data;
  {
    Server s(fns.path() / "none-here");
    auto r = http::fetch({.method = "PUT", .url = s.url("/admin/functions/kept"), .body = *tar});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(s.post("/fn/kept", "{}").body, "\"kept\"");
    data = s.data_dir();
    s.stop();
    // Keep the data dir for the second server.
    fs::copy(data, data.string() + "-copy", fs::copy_options::recursive);
  }
  Server s2(fns.path() / "none-here", {"--data", data.string() + "-copy"});
  EXPECT_EQ(s2.post("/fn/kept", "{}").body, "\"kept\"");
  fs::remove_all(data.string() + "-copy");
}

TEST(Admin, DeployRefusesBadManifestsAndNames) {
  FunctionsDir fns;
  Server s(fns.path());
  auto src = fns.path() / "bad";
  write_function(src, "name = \"bad\"\nruntime = \"cobol\"\nhandler = \"x\"\n", {});
  auto tar = functions::create_tar_gz(src.string());
  auto r = http::fetch({.method = "PUT", .url = s.url("/admin/functions/bad"), .body = *tar});
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("runtime"), std::string::npos) << r->body;
  r = http::fetch({.method = "PUT", .url = s.url("/admin/functions/other-name"), .body = *tar});
  EXPECT_EQ(r->status, 400);
  r = http::fetch({.method = "PUT", .url = s.url("/admin/functions/x"), .body = "not a tarball"});
  EXPECT_EQ(r->status, 400);
}

TEST(Admin, LogsAreKeptPerCallAndShownByTheCli) {
  FunctionsDir fns{{"chatty", ""}};
  Server s(fns.path());
  auto r = s.post("/fn/chatty", R"({"log":"hello from the function"})");
  auto rid = r.header("x-request-id");
  ASSERT_TRUE(eventually([&] {
    return s.get("/admin/logs/chatty").body.find("hello from the function") != std::string::npos;
  }, 3s));
  auto logs = s.get("/admin/logs/chatty").body;
  EXPECT_NE(logs.find(rid), std::string::npos) << logs;
  auto cli = run_cli("logs chatty --server " + s.url(""));
  EXPECT_NE(cli.find("hello from the function"), std::string::npos) << cli;
  EXPECT_NE(cli.find(rid), std::string::npos) << cli;
}

TEST(Admin, FollowedLogsArriveAsTheFunctionWritesThem) {
  FunctionsDir fns{{"chatty", ""}};
  Server s(fns.path());
  std::string seen;
  std::mutex mu;
  auto follower = std::async(std::launch::async, [&] {
    return http::fetch({.url = s.url("/admin/logs/chatty?follow=1"), .timeout = std::chrono::milliseconds(3000),
                        .on_data = [&](std::string_view d) {
                          std::lock_guard lk(mu);
                          seen += d;
                        }});
  });
  std::this_thread::sleep_for(200ms);
  s.post("/fn/chatty", R"({"log":"line while following"})");
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lk(mu);
    return seen.find("line while following") != std::string::npos;
  }, 2500ms));
  follower.wait();
}

TEST(Admin, CliInvokesAndStreams) {
  FunctionsDir fns{{"probe-node", ""}, {"stream", "", "node", "index.stream"}};
  Server s(fns.path());
  auto out = run_cli("invoke probe-node -d '{\"x\":7}' --server " + s.url(""));
  EXPECT_NE(out.find("\"x\":7"), std::string::npos) << out;
  out = run_cli("invoke stream -d '{\"chunks\":3,\"gap_ms\":10}' --stream --server " + s.url(""));
  EXPECT_EQ(out, "chunk0\nchunk1\nchunk2\n");
  out = run_cli("invoke nope --server " + s.url(""));
  EXPECT_NE(out.find("404 not_found"), std::string::npos) << out;
  out = run_cli("invoke nope --stream --server " + s.url(""));  // errors print the same when streaming
  EXPECT_NE(out.find("404 not_found"), std::string::npos) << out;
  out = run_cli("logs nope --server " + s.url(""));
  EXPECT_NE(out.find("404 not_found"), std::string::npos) << out;
  EXPECT_NE(run_cli("version").find("aifn "), std::string::npos);
}

TEST(Admin, BadManifestStopsStartupNamingFileLineAndKey) {
  FunctionsDir fns{{"broken", "timeout = \"soon\"\n"}};
  auto out = run_cli("serve --listen 127.0.0.1:0 --data " + (fns.path() / "data").string() + " --functions " +
                     fns.path().string());
  EXPECT_NE(out.find("broken/function.toml:4"), std::string::npos) << out;
  EXPECT_NE(out.find("timeout"), std::string::npos) << out;
}

TEST(Admin, OfficialAwsLambdaRicRunsANodeFunctionUnchanged) {
  auto ric = fs::path(source_dir()) / "tests/node/node_modules/aws-lambda-ric/index.mjs";
  if (!fs::exists(ric)) GTEST_SKIP() << "aws-lambda-ric did not install (npm); see docs/FUNCTIONS.md";
  FunctionsDir fns;
  auto dir = fns.path() / "ric";
  write_function(dir,
                 "name = \"ric\"\nruntime = \"exec\"\nhandler = \"node " + ric.string() +
                     "\"\nenv = { _HANDLER = \"index.handler\" }\n",
                 {{"index.js", "exports.handler = async (e, ctx) => ({hello: e.name, id: ctx.awsRequestId});"}});
  Server s(fns.path());
  auto r = s.post("/fn/ric", R"({"name":"Ada"})");
  ASSERT_EQ(r.status, 200) << r.body << s.log();
  EXPECT_EQ(json(r.body).at("hello").as_string(), "Ada");
  EXPECT_EQ(json(r.body).at("id").as_string(), r.header("x-request-id"));
}

}  // namespace
}  // namespace aifn::e2e
