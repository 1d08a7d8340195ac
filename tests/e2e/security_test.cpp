// API keys, scopes, limits, budgets and secrets against the real server.
#include <sched.h>
#include <sys/stat.h>

#include <future>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "fixtures.h"

namespace aifn::e2e {
namespace {

using namespace std::chrono_literals;

http::ClientResponse call(Server& s, const std::string& method, const std::string& path, const std::string& key,
                          const std::string& body = "") {
  http::ClientRequest r{.method = method, .url = s.url(path), .body = body};
  if (!key.empty()) r.headers["Authorization"] = "Bearer " + key;
  if (!body.empty()) r.headers["Content-Type"] = "application/json";
  auto res = http::fetch(r);
  if (!res) throw std::runtime_error(res.error().message);
  return *res;
}

std::string create_key(Server& s, const std::string& admin, const std::string& json_body) {
  auto r = call(s, "POST", "/admin/keys", admin, json_body);
  if (r.status != 201) throw std::runtime_error("key not created: " + r.body);
  return std::string(json(r.body).at("key").as_string());
}

std::string read_admin_key(Server& s, unsigned* mode = nullptr) {
  auto file = s.data_dir() / "admin.key";
  struct stat st {};
  ::stat(file.c_str(), &st);
  if (mode) *mode = st.st_mode & 0777;
  std::string key;
  std::ifstream(file) >> key;
  return key;
}

TEST(Security, AutoModeIsOpenOnLoopbackUntilAKeyIsCreatedThenScopesHold) {
  FunctionsDir fns{{"hello", ""}, {"other", ""}};
  Server s(fns.path());
  EXPECT_NE(s.log().find("open"), std::string::npos);
  EXPECT_EQ(call(s, "GET", "/admin/functions", "").status, 200);  // open: no key yet

  auto made = call(s, "POST", "/admin/keys", "", R"({"name":"ci","scopes":["invoke:hello"]})");
  ASSERT_EQ(made.status, 201) << made.body;
  auto key = std::string(json(made.body).at("key").as_string());
  auto id = std::string(json(made.body).at("id").as_string());
  unsigned mode = 0;
  auto admin = read_admin_key(s, &mode);
  ASSERT_FALSE(admin.empty());
  EXPECT_EQ(mode, 0600u);

  EXPECT_EQ(call(s, "GET", "/admin/functions", "").status, 401);
  EXPECT_EQ(error_type(call(s, "POST", "/fn/hello", "", "{}").body), "unauthorized");
  EXPECT_EQ(call(s, "GET", "/admin/functions", admin).status, 200);
  EXPECT_EQ(call(s, "GET", "/healthz", "").status, 200);  // always public
  auto ok = call(s, "POST", "/fn/hello", key, "{}");
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto other = call(s, "POST", "/fn/other", key, "{}");
  EXPECT_EQ(other.status, 403);
  EXPECT_EQ(error_type(other.body), "forbidden");
  EXPECT_EQ(call(s, "GET", "/metrics", key).status, 403);
  EXPECT_EQ(call(s, "GET", "/admin/keys", key).status, 403);
  EXPECT_EQ(call(s, "POST", "/fn/hello", key + "x", "{}").status, 401);

  auto listed = call(s, "GET", "/admin/keys", admin);
  EXPECT_EQ(listed.body.find(key.substr(key.find('.') + 1)), std::string::npos);  // never the secret again
  EXPECT_NE(listed.body.find(id), std::string::npos);

  auto by_key = json(call(s, "GET", "/admin/usage?group_by=key", admin).body).at("rows").as_array();
  bool found = false;
  for (auto& r : by_key)
    if (r.at("key").as_string() == id) found = r.at("calls").as_int64() >= 1;
  EXPECT_TRUE(found);

  EXPECT_EQ(call(s, "DELETE", "/admin/keys/" + id, admin).status, 204);
  EXPECT_EQ(call(s, "POST", "/fn/hello", key, "{}").status, 401);  // revoked
  EXPECT_EQ(call(s, "DELETE", "/admin/keys/" + id + "zz", admin).status, 404);
}

TEST(Security, RateLimitAndBudgetAreEnforcedWithRetryAfter) {
  FunctionsDir fns{{"hello", "memory = \"128MiB\"\ntimeout = \"10s\"\nmax_instances = 4\n"}};
  // One call may cost up to 0.125 GB x 10 s x 0.5 = 0.625 (plus the request price).
  Server s(fns.path(), {}, "auth = \"required\"\n[pricing]\nper_gb_second = 0.5\n");
  auto admin = read_admin_key(s);
  ASSERT_FALSE(admin.empty());

  auto limited = create_key(s, admin, R"({"scopes":["invoke:hello"],"rate":"2/s"})");
  EXPECT_EQ(call(s, "POST", "/fn/hello", limited, "{}").status, 200);
  EXPECT_EQ(call(s, "POST", "/fn/hello", limited, "{}").status, 200);
  auto refused = call(s, "POST", "/fn/hello", limited, "{}");
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(error_type(refused.body), "rate_limited");
  EXPECT_FALSE(refused.header("retry-after").empty());

  auto budgeted = create_key(s, admin, R"({"scopes":["invoke:hello"],"budget":"1.00/day"})");
  auto slow = std::async(std::launch::async, [&] { return call(s, "POST", "/fn/hello", budgeted, R"({"sleep_ms":1500})"); });
  std::this_thread::sleep_for(500ms);
  // The slow call holds 0.625 of the 1.00: a second one could overshoot.
  auto second = call(s, "POST", "/fn/hello", budgeted, "{}");
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(error_type(second.body), "budget_exceeded");
  EXPECT_FALSE(second.header("retry-after").empty());
  EXPECT_EQ(slow.get().status, 200);
  // Settled to what it really cost (1.5 s x 0.125 GB x 0.5 ≈ 0.094): room again.
  EXPECT_EQ(call(s, "POST", "/fn/hello", budgeted, "{}").status, 200);
}

TEST(Security, SecretsReachOnlyTheFunctionsThatListThemAndNeverTheLogs) {
  FunctionsDir fns{{"holder", "secrets = [\"SLACK_TOKEN\"]\n"}, {"bystander", ""},
                   {"needy", "secrets = [\"MISSING\"]\n"}};
  Server s(fns.path());
  const std::string value = "xoxb-s3cr3t-value-4242";
  EXPECT_EQ(call(s, "PUT", "/admin/secrets/SLACK_TOKEN", "", value).status, 204);
  auto held = json(s.post("/fn/holder", R"({"env_name":"SLACK_TOKEN"})").body);
  EXPECT_EQ(held.at("value").as_string(), value);
  auto pid = held.at("pid").as_int64();
  EXPECT_TRUE(json(s.post("/fn/bystander", R"({"env_name":"SLACK_TOKEN"})").body).at("value").is_null());

  auto listed = call(s, "GET", "/admin/secrets", "");
  EXPECT_NE(listed.body.find("SLACK_TOKEN"), std::string::npos);
  EXPECT_EQ(listed.body.find(value), std::string::npos);
  EXPECT_EQ(call(s, "GET", "/admin/functions/holder", "").body.find(value), std::string::npos);

  // Rotation: no redeploy, the warm instance is replaced.
  EXPECT_EQ(call(s, "PUT", "/admin/secrets/SLACK_TOKEN", "", "rotated-9999").status, 204);
  auto rotated = json(s.post("/fn/holder", R"({"env_name":"SLACK_TOKEN"})").body);
  EXPECT_EQ(rotated.at("value").as_string(), "rotated-9999");
  EXPECT_NE(rotated.at("pid").as_int64(), pid);

  auto needy = s.post("/fn/needy", "{}");
  EXPECT_EQ(needy.status, 502);
  EXPECT_NE(needy.body.find("secret MISSING is not set"), std::string::npos) << needy.body;

  EXPECT_EQ(call(s, "DELETE", "/admin/secrets/SLACK_TOKEN", "").status, 204);
  EXPECT_EQ(call(s, "DELETE", "/admin/secrets/SLACK_TOKEN", "").status, 404);
  EXPECT_EQ(call(s, "PUT", "/admin/secrets/9bad", "", "x").status, 400);
  EXPECT_EQ(s.log().find(value), std::string::npos);
  EXPECT_EQ(s.get("/admin/logs/holder").body.find(value), std::string::npos);
  // At rest the database holds it sealed only.
  std::ifstream db(s.data_dir() / "aifn.db", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(db)), {});
  EXPECT_EQ(bytes.find("rotated-9999"), std::string::npos);
}

TEST(Security, CliManagesKeysAndSecrets) {
  FunctionsDir fns{{"hello", ""}};
  Server s(fns.path());
  auto out = run_cli("secrets list --server " + s.url(""));
  EXPECT_EQ(out.find("API"), std::string::npos);
  out = run_cli("secrets set API_TOKEN --server " + s.url(""), "printf value-from-stdin |");
  EXPECT_NE(out.find("secret API_TOKEN set"), std::string::npos) << out;
  EXPECT_NE(run_cli("secrets list --server " + s.url("")).find("API_TOKEN"), std::string::npos);
  out = run_cli("keys create --name ci --scope invoke:hello --rate 20/s --server " + s.url(""));
  EXPECT_NE(out.find("aifn_k"), std::string::npos) << out;
  auto admin = read_admin_key(s);
  out = run_cli("keys list --server " + s.url(""));  // auth is required now
  EXPECT_NE(out.find("401 unauthorized"), std::string::npos) << out;
  out = run_cli("keys list --server " + s.url(""), "AIFN_KEY=" + admin);
  EXPECT_NE(out.find("ci"), std::string::npos) << out;
  EXPECT_NE(out.find("invoke:hello"), std::string::npos) << out;
}

TEST(Security, InstancesRunIsolated) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing user and mounting a private /tmp need root";
  FunctionsDir fns{{"iso", ""}, {"iso2", ""}};
  std::ofstream(fs::temp_directory_path() / "aifn-host-marker") << "x";
  Server s(fns.path(), {}, "[instances]\nuser = \"nobody\"\nmax_open_files = 256\nmax_processes = 300\n");
  auto r = s.post("/fn/iso", R"({"isolation":true,"write_tmp":"mine"})");
  ASSERT_EQ(r.status, 200) << r.body << s.log();
  auto v = json(r.body);
  EXPECT_EQ(v.at("uid").as_int64(), 65534);  // nobody
  EXPECT_EQ(v.at("nofile").as_string(), "256");
  EXPECT_EQ(v.at("nproc").as_string(), "300");
  // Its /tmp is its own: neither the host's files nor another instance's.
  EXPECT_EQ(r.body.find("aifn-host-marker"), std::string::npos) << r.body;
  auto other = s.post("/fn/iso2", R"({"isolation":true})");
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(other.body.find("mine"), std::string::npos) << other.body;
  fs::remove(fs::temp_directory_path() / "aifn-host-marker");
}

