#include "config/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace aifn::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "aifn-config-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string write(const std::string& rel, const std::string& text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  fs::path path_;
};

// Loads `text` as aifn.toml and returns the error, failing the test if none.
ConfigError server_error(const std::string& text) {
  TempDir d;
  std::string file = d.write("aifn.toml", text);
  try {
    load_server(file);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), file);
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos);
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return ConfigError("", 0, "", "");
}

// Writes DIR/function.toml (+ extra files) and returns load_function's error.
ConfigError function_error(const std::string& text, const std::string& folder = "fn") {
  TempDir d;
  std::string file = d.write(folder + "/function.toml", text);
  try {
    load_function((d.path() / folder).string());
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), file);
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return ConfigError("", 0, "", "");
}

void expect_error(const ConfigError& e, int line, const std::string& key, const std::string& fragment = "") {
  EXPECT_EQ(e.line(), line) << e.what();
  EXPECT_EQ(e.key(), key) << e.what();
  std::string what = e.what();
  EXPECT_NE(what.find(":" + std::to_string(line) + ": "), std::string::npos) << what;
  EXPECT_NE(what.find(key), std::string::npos) << what;
  if (!fragment.empty()) {
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

TEST(ServerConfig, DefaultsWithoutAFile) {
  Server s = load_server("");
  EXPECT_EQ(s.listen, "127.0.0.1:8080");
  EXPECT_EQ(s.data_dir, ".aifn");
  EXPECT_EQ(s.functions_dir, "functions");
  EXPECT_FALSE(s.functions_dir_set);
  EXPECT_EQ(s.store, "");
  EXPECT_EQ(store_url(s), "sqlite:.aifn/aifn.db");
  EXPECT_EQ(s.max_request, 6u * 1024 * 1024);
  EXPECT_EQ(s.idle_read_timeout, 30s);
  EXPECT_EQ(s.max_header, 16u * 1024);
  EXPECT_EQ(s.shutdown_grace, 10s);
  EXPECT_EQ(s.job_retention, std::chrono::hours(168));
  EXPECT_EQ(s.sse_heartbeat, 15s);
  EXPECT_EQ(s.io_threads, 1);
  EXPECT_TRUE(s.providers.empty());
  EXPECT_DOUBLE_EQ(s.pricing.per_million_requests, 0.20);
  EXPECT_DOUBLE_EQ(s.pricing.per_gb_second, 0.0000166667);
}

TEST(ServerConfig, ReadsEveryKey) {
  TempDir d;
  std::string file = d.write("aifn.toml", R"(
listen = "0.0.0.0:9000"
data_dir = "/var/lib/aifn"
functions_dir = "fns"
store = "sqlite:/tmp/x.db"
io_threads = 4

[limits]
max_request = "2MiB"
read_timeout = "5s"
max_header = "32KiB"
shutdown_grace = "250ms"
sse_heartbeat = "5s"

[instances]
cgroup_root = "/sys/fs/cgroup/aifn"
scheduling = "normal"

[[providers]]
name = "local"
kind = "gguf"
path = "models/tiny.gguf"
threads = 2

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "secret:OPENAI_API_KEY"
ca_file = "ca.pem"
connect_timeout = "3s"
first_byte_timeout = "90s"
idle_timeout = "45s"
max_attempts = 4

[[models]]
name = "default"
route = ["local/tiny", "openai/gpt-4o-mini"]

[jobs]
webhook_secret = "env:WEBHOOK_SECRET"
retention = "48h"

[pricing]
per_million_requests = 0.5
per_gb_second = 1
always_on_per_gb_hour = 0.036
[pricing.tokens."local/tiny"]
input_per_million = 0.1
output_per_million = 0.3
)");
  Server s = load_server(file);
  EXPECT_EQ(s.listen, "0.0.0.0:9000");
  EXPECT_EQ(s.data_dir, "/var/lib/aifn");
  EXPECT_EQ(s.functions_dir, "fns");
  EXPECT_TRUE(s.functions_dir_set);
  EXPECT_EQ(s.store, "sqlite:/tmp/x.db");
  EXPECT_EQ(store_url(s), "sqlite:/tmp/x.db");
  EXPECT_EQ(s.io_threads, 4);
  EXPECT_EQ(s.max_request, 2u * 1024 * 1024);
  EXPECT_EQ(s.idle_read_timeout, 5s);
  EXPECT_EQ(s.max_header, 32u * 1024);
  EXPECT_EQ(s.shutdown_grace, 250ms);
  EXPECT_EQ(s.sse_heartbeat, 5s);
  EXPECT_EQ(s.cgroup_root, "/sys/fs/cgroup/aifn");
  EXPECT_EQ(s.instance_scheduling, "normal");
  ASSERT_EQ(s.providers.size(), 2u);
  EXPECT_EQ(s.providers[0].name, "local");
  EXPECT_EQ(s.providers[0].kind, "gguf");
  EXPECT_EQ(s.providers[0].path, "models/tiny.gguf");
  EXPECT_EQ(s.providers[0].threads, 2);
  EXPECT_EQ(s.providers[1].kind, "openai");
  EXPECT_EQ(s.providers[1].base_url, "https://api.openai.com/v1");
  EXPECT_EQ(s.providers[1].api_key, "secret:OPENAI_API_KEY");
  EXPECT_EQ(s.providers[1].ca_file, "ca.pem");
  EXPECT_EQ(s.providers[1].connect_timeout, Millis(3'000));
  EXPECT_EQ(s.providers[1].first_byte_timeout, Millis(90'000));
  EXPECT_EQ(s.providers[1].idle_timeout, Millis(45'000));
  EXPECT_EQ(s.providers[1].max_attempts, 4);
  EXPECT_FALSE(s.providers[0].connect_timeout);
  ASSERT_EQ(s.models.size(), 1u);
  EXPECT_EQ(s.models[0].name, "default");
  EXPECT_EQ(s.models[0].route, (std::vector<std::string>{"local/tiny", "openai/gpt-4o-mini"}));
  EXPECT_EQ(s.webhook_secret, "env:WEBHOOK_SECRET");
  EXPECT_EQ(s.job_retention, Millis(48 * 3'600'000));
  EXPECT_DOUBLE_EQ(s.pricing.per_million_requests, 0.5);
  EXPECT_DOUBLE_EQ(s.pricing.per_gb_second, 1.0);
  EXPECT_DOUBLE_EQ(s.pricing.always_on_per_gb_second(), 0.00001);
  ASSERT_EQ(s.pricing.tokens.count("local/tiny"), 1u);
  EXPECT_DOUBLE_EQ(s.pricing.tokens["local/tiny"].input_per_million, 0.1);
  EXPECT_DOUBLE_EQ(s.pricing.tokens["local/tiny"].output_per_million, 0.3);
}

TEST(ServerConfig, StoreDefaultFollowsDataDir) {
  TempDir d;
  Server s = load_server(d.write("aifn.toml", "data_dir = \"/srv/aifn\"\n"));
  EXPECT_EQ(store_url(s), "sqlite:/srv/aifn/aifn.db");
}

TEST(ServerConfig, MissingFileNamesThePath) {
  try {
    load_server("/nonexistent/aifn.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/aifn.toml");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/aifn.toml"), std::string::npos);
  }
}

TEST(ServerConfig, SyntaxErrorGivesTheLine) {
  auto e = server_error("listen = \"a:1\"\n\nstore = \n");
  EXPECT_EQ(e.line(), 3) << e.what();
  EXPECT_NE(std::string(e.what()).find("syntax"), std::string::npos);
}

TEST(ServerConfig, UnknownKeysAreNamed) {
  expect_error(server_error("listen = \"a:1\"\nlisten_addr = \"x\"\n"), 2, "listen_addr", "unknown key");
  expect_error(server_error("[limits]\nmax_requests = \"1MiB\"\n"), 2, "limits.max_requests", "unknown key");
  expect_error(server_error("[[providers]]\nname = \"a\"\nkind = \"gguf\"\npath = \"x\"\nthread = 2\n"), 5,
               "providers[0].thread", "unknown key");
  expect_error(server_error("[pricing]\nper_gb_secnd = 1.0\n"), 2, "pricing.per_gb_secnd", "unknown key");
  expect_error(server_error("[pricing.tokens.\"a/b\"]\ninput_per_milion = 1\n"), 2,
               "pricing.tokens.\"a/b\".input_per_milion");
  expect_error(server_error("[jobs]\nsecret = \"x\"\n"), 2, "jobs.secret");
  expect_error(server_error("[instances]\ncgroup = \"x\"\n"), 2, "instances.cgroup");
}

TEST(ServerConfig, BadValuesNameFileLineAndKey) {
  expect_error(server_error("listen = 8080\n"), 1, "listen", "expected a string");
  expect_error(server_error("io_threads = 0\n"), 1, "io_threads", "minimum");
  expect_error(server_error("io_threads = \"2\"\n"), 1, "io_threads", "integer");
  expect_error(server_error("\n[limits]\nmax_request = \"6 parsecs\"\n"), 3, "limits.max_request", "size");
  expect_error(server_error("[limits]\nread_timeout = 30\n"), 2, "limits.read_timeout", "duration");
  expect_error(server_error("[limits]\nshutdown_grace = \"10 years\"\n"), 2, "limits.shutdown_grace");
  expect_error(server_error("[limits]\nsse_heartbeat = \"0ms\"\n"), 2, "limits.sse_heartbeat", "minimum");
  expect_error(server_error("store = \"mysql://x\"\n"), 1, "store");
  expect_error(server_error("[instances]\nscheduling = \"idle\"\n"), 2, "instances.scheduling", "batch or normal");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"llama\"\npath = \"p\"\n"), 3, "providers[0].kind",
               "gguf or openai");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"openai\"\n"), 1, "providers[0].base_url",
               "required");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"https://a\"\n"
                            "api_key = \"sk-123\"\n"),
               5, "providers[0].api_key");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"https://a\"\n"
                            "max_attempts = 0\n"),
               5, "providers[0].max_attempts");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"gguf\"\npath = \"p\"\n"
                            "idle_timeout = \"5s\"\n"),
               5, "providers[0].idle_timeout", "only used by openai");
  expect_error(server_error("[[providers]]\nname = \"a\"\nkind = \"gguf\"\npath = \"p\"\n"
                            "[[providers]]\nname = \"a\"\nkind = \"gguf\"\npath = \"q\"\n"),
               5, "providers[1].name", "twice");
  expect_error(server_error("[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"https://a\"\n"
                            "tokenizer = \"up\"\n"),
               1, "providers[0].tokenizer", "not a gguf provider");
  expect_error(server_error("[[providers]]\nname = \"x\"\nkind = \"gguf\"\npath = \"p\"\ntokenizer = \"x\"\n"), 5,
               "providers[0].tokenizer", "only used by openai");
  expect_error(server_error("[[models]]\nname = \"default\"\nroute = [\"tiny\"]\n"), 3, "models[0].route",
               "provider/model");
  expect_error(server_error("[[models]]\nname = \"default\"\nroute = []\n"), 3, "models[0].route");
  expect_error(server_error("[[models]]\nname = \"m\"\nroute = [\"a/b\"]\n[[models]]\nname = \"m\"\nroute = [\"a/c\"]\n"),
               4, "models[1].name", "twice");
  expect_error(server_error("[pricing]\nper_million_requests = -1\n"), 2, "pricing.per_million_requests");
  expect_error(server_error("[pricing]\nper_million_requests = \"cheap\"\n"), 2, "pricing.per_million_requests",
               "number");
  expect_error(server_error("[pricing.tokens.tiny]\ninput_per_million = 1\n"), 1, "pricing.tokens.\"tiny\"");
  expect_error(server_error("providers = 3\n"), 1, "providers");
}

