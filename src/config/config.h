// aifn::config — aifn.toml (server) and function.toml (one function), as
// DESIGN.md §3 and §4 define them. load_* parse with toml++, apply defaults,
// check every value, and report a bad file as ConfigError naming the file,
// line and key. Plain structs: safe to copy and share read-only across threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/units.h"

namespace aifn::config {

// A bad configuration file: what() reads "FILE:LINE: KEY: problem".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, std::string key, const std::string& problem);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

struct Provider {
  std::string name;
  std::string kind;  // gguf | openai
  std::string path;  // gguf
  int threads = 0;   // gguf; 0 = number of cores
  std::string base_url;  // openai
  std::string api_key;   // "secret:NAME" | "env:NAME" | ""
  std::string ca_file;   // openai: private CA bundle
  // openai: upstream deadlines and retries (unset = the client's defaults).
  std::optional<Millis> connect_timeout;     // resolve + connect + TLS handshake
  std::optional<Millis> first_byte_timeout;  // request sent → response head
  std::optional<Millis> idle_timeout;        // silence between streamed body bytes
  std::optional<int> max_attempts;           // tries on connect errors, 429, 5xx
  // openai: the gguf provider whose tokenizer counts the tokens of answers
  // that come without usage figures ("" = the first gguf provider, if any).
  std::string tokenizer;
};

struct ModelRoute {
  std::string name;
  std::vector<std::string> route;  // "provider/model" targets in fallback order
};

struct TokenPrice {
  double input_per_million = 0;
  double output_per_million = 0;
};

struct Pricing {
  double per_million_requests = 0.20;
  double per_gb_second = 0.0000166667;
  // What a GB of always-on capacity costs per hour (aifn cost's comparison);
  // unset = per_gb_second x 3600, the same rate paid also while idle.
  std::optional<double> always_on_per_gb_hour;
  std::map<std::string, TokenPrice> tokens;  // key: "provider/model"
  double always_on_per_gb_second() const {
    return always_on_per_gb_hour ? *always_on_per_gb_hour / 3600.0 : per_gb_second;
  }
};

struct Server {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = ".aifn";
  std::string functions_dir = "functions";
  bool functions_dir_set = false;  // given explicitly (then it must exist)
  std::string store;               // default: "sqlite:<data_dir>/aifn.db"
  std::uint64_t max_request = 6ull * 1024 * 1024;  // [limits] max_request
  Millis idle_read_timeout{30'000};      // [limits] read_timeout: a silent client is cut off
  std::uint64_t max_header = 16 * 1024;  // [limits] max_header
  Millis shutdown_grace{10'000};         // [limits] shutdown_grace
  int io_threads = 1;
  std::string auth = "auto";  // auto | required | off (DESIGN.md §9)
  Millis sse_heartbeat{15'000};  // [limits] sse_heartbeat: ": ping" after this much stream silence
  std::uint64_t cache_size = 64ull * 1024 * 1024;  // [limits] cache_size: all cached answers together
  Millis model_cache_ttl{3'600'000};  // [limits] model_cache_ttl: deterministic /v1 answers; 0 = off
  std::string cgroup_root;  // [instances] cgroup_root: "" = pick automatically
  std::string instance_user;                  // [instances] user: "" = the server's own user
  std::uint64_t instance_max_open_files = 1024;  // [instances] max_open_files (RLIMIT_NOFILE)
  std::uint64_t instance_max_processes = 4096;   // [instances] max_processes (RLIMIT_NPROC, per user)
  bool private_tmp = true;                    // [instances] private_tmp: own tmpfs /tmp (needs root)
  std::string instance_scheduling = "batch";  // [instances] scheduling: batch (SCHED_BATCH) | normal
  std::vector<Provider> providers;
  std::vector<ModelRoute> models;
  std::string webhook_secret;  // [jobs]
  std::string callback_ca_file;  // [jobs] callback_ca_file: PEM bundle for https callback receivers
  Millis job_retention{7 * 24 * 3'600'000};  // [jobs] retention: finished jobs older than this are deleted; 0 = never
  Pricing pricing;
};

struct Prompt {
  std::string model = "default";
  std::string system;
  std::string template_text;  // key "template"
  std::string output = "text";  // text | json
  std::string output_schema;    // path (relative to the function folder)
  int max_tokens = 256;
  double temperature = 0.2;
};

struct Retry {
  int max_attempts = 3;
  Millis backoff{2'000};
};

struct Function {
  std::string name;
  std::string runtime;  // node | python | exec | prompt
  std::string handler;
  Millis timeout{30'000};
  Millis job_timeout{15 * 60'000};
  std::uint64_t memory = 256ull * 1024 * 1024;
  std::optional<std::uint64_t> max_request;  // unset: the server's ceiling
  int concurrency = 1;
  int min_instances = 0;
  int max_instances = 10;
  int max_concurrency = 0;  // calls in flight for the function, all callers together; 0 = no cap
  Millis idle_timeout{5 * 60'000};
  Millis queue_timeout{10'000};
  std::string on_timeout = "fail";       // fail | job
  std::string on_disconnect = "cancel";  // cancel | finish | job
  std::string network = "host";          // host | gateway-only (its Runtime API and the model gateway only)
  std::map<std::string, std::string> env;
  std::vector<std::string> secrets;
  std::vector<std::string> models;
  // [input] schema: path relative to the function folder as written (checked
  // to exist and to stay inside the folder), "" = none.
  std::string input_schema;
  std::optional<Millis> cache_ttl;  // [cache] ttl
  Retry retry;
  std::optional<Prompt> prompt;
};

// The store URL to open: `store`, or "sqlite:<data_dir>/aifn.db" when unset
// (computed late so --data / AIFN_DATA_DIR also move the default database).
std::string store_url(const Server& s);

// Reads aifn.toml. `path` empty = defaults only. Throws ConfigError.
Server load_server(const std::string& path);

// Applies AIFN_* environment overrides (AIFN_LISTEN, AIFN_DATA_DIR,
// AIFN_FUNCTIONS_DIR, AIFN_STORE, AIFN_MAX_REQUEST, AIFN_IO_THREADS, ...) to a
// loaded config; flags are applied after this by the caller. Throws ConfigError
// (file "environment") on a bad value.
void apply_env(Server& s, char** envp);

// Reads DIR/function.toml. When `name` is absent: `default_name`, or the
// folder name when that is empty too. Throws ConfigError.
Function load_function(const std::string& dir, const std::string& default_name = "");

// Validates a function name: [a-z0-9-]{1,63}.
bool valid_function_name(const std::string& name);

}  // namespace aifn::config
