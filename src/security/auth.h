// aifn::security::Auth — who may call which route (DESIGN.md §9).
// auth = "required": every route but /healthz needs a key with the route's
// scope; "off": nothing is checked; "auto" (the default): required, except
// on a loopback listener when no AIFN_ADMIN_KEY is set and no API key was
// ever created — then the server is open and says so at start. When auth is
// required without AIFN_ADMIN_KEY, an admin key is generated into
// DATA_DIR/admin.key (mode 0600) and its path logged.
// Thread-safe.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "security/api_keys.h"

namespace aifn::security {

struct AuthOptions {
  std::string mode = "auto";  // auto | required | off
  std::string listen_host;    // from `listen`
  std::string admin_key;      // AIFN_ADMIN_KEY, "" = none
  std::string data_dir;
};

struct Principal {
  std::optional<ApiKey> key;  // the API key used, if any
  bool admin = false;         // the admin key
};

class Auth {
 public:
  Auth(AuthOptions opts, ApiKeys& keys) : opts_(std::move(opts)), keys_(keys) {}
  // Logs the mode; writes the admin key file when auth is required.
  Expected<void> start();
  bool open() const;
  // The scope a path needs: "" (public), "admin", "models", "invoke:NAME",
  // or "invoke:?" (any invoke scope: the job routes).
  static std::string scope_for(std::string_view path);
  // Checks `Authorization: Bearer …` for `path`: 401 unauthorized without a
  // valid key, 403 forbidden when the key lacks the scope. On /v1/* an
  // invocation token ("aifn_inv_…") is let through for the model gateway to
  // check. An open server accepts anything, using a valid API key if given.
  Expected<Principal> check(std::string_view path, std::string_view authorization);
  // After a key was created: an "auto" server that stops being open gets
  // its admin key now, before anyone is locked out.
  Expected<void> key_created() { return open() ? Expected<void>() : ensure_admin_key(); }
  const std::string& admin_key_file() const { return admin_file_; }

 private:
  Expected<void> ensure_admin_key();
  AuthOptions opts_;
  ApiKeys& keys_;
  std::mutex mu_;
  std::string admin_hash_;  // guarded by mu_ (set once)
  std::string admin_file_;  // guarded by mu_ (set once)
};

}  // namespace aifn::security
