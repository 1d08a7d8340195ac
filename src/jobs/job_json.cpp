// The job as the API shows it (DESIGN.md §6 GET /jobs/{id}).
#include <ctime>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "jobs/jobs.h"

namespace aifn::jobs {
namespace {

boost::json::value iso_time(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  std::time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return boost::json::string(fmt::format("{}.{:03}Z", buf, ms % 1000));
}

boost::json::value parsed(const std::string& text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) return boost::json::string(text);  // the store holds what the function answered
  return v;
}

}  // namespace

boost::json::object job_json(const store::JobRecord& j) {
  boost::json::object o{{"id", j.id},
                        {"function", j.function},
                        {"version", j.version},
                        // Leased ahead by a worker but not started yet: still waiting.
                        {"status", j.status == "running" && j.started_ms == 0 ? "queued" : j.status},
                        {"attempts", j.attempts},
                        {"max_attempts", j.max_attempts},
                        {"created_at", iso_time(j.created_ms)},
                        {"started_at", iso_time(j.started_ms)},
                        {"finished_at", iso_time(j.finished_ms)},
                        {"status_url", "/jobs/" + j.id}};
  if (!j.result.empty()) o["result"] = parsed(j.result);
  if (!j.error.empty()) {
    // Stored as the §6 error body; the job shows its inner object.
    auto e = parsed(j.error);
    if (e.is_object() && e.as_object().contains("error")) e = e.as_object().at("error");
    // A queued job with an error is waiting for its next attempt.
    o[j.status == "queued" ? "last_error" : "error"] = std::move(e);
  }
  if (j.status == "queued" && j.run_after_ms > 0 && j.attempts > 0) o["next_attempt_at"] = iso_time(j.run_after_ms);
  if (!j.idempotency_key.empty()) o["idempotency_key"] = j.idempotency_key;
  if (!j.callback_url.empty())
    o["callback"] = boost::json::object{
        {"url", j.callback_url}, {"state", j.callback_state}, {"attempts", j.callback_attempts}};
  return o;
}

}  // namespace aifn::jobs
