#include "security/auth.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "security/secret_box.h"

namespace aifn::security {
namespace fs = std::filesystem;

namespace {

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

std::string_view bearer(std::string_view header) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (header.size() <= kPrefix.size()) return {};
  for (std::size_t i = 0; i < kPrefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != std::tolower(static_cast<unsigned char>(kPrefix[i])))
      return {};
  header.remove_prefix(kPrefix.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return header;
}

}  // namespace

bool Auth::open() const {
  if (opts_.mode == "off") return true;
  if (opts_.mode == "required") return false;
  return loopback(opts_.listen_host) && opts_.admin_key.empty() && !keys_.any_created();
}

Expected<void> Auth::start() {
  if (opts_.mode != "auto" && opts_.mode != "required" && opts_.mode != "off")
    return fail(ErrorType::bad_request, fmt::format("auth = \"{}\": use auto, required or off", opts_.mode));
  if (opts_.mode == "off") {
    spdlog::warn("event=auth mode=off message=\"auth = off: every route is open to anyone who can reach {}\"",
                 opts_.listen_host);
    return {};
  }
  if (open()) {
    spdlog::warn("event=auth mode=open message=\"no API key exists and AIFN_ADMIN_KEY is not set: the server is "
                 "open on loopback; create a key (aifn keys create) or set AIFN_ADMIN_KEY to require keys\"");
    return {};
  }
  return ensure_admin_key();
}

Expected<void> Auth::ensure_admin_key() {
  std::lock_guard lk(mu_);
  if (!admin_hash_.empty()) return {};
  if (!opts_.admin_key.empty()) {
    admin_hash_ = key_hash(opts_.admin_key);
    spdlog::info("event=auth mode=required admin_key=AIFN_ADMIN_KEY");
    return {};
  }
  auto path = (fs::path(opts_.data_dir) / "admin.key").string();
  if (!fs::exists(path)) {
    std::error_code ec;
    fs::create_directories(opts_.data_dir, ec);
    if (auto r = write_private_file(path, "aifn_admin." + random_token() + "\n"); !r) return r;
  }
  std::string key;
  std::ifstream(path) >> key;
  if (key.empty()) return fail(ErrorType::internal, fmt::format("{} is empty", path));
  admin_hash_ = key_hash(key);
  admin_file_ = path;
  spdlog::warn("event=auth mode=required admin_key_file={} message=\"the admin key is in {} (mode 0600); "
               "export AIFN_KEY=$(cat {}) to use the CLI\"",
               path, path, path);
  return {};
}

std::string Auth::scope_for(std::string_view path) {
  if (path == "/healthz") return "";
  if (path.rfind("/v1/", 0) == 0 || path == "/v1") return "models";
  auto function_of = [](std::string_view rest) { return std::string(rest.substr(0, rest.find('/'))); };
  if (path.rfind("/fn/", 0) == 0) return "invoke:" + function_of(path.substr(4));
  constexpr std::string_view kLambda = "/2015-03-31/functions/";
  if (path.rfind(kLambda, 0) == 0) return "invoke:" + function_of(path.substr(kLambda.size()));
  if (path == "/jobs" || path.rfind("/jobs/", 0) == 0) return "invoke:?";
  return "admin";
}

Expected<Principal> Auth::check(std::string_view path, std::string_view authorization) {
  auto needed = scope_for(path);
  auto token = bearer(authorization);
  Principal p;
  if (!token.empty()) p.key = keys_.authenticate(token);
  if (open()) return p;
  if (needed.empty()) return p;
  if (auto r = ensure_admin_key(); !r) return tl::unexpected(r.error());
  if (token.empty())
    return fail(ErrorType::unauthorized, "this route needs an API key: send Authorization: Bearer <key>");
  if (needed == "models" && token.rfind("aifn_inv_", 0) == 0) return p;  // the model gateway checks it
  {
    std::lock_guard lk(mu_);
    if (hashes_equal(key_hash(token), admin_hash_)) {
      p.admin = true;
      return p;
    }
  }
  if (!p.key) return fail(ErrorType::unauthorized, "the API key is unknown or revoked");
  const auto& scopes = p.key->row.scopes;
  bool allowed = needed == "invoke:?"
                     ? std::any_of(scopes.begin(), scopes.end(),
                                   [](auto& s) { return s == "admin" || s.rfind("invoke:", 0) == 0; })
                     : scope_allows(scopes, needed);
  if (!allowed) return fail(ErrorType::forbidden, fmt::format("this key's scopes do not include {}", needed));
  return p;
}

}  // namespace aifn::security