TEST(ServerConfig, EnvironmentOverrides) {
  Server s;
  std::vector<std::string> vars = {"AIFN_LISTEN=0.0.0.0:1", "AIFN_DATA_DIR=/d", "AIFN_FUNCTIONS_DIR=/f",
                                   "AIFN_MAX_REQUEST=1MiB", "AIFN_IO_THREADS=3", "AIFN_READ_TIMEOUT=2s",
                                   "AIFN_SHUTDOWN_GRACE=1m", "AIFN_CGROUP_ROOT=/cg", "AIFN_KEY=ignored",
                                   "PATH=/bin"};
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  apply_env(s, envp.data());
  EXPECT_EQ(s.listen, "0.0.0.0:1");
  EXPECT_EQ(s.data_dir, "/d");
  EXPECT_EQ(s.functions_dir, "/f");
  EXPECT_TRUE(s.functions_dir_set);
  EXPECT_EQ(store_url(s), "sqlite:/d/aifn.db");
  EXPECT_EQ(s.max_request, 1024u * 1024);
  EXPECT_EQ(s.io_threads, 3);
  EXPECT_EQ(s.idle_read_timeout, 2s);
  EXPECT_EQ(s.shutdown_grace, 1min);
  EXPECT_EQ(s.cgroup_root, "/cg");

  std::string store = "AIFN_STORE=sqlite:/x.db";
  char* one[] = {store.data(), nullptr};
  apply_env(s, one);
  EXPECT_EQ(store_url(s), "sqlite:/x.db");
  apply_env(s, nullptr);
}

