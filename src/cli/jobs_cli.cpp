#include "cli/jobs_cli.h"

#include <chrono>
#include <iostream>
#include <thread>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <fmt/format.h>

namespace aifn::cli {
namespace {

std::string text_of(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string("-");
}

bool final_status(const std::string& s) { return s == "succeeded" || s == "failed" || s == "cancelled"; }

std::string encode(const std::string& s) { return boost::urls::encode(s, boost::urls::unreserved_chars); }

}  // namespace

int invoke_job(const ClientOptions& c, const std::string& name, const std::string& body, bool wait) {
  auto r = request(c, "POST", "/fn/" + name + "/jobs");
  r.headers["Content-Type"] = "application/json";
  r.body = body;
  auto res = http::fetch(r);
  if (int rc = report(res)) return rc;
  auto id = boost::json::value_to<std::string>(boost::json::parse(res->body).at("id"));
  if (!wait) {
    std::cout << id << "\n";
    return 0;
  }
  // Polls the job, from every 50 ms up to every 2 s, until it is final.
  auto delay = std::chrono::milliseconds(50);
  for (;;) {
    auto g = http::fetch(request(c, "GET", "/jobs/" + id));
    if (int rc = report(g)) return rc;
    auto job = boost::json::parse(g->body).as_object();
    auto status = text_of(job, "status");
    if (final_status(status)) {
      if (status == "succeeded") {
        std::cout << boost::json::serialize(job.at("result")) << "\n";
        return 0;
      }
      std::cerr << "aifn: job " << id << " " << status;
      if (auto* e = job.if_contains("error"); e && e->is_object())
        std::cerr << ": " << text_of(e->as_object(), "type") << ": " << text_of(e->as_object(), "message");
      std::cerr << "\n";
      return 1;
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(2000));
  }
}

void add_jobs_command(CLI::App& app, JobsCommand& cmd) {
  cmd.jobs = app.add_subcommand("jobs", "list, inspect, cancel and retry background jobs");
  cmd.jobs->require_subcommand(1);
  cmd.list = cmd.jobs->add_subcommand("list", "recent jobs, newest first");
  cmd.list->add_option("--function", cmd.function, "only this function's jobs");
  cmd.list->add_option("--status", cmd.status, "queued|running|succeeded|failed|cancelled");
  cmd.list->add_option("--limit", cmd.limit, "at most this many (1..1000)");
  cmd.get = cmd.jobs->add_subcommand("get", "one job as JSON");
  cmd.get->add_option("ID", cmd.id)->required();
  cmd.cancel = cmd.jobs->add_subcommand("cancel", "cancel a queued or running job");
  cmd.cancel->add_option("ID", cmd.id)->required();
  cmd.retry = cmd.jobs->add_subcommand("retry", "run a failed or cancelled job again");
  cmd.retry->add_option("ID", cmd.id)->required();
}

int run_jobs(const ClientOptions& c, const JobsCommand& cmd) {
  if (*cmd.list) {
    std::string q = fmt::format("/jobs?limit={}", cmd.limit);
    if (!cmd.function.empty()) q += "&function=" + encode(cmd.function);
    if (!cmd.status.empty()) q += "&status=" + encode(cmd.status);
    auto res = http::fetch(request(c, "GET", q));
    if (int rc = report(res)) return rc;
    std::cout << fmt::format("{:<32} {:<20} {:<10} {:>8} {:<24} {}\n", "id", "function", "status", "attempts",
                             "created_at", "finished_at");
    auto doc = boost::json::parse(res->body);
    for (auto& j : doc.at("jobs").as_array()) {
      auto& o = j.as_object();
      std::cout << fmt::format("{:<32} {:<20} {:<10} {:>8} {:<24} {}\n", text_of(o, "id"), text_of(o, "function"),
                               text_of(o, "status"), o.at("attempts").to_number<std::int64_t>(),
                               text_of(o, "created_at"), text_of(o, "finished_at"));
    }
    return 0;
  }
  std::string path = "/jobs/" + encode(cmd.id);
  auto res = *cmd.get      ? http::fetch(request(c, "GET", path))
             : *cmd.cancel ? http::fetch(request(c, "DELETE", path))
                           : http::fetch(request(c, "POST", path + "/retry"));
  if (int rc = report(res)) return rc;
  if (*cmd.get) std::cout << res->body << "\n";
  else std::cout << (*cmd.cancel ? "cancelled " : "queued again ") << cmd.id << "\n";
  return 0;
}

}  // namespace aifn::cli
