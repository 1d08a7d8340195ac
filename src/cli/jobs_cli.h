// Internal to aifn_cli: the job verbs (DESIGN.md §10) — `aifn invoke NAME
// --job [--wait]` and `aifn jobs list|get|cancel|retry`. Each returns the
// process exit code.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/client.h"

namespace aifn::cli {

// Enqueues; prints the job id, or with `wait` the job's result once it is
// final (exit 1 when it failed or was cancelled).
int invoke_job(const ClientOptions& c, const std::string& name, const std::string& body, bool wait);

// Adds `jobs` and its verbs to `app`; run_jobs() runs the one parsed.
struct JobsCommand {
  CLI::App* jobs = nullptr;
  CLI::App* list = nullptr;
  CLI::App* get = nullptr;
  CLI::App* cancel = nullptr;
  CLI::App* retry = nullptr;
  std::string id;
  std::string function;
  std::string status;
  int limit = 20;
};
void add_jobs_command(CLI::App& app, JobsCommand& cmd);
int run_jobs(const ClientOptions& c, const JobsCommand& cmd);

}  // namespace aifn::cli