TEST(ServerConfig, BadEnvironmentValueNamesTheVariable) {
  for (std::string v : {"AIFN_IO_THREADS=many", "AIFN_MAX_REQUEST=lots", "AIFN_READ_TIMEOUT=5", "AIFN_LISTEN=8080"}) {
    Server s;
    char* envp[] = {v.data(), nullptr};
    try {
      apply_env(s, envp);
      ADD_FAILURE() << v;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.file(), "environment");
      EXPECT_EQ(e.key(), v.substr(0, v.find('=')));
    }
  }
}

TEST(FunctionConfig, DefaultsAndFolderName) {
  TempDir d;
  d.write("summarize/function.toml", "runtime = \"node\"\nhandler = \"index.handler\"\n");
  Function f = load_function((d.path() / "summarize").string());
  EXPECT_EQ(f.name, "summarize");
  EXPECT_EQ(f.runtime, "node");
  EXPECT_EQ(f.handler, "index.handler");
  EXPECT_EQ(f.timeout, 30s);
  EXPECT_EQ(f.job_timeout, 15min);
  EXPECT_EQ(f.memory, 256u * 1024 * 1024);
  EXPECT_FALSE(f.max_request);
  EXPECT_EQ(f.concurrency, 1);
  EXPECT_EQ(f.min_instances, 0);
  EXPECT_EQ(f.max_instances, 10);
  EXPECT_EQ(f.idle_timeout, 5min);
  EXPECT_EQ(f.queue_timeout, 10s);
  EXPECT_EQ(f.on_timeout, "fail");
  EXPECT_EQ(f.on_disconnect, "cancel");
  EXPECT_TRUE(f.env.empty());
  EXPECT_EQ(f.input_schema, "");
  EXPECT_FALSE(f.cache_ttl);
  EXPECT_EQ(f.retry.max_attempts, 3);
  EXPECT_EQ(f.retry.backoff, 2s);
  EXPECT_FALSE(f.prompt);
  // A trailing slash still names the folder.
  EXPECT_EQ(load_function((d.path() / "summarize").string() + "/").name, "summarize");
}