TEST(Security, InstancesRunUnderSchedBatchUnlessToldOtherwise) {
  FunctionsDir fns{{"probe", ""}};
  const std::pair<const char*, int> cases[] = {{"", SCHED_BATCH},
                                               {"[instances]\nscheduling = \"normal\"\n", SCHED_OTHER}};
  for (auto [config, policy] : cases) {
    Server s(fns.path(), {}, config);
    auto r = s.post("/fn/probe", R"({"isolation":true})");
    ASSERT_EQ(r.status, 200) << r.body << s.log();
    EXPECT_EQ(json(r.body).at("policy").as_int64(), policy) << config;
  }
}

TEST(Security, PrivateTmpKeepsTheFoldersTheFunctionIsPointedAt) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a private /tmp needs root";
  // A library folder under /tmp named in the function's environment (as
  // NODE_PATH would be) stays readable; the rest of the host's /tmp does not.
  const fs::path libs = fs::temp_directory_path() / ("aifn-libs-" + std::to_string(::getpid()));
  fs::create_directories(libs);
  std::ofstream(libs / "lib.json") << R"({"from":"the host"})";
  FunctionsDir fns{{"pointed", "env = { LIBS = \"" + libs.string() + "\" }\n"}};
  std::ofstream(fs::temp_directory_path() / "aifn-host-marker2") << "x";
  Server s(fns.path());
  auto r = s.post("/fn/pointed", R"({"isolation":true,"read_file":")" + (libs / "lib.json").string() + "\"}");
  ASSERT_EQ(r.status, 200) << r.body << s.log();
  EXPECT_NE(r.body.find("the host"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("aifn-host-marker2"), std::string::npos) << r.body;
  fs::remove(fs::temp_directory_path() / "aifn-host-marker2");
  fs::remove_all(libs);
}

