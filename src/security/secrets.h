// aifn::security::Secrets — the secret store (DESIGN.md §9): values sealed
// with the master key before they reach the store, names only in listings.
// Functions get the secrets their manifest lists as environment variables;
// providers resolve "secret:NAME" through get(). Thread-safe (the store and
// the box are).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "security/secret_box.h"
#include "store/store.h"

namespace aifn::security {

constexpr std::size_t kMaxSecretBytes = 64 * 1024;

class Secrets {
 public:
  Secrets(store::Store& store, SecretBox box) : store_(store), box_(std::move(box)) {}

  // Names are env-var style: [A-Za-z_][A-Za-z0-9_]{0,127}; values up to 64 KiB.
  Expected<void> set(const std::string& name, std::string_view value);
  Expected<std::optional<std::string>> get(const std::string& name);
  Expected<std::vector<store::SecretRow>> list();  // names and update times only
  Expected<bool> remove(const std::string& name);

 private:
  store::Store& store_;
  SecretBox box_;
};

bool valid_secret_name(std::string_view name);

}  // namespace aifn::security