TEST(FunctionConfig, ReadsEveryKey) {
  TempDir d;
  d.write("f/schema.json", "{}");
  d.write("f/out.json", "{}");
  d.write("f/function.toml", R"(
name = "summarize"
runtime = "prompt"
handler = "unused"
timeout = "20s"
job_timeout = "1h"
memory = "512MiB"
max_request = "1MiB"
concurrency = 4
min_instances = 1
max_instances = 3
idle_timeout = "2m"
queue_timeout = "500ms"
on_timeout = "job"
on_disconnect = "finish"
env = { STYLE = "brief", LANG = "en" }
secrets = ["SLACK_TOKEN"]
models = ["default", "local/tiny"]
[input]
schema = "schema.json"
[cache]
ttl = "1h"
[retry]
max_attempts = 5
backoff = "3s"
[prompt]
model = "fast"
system = "You summarize."
template = "Summarize:\n{{text}}"
output = "json"
output_schema = "out.json"
max_tokens = 64
temperature = 0
)");
  Function f = load_function((d.path() / "f").string());
  EXPECT_EQ(f.name, "summarize");
  EXPECT_EQ(f.runtime, "prompt");
  EXPECT_EQ(f.timeout, 20s);
  EXPECT_EQ(f.job_timeout, 1h);
  EXPECT_EQ(f.memory, 512u * 1024 * 1024);
  EXPECT_EQ(f.max_request, 1024u * 1024);
  EXPECT_EQ(f.concurrency, 4);
  EXPECT_EQ(f.min_instances, 1);
  EXPECT_EQ(f.max_instances, 3);
  EXPECT_EQ(f.idle_timeout, 2min);
  EXPECT_EQ(f.queue_timeout, 500ms);
  EXPECT_EQ(f.on_timeout, "job");
  EXPECT_EQ(f.on_disconnect, "finish");
  EXPECT_EQ(f.env.at("STYLE"), "brief");
  EXPECT_EQ(f.env.at("LANG"), "en");
  EXPECT_EQ(f.secrets, std::vector<std::string>{"SLACK_TOKEN"});
  EXPECT_EQ(f.models, (std::vector<std::string>{"default", "local/tiny"}));
  EXPECT_EQ(f.input_schema, "schema.json");
  EXPECT_EQ(f.cache_ttl, 1h);
  EXPECT_EQ(f.retry.max_attempts, 5);
  EXPECT_EQ(f.retry.backoff, 3s);
  ASSERT_TRUE(f.prompt);
  EXPECT_EQ(f.prompt->model, "fast");
  EXPECT_EQ(f.prompt->system, "You summarize.");
  EXPECT_EQ(f.prompt->template_text, "Summarize:\n{{text}}");
  EXPECT_EQ(f.prompt->output, "json");
  EXPECT_EQ(f.prompt->output_schema, "out.json");
  EXPECT_EQ(f.prompt->max_tokens, 64);
  EXPECT_DOUBLE_EQ(f.prompt->temperature, 0.0);
}