TEST(Security, GatewayOnlyInstancesReachTheGatewayAndNothingElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "a network namespace needs root";
  FunctionsDir fns{{"sealed", "network = \"gateway-only\"\n"}, {"open", ""}};
  Server s(fns.path());
  // Another service on the host's loopback, listening (the kernel completes
  // connections to it without an accept).
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor other(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  std::string probe = R"({"connect_port":)" + std::to_string(other.local_endpoint().port()) + "}";
  auto blocked = s.post("/fn/sealed", probe);  // the call itself proves its Runtime API works
  ASSERT_EQ(blocked.status, 200) << blocked.body << s.log();
  EXPECT_FALSE(json(blocked.body).at("reached").as_bool()) << blocked.body;
  auto reached = s.post("/fn/open", probe);
  ASSERT_EQ(reached.status, 200) << reached.body;
  EXPECT_TRUE(json(reached.body).at("reached").as_bool()) << reached.body;
  // ... yet the model gateway's URL works from inside, through aifn's relay.
  auto gw = s.post("/fn/sealed", R"({"gateway_health":true})");
  ASSERT_EQ(gw.status, 200) << gw.body;
  EXPECT_EQ(json(gw.body).at("status").as_int64(), 200);
  EXPECT_NE(gw.body.find("ok"), std::string::npos) << gw.body;
}

TEST(Security, MaxConcurrencyCapsAFunctionAcrossAllCallers) {
  FunctionsDir fns{{"capped", "max_concurrency = 2\nmax_instances = 5\n"}};
  Server s(fns.path());
  ASSERT_EQ(s.post("/fn/capped", "{}").status, 200);  // warm
  std::vector<std::future<http::ClientResponse>> calls;
  for (int i = 0; i < 4; ++i)
    calls.push_back(std::async(std::launch::async, [&] { return s.post("/fn/capped", R"({"sleep_ms":1500})"); }));
  int ok = 0, throttled = 0;
  for (auto& c : calls) {
    auto r = c.get();
    if (r.status == 200) ++ok;
    if (r.status == 429 && error_type(r.body) == "throttled" && !r.header("retry-after").empty()) ++throttled;
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(throttled, 2);
  EXPECT_EQ(s.post("/fn/capped", "{}").status, 200);  // the slots came back
}

}  // namespace
}  // namespace aifn::e2e
