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
