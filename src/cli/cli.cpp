#include "cli/cli.h"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/client.h"
#include "cli/cost_cli.h"
#include "cli/jobs_cli.h"
#include "cli/models_list.h"
#include "cli/security_cli.h"
#include "config/config.h"
#include "engine/models_cli.h"
#include "functions/archive.h"
#include "gateway/serve.h"
#include "http/client.h"

extern char** environ;

namespace aifn::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

std::string read_data_arg(const std::string& d) {
  if (!d.empty() && d[0] == '@') {
    std::string path = d.substr(1);
    std::stringstream ss;
    if (path == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream f(path);
      if (!f) throw std::runtime_error("cannot read " + path);
      ss << f.rdbuf();
    }
    return ss.str();
  }
  return d;
}

std::string format_time(std::int64_t ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

void print_log_line(std::string_view json_line) {
  boost::system::error_code ec;
  auto v = boost::json::parse(json_line, ec);
  if (ec || !v.is_object()) return;
  auto& o = v.as_object();
  std::string rid = boost::json::value_to<std::string>(o.at("request_id"));
  std::cout << format_time(o.at("time_ms").to_number<std::int64_t>()) << " " << (rid.empty() ? "-" : rid) << " "
            << boost::json::value_to<std::string>(o.at("stream")) << " "
            << boost::json::value_to<std::string>(o.at("message")) << "\n"
            << std::flush;
}

}  // namespace