TEST(FunctionConfig, ExamplesInTheRepositoryLoad) {
  const char* src = std::getenv("AIFN_SOURCE_DIR");
  if (!src) GTEST_SKIP() << "AIFN_SOURCE_DIR unset";
  for (const auto& e : fs::directory_iterator(fs::path(src) / "examples"))
    if (fs::exists(e.path() / "function.toml")) {
      EXPECT_NO_THROW(load_function(e.path().string())) << e.path();
    }
}

TEST(FunctionConfig, ErrorsNameFileLineAndKey) {
  const std::string base = "runtime = \"node\"\nhandler = \"i.h\"\n";
  expect_error(function_error(base + "timout = \"5s\"\n"), 3, "timout", "unknown key");
  expect_error(function_error(base + "[retry]\nmax_attempt = 2\n"), 4, "retry.max_attempt", "unknown key");
  expect_error(function_error(base + "[cache]\nttl = \"1h\"\nsize = 3\n"), 5, "cache.size", "unknown key");
  expect_error(function_error("name = \"Summarize\"\n" + base), 1, "name", "valid function name");
  expect_error(function_error(base, "Bad_Folder"), 1, "name", "Bad_Folder");
  expect_error(function_error("handler = \"x\"\nruntime = \"ruby\"\n"), 2, "runtime", "node, python, exec or prompt");
  expect_error(function_error("handler = \"x\"\n"), 1, "runtime", "required");
  expect_error(function_error("runtime = \"python\"\n"), 1, "handler", "required");
  expect_error(function_error(base + "timeout = \"30\"\n"), 3, "timeout", "duration");
  expect_error(function_error(base + "timeout = 30\n"), 3, "timeout", "duration");
  expect_error(function_error(base + "job_timeout = \"0s\"\n"), 3, "job_timeout", "minimum");
  expect_error(function_error(base + "memory = \"lots\"\n"), 3, "memory", "size");
  expect_error(function_error(base + "max_request = true\n"), 3, "max_request");
  expect_error(function_error(base + "concurrency = 0\n"), 3, "concurrency", "minimum");
  expect_error(function_error(base + "max_instances = 0\n"), 3, "max_instances", "minimum");
  expect_error(function_error(base + "max_instances = 2\nmin_instances = 3\n"), 4, "min_instances", "max_instances");
  expect_error(function_error(base + "on_timeout = \"retry\"\n"), 3, "on_timeout", "fail or job");
  expect_error(function_error(base + "on_disconnect = \"ignore\"\n"), 3, "on_disconnect", "cancel, finish or job");
  expect_error(function_error(base + "env = { A = 1 }\n"), 3, "env.A", "string");
  expect_error(function_error(base + "secrets = [\"A\", 2]\n"), 3, "secrets", "strings");
  expect_error(function_error(base + "[input]\nschema = \"missing.json\"\n"), 4, "input.schema", "does not exist");
  expect_error(function_error(base + "[input]\nschema = \"../x.json\"\n"), 4, "input.schema", "inside");
  expect_error(function_error(base + "[input]\nschema = \"/etc/passwd\"\n"), 4, "input.schema", "relative");
  expect_error(function_error(base + "[prompt]\ntemplate = \"x\"\n"), 3, "prompt", "runtime");
  expect_error(function_error("runtime = \"prompt\"\n"), 1, "prompt", "[prompt]");
  expect_error(function_error("runtime = \"prompt\"\n[prompt]\ntemplate = \"x\"\noutput = \"xml\"\n"), 4,
               "prompt.output", "text or json");
  expect_error(function_error("runtime = \"prompt\"\n[prompt]\ntemplate = \"x\"\nmax_tokens = \"many\"\n"), 4,
               "prompt.max_tokens", "integer");
  expect_error(function_error("runtime = \"prompt\"\n[prompt]\ntemplate = \"x\"\ntemprature = 1\n"), 4,
               "prompt.temprature", "unknown key");
  expect_error(function_error(base + "[retry]\nbackoff = \"soon\"\n"), 4, "retry.backoff");
  expect_error(function_error(base + "\n\nname = \"a\" = 2\n"), 5, "", "syntax");
}

TEST(FunctionConfig, MissingManifestNamesThePath) {
  TempDir d;
  try {
    load_function(d.path().string());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), (d.path() / "function.toml").string());
  }
}

TEST(FunctionName, Validation) {
  EXPECT_TRUE(valid_function_name("summarize"));
  EXPECT_TRUE(valid_function_name("a-1"));
  EXPECT_TRUE(valid_function_name(std::string(63, 'a')));
  EXPECT_FALSE(valid_function_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_function_name(""));
  EXPECT_FALSE(valid_function_name("Sum"));
  EXPECT_FALSE(valid_function_name("a_b"));
  EXPECT_FALSE(valid_function_name("a/b"));
}

}  // namespace
}  // namespace aifn::config
