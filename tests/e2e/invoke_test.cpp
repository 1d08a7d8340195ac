// The call path end to end: real server, real Node/Python/C++ processes.
#include <future>

#include "fixtures.h"

namespace aifn::e2e {
namespace {

using namespace std::chrono_literals;

TEST(Invoke, NodeColdThenWarmOnTheSameProcess) {
  FunctionsDir fns{{"probe-node", ""}};
  Server s(fns.path());
  auto first = s.post("/fn/probe-node", R"({"n":1})");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-aifn-cold-start"), "true");
  EXPECT_NE(first.header("server-timing").find("init;dur="), std::string::npos);
  EXPECT_NE(first.header("server-timing").find("exec;dur="), std::string::npos);
  EXPECT_FALSE(first.header("x-request-id").empty());
  auto second = s.post("/fn/probe-node", R"({"n":2})");
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-aifn-cold-start"), "false");
  EXPECT_EQ(json_int(first.body, "pid"), json_int(second.body, "pid"));
  EXPECT_EQ(json(second.body).at("event").at("n").as_int64(), 2);
  EXPECT_GT(json_int(second.body, "remaining_ms"), 0);
  EXPECT_FALSE(json(second.body).at("token").is_null());
}

TEST(Invoke, PythonColdThenWarmOnTheSameProcess) {
  FunctionsDir fns{{"probe-py", "", "python", "probe.handler"}};
  Server s(fns.path());
  auto first = s.post("/fn/probe-py", R"({"n":1})");
  ASSERT_EQ(first.status, 200) << first.body << s.log();
  EXPECT_EQ(first.header("x-aifn-cold-start"), "true");
  auto second = s.post("/fn/probe-py", R"({"n":2})");
  EXPECT_EQ(second.header("x-aifn-cold-start"), "false");
  EXPECT_EQ(json_int(first.body, "pid"), json_int(second.body, "pid"));
}

TEST(Invoke, CppExecHello) {
  Server s(fs::path(source_dir()) / "examples");
  auto r = s.post("/fn/hello-cpp", R"({"name":"Ada"})");
  ASSERT_EQ(r.status, 200) << r.body << s.log();
  EXPECT_NE(r.body.find("hello, Ada"), std::string::npos) << r.body;
}

TEST(Invoke, RequestIdFromTheClientIsKept) {
  FunctionsDir fns{{"probe-node", ""}};
  Server s(fns.path());
  auto r = s.post("/fn/probe-node", "{}", {{"X-Request-Id", "my-trace-123"}});
  EXPECT_EQ(r.header("x-request-id"), "my-trace-123");
}

TEST(Invoke, FunctionErrorIs500WithItsType) {
  FunctionsDir fns{{"probe-node", ""}};
  Server s(fns.path());
  auto r = s.post("/fn/probe-node", R"({"throw":"boom"})");
  EXPECT_EQ(r.status, 500);
  auto e = json(r.body).at("error");
  EXPECT_EQ(e.at("type").as_string(), "function_error");
  EXPECT_EQ(e.at("errorType").as_string(), "Error");
  EXPECT_EQ(e.at("errorMessage").as_string(), "boom");
}

TEST(Invoke, AnInstanceServesTheNextCallAfterAnError) {
  // The bootstraps send the next GET /next with the error (pipelined): the
  // same process must take the following call, in order, for both runtimes.
  FunctionsDir fns{{"err-node", ""}, {"err-py", "", "python", "probe.handler"}};
  Server s(fns.path());
  for (const char* fn : {"/fn/err-node", "/fn/err-py"}) {
    auto first = s.post(fn, "{}");
    ASSERT_EQ(first.status, 200) << first.body << s.log();
    for (int i = 0; i < 3; ++i) {
      auto failed = s.post(fn, R"({"throw":"boom"})");
      EXPECT_EQ(failed.status, 500) << failed.body;
      EXPECT_NE(failed.body.find("boom"), std::string::npos) << failed.body;
      auto next = s.post(fn, R"({"n":1})");
      ASSERT_EQ(next.status, 200) << next.body << s.log();
      EXPECT_EQ(json(next.body).at("pid"), json(first.body).at("pid")) << fn;
      EXPECT_EQ(json(next.body).at("event").at("n").as_int64(), 1);
    }
  }
}

TEST(Invoke, AnInstanceServesStreamAfterStreamWhateverTheirEnd) {
  // A streamed answer's last chunk, an error trailer or an error post carries
  // the next GET /next (pipelined): one instance takes every call in turn.
  FunctionsDir fns{{"st-node", "", "node", "index.stream"}, {"st-py", "", "python", "probe.stream"}};
  Server s(fns.path());
  for (const std::string fn : {"st-node", "st-py"}) {
    for (int i = 0; i < 2; ++i) {
      auto ok = s.post("/fn/" + fn, R"({"chunks":2,"gap_ms":0})");
      EXPECT_EQ(ok.status, 200) << fn << s.log();
      EXPECT_EQ(ok.body, "chunk0\nchunk1\n") << fn;
      std::string sent;  // failing after its first chunk: cut without the terminating chunk (API.md)
      auto broken = http::fetch({.method = "POST", .url = s.url("/fn/" + fn), .body = R"({"chunks":3,"gap_ms":0,"fail_at":1})",
                                 .on_data = [&](std::string_view d) { sent += d; }});
      EXPECT_FALSE(broken) << fn;
      EXPECT_EQ(sent, "chunk0\n") << fn;
      auto thrown = s.post("/fn/" + fn, R"({"throw":"early"})");
      EXPECT_EQ(thrown.status, 500) << fn << " " << thrown.body;
      EXPECT_NE(thrown.body.find("early"), std::string::npos) << fn << " " << thrown.body;
    }
    auto last = s.post("/fn/" + fn, R"({"chunks":1,"gap_ms":0})");
    EXPECT_EQ(last.body, "chunk0\n") << fn;
    auto instances = json(s.get("/admin/functions/" + fn + "/instances").body).at("instances").as_array();
    EXPECT_EQ(instances.size(), 1u) << fn;
  }
}

TEST(Invoke, StreamedFirstBytesArriveLongBeforeTheEnd) {
  FunctionsDir fns{{"stream", "", "node", "index.stream"}};
  Server s(fns.path());
  s.post("/fn/stream", R"({"chunks":1,"gap_ms":0})");  // warm up: measure streaming, not boot
  auto t0 = std::chrono::steady_clock::now();
  std::vector<double> arrivals;
  std::string all;
  auto r = http::fetch({.method = "POST", .url = s.url("/fn/stream"), .body = R"({"chunks":5,"gap_ms":300})",
                        .on_data = [&](std::string_view d) {
                          arrivals.push_back(std::chrono::duration<double, std::milli>(
                                                 std::chrono::steady_clock::now() - t0).count());
                          all += d;
                        }});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "text/plain");
  EXPECT_EQ(all, "chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n");
  ASSERT_GE(arrivals.size(), 3u);
  EXPECT_LT(arrivals.front(), 250.0);   // the first chunk, right away
  EXPECT_GT(arrivals.back(), 1200.0);   // the last one after 4 gaps of 300 ms
}

TEST(Invoke, PythonGeneratorStreams) {
  FunctionsDir fns{{"pystream", "", "python", "probe.stream"}};
  Server s(fns.path());
  auto t0 = std::chrono::steady_clock::now();
  double first = -1;
  std::string all;
  auto r = http::fetch({.method = "POST", .url = s.url("/fn/pystream"), .body = R"({"chunks":4,"gap_ms":300})",
                        .on_data = [&](std::string_view d) {
                          if (first < 0)
                            first = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                                        .count();
                          all += d;
                        }});
  ASSERT_TRUE(r);
  double total = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(all, "chunk0\nchunk1\nchunk2\nchunk3\n");
  EXPECT_LT(first, total - 600);
}

TEST(Invoke, SseStreamGetsPingsWhenQuiet) {
  FunctionsDir fns{{"sse", "", "node", "index.stream"}};
  Server s(fns.path(), {}, "[limits]\nsse_heartbeat = \"200ms\"\n");
  auto r = s.post("/fn/sse", R"({"sse":true,"chunks":2,"gap_ms":700})");
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_NE(r.body.find(": ping\n\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data: 1\n\n"), std::string::npos);
}

TEST(Invoke, DocumentedErrorStatuses) {
  FunctionsDir fns{{"strict", "max_request = \"1KiB\"\n[input]\nschema = \"schema.json\"\n"}};
  Server s(fns.path());
  // 404: no such function
  auto r = s.post("/fn/nope", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_type(r.body), "not_found");
  // 413: over the function's max_request
  r = s.post("/fn/strict", "{\"name\":\"" + std::string(2000, 'a') + "\"}");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(error_type(r.body), "payload_too_large");
  // 400: not JSON, and a nesting bomb
  r = s.post("/fn/strict", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_type(r.body), "invalid_json");
  r = s.post("/fn/strict", std::string(500, '[') + std::string(500, ']'));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_type(r.body), "invalid_json");
  // 422: schema, with the failing paths
  r = s.post("/fn/strict", R"({"name": 5, "age": -1})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(error_type(r.body), "invalid_input");
  auto details = json(r.body).at("error").at("details").as_array();
  std::string paths;
  for (auto& d : details) paths += std::string(d.at("path").as_string()) + " ";
  EXPECT_NE(paths.find("$.name"), std::string::npos) << r.body;
  EXPECT_NE(paths.find("$.age"), std::string::npos) << r.body;
  // None of it started an instance.
  EXPECT_EQ(instance_count(s, "strict"), 0u);
  // A good call works.
  r = s.post("/fn/strict", R"({"name":"Ada"})");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(Invoke, QueueTimeoutGives429WithRetryAfter) {
  FunctionsDir fns{{"one", "max_instances = 1\nqueue_timeout = \"200ms\"\n"}};
  Server s(fns.path());
  auto slow = std::async(std::launch::async, [&] { return s.post("/fn/one", R"({"sleep_ms":1500})"); });
  ASSERT_TRUE(eventually([&] { return instance_count(s, "one") == 1; }, 5s));
  std::this_thread::sleep_for(100ms);  // let the slow call reach the instance
  auto t0 = std::chrono::steady_clock::now();
  auto r = s.post("/fn/one", "{}");
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(error_type(r.body), "throttled");
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_GE(waited, 180ms);
  EXPECT_EQ(slow.get().status, 200);
}

TEST(Invoke, MetricsExposeCallsColdStartsAndInstances) {
  FunctionsDir fns{{"probe-node", ""}};
  Server s(fns.path());
  s.post("/fn/probe-node", "{}");
  s.post("/fn/probe-node", R"({"throw":"x"})");
  auto m = s.get("/metrics").body;
  EXPECT_NE(m.find("aifn_calls_total{function=\"probe-node\",status=\"200\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("aifn_errors_total{function=\"probe-node\",type=\"function_error\"} 1"), std::string::npos);
  EXPECT_NE(m.find("aifn_cold_starts_total{function=\"probe-node\"} 1"), std::string::npos);
  EXPECT_NE(m.find("aifn_call_duration_seconds_count{function=\"probe-node\"} 2"), std::string::npos);
  EXPECT_NE(m.find("aifn_live_instances{function=\"probe-node\"} 1"), std::string::npos);
  EXPECT_EQ(s.get("/healthz").status, 200);
  EXPECT_EQ(s.get("/readyz").status, 200);
}

TEST(Invoke, CachedFunctionAnswersIdenticalInputFromTheCache) {
  FunctionsDir fns{{"cached", "[cache]\nttl = \"1h\"\n"},
                   {"short", "[cache]\nttl = \"300ms\"\n"},
                   {"cached-stream", "[cache]\nttl = \"1h\"\n", "node", "index.stream"}};
  Server s(fns.path());
  auto first = s.post("/fn/cached", R"({"a":1,"b":[1,2]})");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-aifn-cache"), "miss");
  auto again = s.post("/fn/cached", R"({ "b":[1,2], "a":1 })");  // same document, other spelling
  EXPECT_EQ(again.header("x-aifn-cache"), "hit");
  EXPECT_EQ(again.body, first.body);  // remaining_ms would differ had the function run again
  auto other = s.post("/fn/cached", R"({"a":2,"b":[1,2]})");
  EXPECT_EQ(other.header("x-aifn-cache"), "miss");

  auto s1 = s.post("/fn/cached-stream", R"({"chunks":3,"gap_ms":10})");
  EXPECT_EQ(s1.header("x-aifn-cache"), "miss");
  auto s2 = s.post("/fn/cached-stream", R"({"chunks":3,"gap_ms":10})");
  EXPECT_EQ(s2.header("x-aifn-cache"), "hit");
  EXPECT_EQ(s2.body, "chunk0\nchunk1\nchunk2\n");
  EXPECT_EQ(s2.header("content-type"), "text/plain");

  auto t1 = s.post("/fn/short", "{}");
  std::this_thread::sleep_for(500ms);
  auto t2 = s.post("/fn/short", "{}");
  EXPECT_EQ(t2.header("x-aifn-cache"), "miss");  // expired
  EXPECT_NE(t2.body, t1.body);

  auto rows = json(s.get("/admin/usage").body).at("rows").as_array();
  std::int64_t hits = 0;
  for (auto& r : rows) hits += r.at("cache_hits").as_int64();
  EXPECT_EQ(hits, 2);
  EXPECT_EQ(json(s.get("/admin/functions/cached").body).at("cache_ttl_ms").as_int64(), 3600000);
}

}  // namespace
}  // namespace aifn::e2e