int run(int argc, char** argv) {
  // Diagnostics go to stderr; stdout is for what a command prints (invoke
  // output, generated text).
  spdlog::set_default_logger(spdlog::stderr_color_mt("aifn"));
  if (const char* lvl = std::getenv("AIFN_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(lvl));
  CLI::App app{"aifn: serverless AI functions on your own machines"};
  app.require_subcommand(1);
  app.fallthrough();  // --server may follow the verb
  ClientOptions client;
  client.server = std::getenv("AIFN_SERVER") ? std::getenv("AIFN_SERVER") : "http://127.0.0.1:8080";
  client.key = std::getenv("AIFN_KEY") ? std::getenv("AIFN_KEY") : "";
  app.add_option("--server", client.server, "aifn server URL (AIFN_SERVER)");

  // serve
  auto* serve = app.add_subcommand("serve", "run the server");
  std::string config_path, listen, data_dir, functions_dir;
  serve->add_option("--config", config_path, "aifn.toml");
  serve->add_option("--listen", listen, "HOST:PORT");
  serve->add_option("--data", data_dir, "data folder");
  serve->add_option("--functions", functions_dir, "functions folder");

  auto* deploy = app.add_subcommand("deploy", "upload a function folder as its next version");
  std::string deploy_dir;
  deploy->add_option("DIR", deploy_dir)->required();

  auto* invoke = app.add_subcommand("invoke", "call a function");
  std::string fn_name, data = "{}";
  bool stream = false;
  invoke->add_option("NAME", fn_name)->required();
  invoke->add_option("-d,--data", data, "JSON event, or @file (@- for stdin)");
  invoke->add_flag("--stream", stream, "print the answer as it is produced");
  bool as_job = false, wait_job = false;
  invoke->add_flag("--job", as_job, "enqueue a background job; prints its id");
  invoke->add_flag("--wait", wait_job, "with --job: wait for the job and print its result");
  JobsCommand jobs_cmd;
  add_jobs_command(app, jobs_cmd);

  auto* logs = app.add_subcommand("logs", "show a function's output");
  std::string logs_name;
  bool follow = false;
  logs->add_option("NAME", logs_name)->required();
  logs->add_flag("-f,--follow", follow, "keep printing new lines");

  auto* usage = app.add_subcommand("usage", "metered usage and its cost");
  std::string by = "function";
  usage->add_option("--by", by, "function|key|day|model");

  auto* cost = app.add_subcommand("cost", "recorded traffic: serverless vs always-on instances, and the break-even");

  auto* version = app.add_subcommand("version", "print the version");
  int verb_exit = 0;  // verbs that run in their CLI11 callback leave their exit code here
  add_security_commands(app, client, &verb_exit);

  // models [list]: the server's models; run / bench: the built-in engine,
  // locally, no server needed.
  auto* models = app.add_subcommand("models", "list the server's models, or run or benchmark a GGUF model locally");
  models->require_subcommand(0, 1);
  auto* models_list = models->add_subcommand("list", "the models the server routes (the default)");
  auto* models_run = models->add_subcommand("run", "generate text; stdout holds only the generated text");
  engine::ModelsRunOptions run_opts;
  std::optional<std::uint64_t> seed;
  models_run->add_option("FILE", run_opts.path, "model.gguf")->required();
  models_run->add_option("-p,--prompt", run_opts.prompt, "prompt")->required();
  models_run->add_option("-n,--n-predict", run_opts.n_predict, "tokens to generate");
  models_run->add_option("--temp", run_opts.temperature, "temperature (0 = greedy)");
  models_run->add_option("--top-k", run_opts.top_k);
  models_run->add_option("--top-p", run_opts.top_p);
  models_run->add_option("--seed", seed);
  models_run->add_option("--threads", run_opts.threads);
  auto* models_bench = models->add_subcommand("bench", "prompt-processing and generation tokens/s");
  engine::ModelsBenchOptions bench_opts;
  models_bench->add_option("FILE", bench_opts.path, "model.gguf")->required();
  models_bench->add_option("--threads", bench_opts.threads);
  models_bench->add_option("--prompt", bench_opts.prompt_tokens);
  models_bench->add_option("--gen", bench_opts.gen_tokens);
  models_bench->add_option("--reps", bench_opts.reps);
  models_bench->add_option("--depth", bench_opts.depth, "tokens already in the KV cache when each run starts");
  models_bench->add_flag("--json", bench_opts.json);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.got_subcommand("keys") || app.got_subcommand("secrets")) return verb_exit;

  try {
    if (*version) {
      std::cout << "aifn " << kVersion << "\n";
      return 0;
    }
    if (*models_run) {
      run_opts.seed = seed;
      return engine::models_run(run_opts);
    }
    if (*models_bench) return engine::models_bench(bench_opts);
    if (*models_list || *models) return list_models(client);
    if (*cost) return show_cost(client);
    if (*serve) {
      config::Server cfg = config::load_server(config_path);
      config::apply_env(cfg, environ);
      if (!listen.empty()) cfg.listen = listen;
      if (!data_dir.empty()) cfg.data_dir = data_dir;
      if (!functions_dir.empty()) {
        cfg.functions_dir = functions_dir;
        cfg.functions_dir_set = true;
      }
      return gateway::run_server(cfg);
    }
    if (*deploy) {
      auto fn = config::load_function(deploy_dir);  // local check first: file, line, key
      auto tar = functions::create_tar_gz(deploy_dir);
      if (!tar) {
        std::cerr << "aifn: " << tar.error().message << "\n";
        return 2;
      }
      auto r = request(client, "PUT", "/admin/functions/" + fn.name);
      r.headers["Content-Type"] = "application/gzip";
      r.body = std::move(*tar);
      auto res = http::fetch(r);
      if (int rc = report(res)) return rc;
      auto v = boost::json::parse(res->body);
      std::cout << "deployed " << fn.name << " version " << boost::json::value_to<std::string>(v.at("version"))
                << "\n";
      return 0;
    }
    if (*invoke && as_job) return invoke_job(client, fn_name, read_data_arg(data), wait_job);
    if (*jobs_cmd.jobs) return run_jobs(client, jobs_cmd);
    if (*invoke) {
      auto r = request(client, "POST", "/fn/" + fn_name);
      r.headers["Content-Type"] = "application/json";
      r.body = read_data_arg(data);
      r.timeout = Millis(3600'000);
      if (stream) r.on_data = [](std::string_view d) { std::cout << d << std::flush; };
      auto res = http::fetch(r);
      if (int rc = report(res)) return rc;
      if (!stream) std::cout << res->body << "\n";
      return 0;
    }
    if (*logs) {
      auto r = request(client, "GET", "/admin/logs/" + logs_name + (follow ? "?follow=1" : ""));
      std::string partial;
      r.timeout = follow ? Millis(365LL * 24 * 3600'000) : Millis(60'000);
      r.on_data = [&](std::string_view d) {
        partial += d;
        std::size_t start = 0, nl;
        while ((nl = partial.find('\n', start)) != std::string::npos) {
          print_log_line(std::string_view(partial).substr(start, nl - start));
          start = nl + 1;
        }
        partial.erase(0, start);
      };
      auto res = http::fetch(r);
      return report(res);
    }
    if (*usage) {
      auto res = http::fetch(request(client, "GET", "/admin/usage?group_by=" + by));
      if (int rc = report(res)) return rc;
      auto v = boost::json::parse(res->body);
      std::cout << fmt::format("{:<24} {:>8} {:>7} {:>6} {:>10} {:>12} {:>10} {:>10} {:>6} {:>12}\n", by, "calls",
                               "errors", "cold", "billed_ms", "gb_seconds", "tokens_in", "tokens_out", "cached",
                               "cost");
      for (auto& row : v.at("rows").as_array()) {
        auto& o = row.as_object();
        auto num = [&](const char* k) { return o.at(k).to_number<double>(); };
        std::cout << fmt::format("{:<24} {:>8} {:>7} {:>6} {:>10} {:>12.6f} {:>10} {:>10} {:>6} {:>12.8f}\n",
                                 boost::json::value_to<std::string>(o.at(by)), num("calls"), num("errors"),
                                 num("cold_starts"), num("billed_ms"), num("gb_seconds"), num("tokens_in"),
                                 num("tokens_out"), num("cache_hits"), num("cost"));
      }
      return 0;
    }
  } catch (const config::ConfigError& e) {
    std::cerr << "aifn: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aifn: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace aifn::cli
