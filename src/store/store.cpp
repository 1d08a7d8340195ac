#include "store/store.h"

#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "store/sqlite_store.h"

namespace aifn::store {

Expected<std::unique_ptr<Store>> open_store(const std::string& url) {
  if (url.starts_with("sqlite:")) {
    std::string path = url.substr(7);
    if (path.empty()) return fail(ErrorType::bad_request, fmt::format("store {}: no database path after sqlite:", url));
    if (path != ":memory:") {
      std::filesystem::path parent = std::filesystem::path(path).parent_path();
      std::error_code ec;
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      if (ec)
        return fail(ErrorType::unavailable,
                    fmt::format("store {}: cannot create folder {}: {}", url, parent.string(), ec.message()));
    }
    auto s = SqliteStore::open(path, url);
    if (!s) return tl::unexpected(s.error());
    return std::unique_ptr<Store>(std::move(*s));
  }
  if (url.starts_with("postgresql://") || url.starts_with("postgres://"))
    return fail(ErrorType::unavailable, fmt::format("store {}: the PostgreSQL store is not built yet", url));
  return fail(ErrorType::bad_request, fmt::format("store {}: unknown store URL (expected sqlite:PATH or postgresql://...)", url));
}

}  // namespace aifn::store

namespace aifn::store {
namespace {
tl::unexpected<Error> no_jobs() { return fail(ErrorType::unavailable, "this store does not keep jobs"); }
}  // namespace

Expected<std::vector<EnqueueOutcome>> Store::write_jobs(const std::vector<JobRecord>&, const std::vector<JobUpdate>&,
                                                        std::int64_t, std::vector<bool>*) {
  return no_jobs();
}
Expected<std::vector<JobRecord>> Store::lease_jobs(const std::string&, const std::string&, std::int64_t, std::int64_t,
                                                   int) {
  return no_jobs();
}
Expected<int> Store::release_leases(const std::string&) { return no_jobs(); }
Expected<JobRecord> Store::cancel_job(const std::string&, std::int64_t) { return no_jobs(); }
Expected<JobRecord> Store::requeue_job(const std::string&, std::int64_t) { return no_jobs(); }
Expected<JobRecord> Store::get_job(const std::string&) { return no_jobs(); }
Expected<std::vector<JobRecord>> Store::list_jobs(const JobFilter&) { return no_jobs(); }
Expected<int> Store::purge_jobs(std::int64_t, int) { return no_jobs(); }

}  // namespace aifn::store
