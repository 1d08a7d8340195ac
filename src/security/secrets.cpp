#include "security/secrets.h"

#include <cctype>

#include <fmt/format.h>

#include "base/units.h"

namespace aifn::security {

bool valid_secret_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

Expected<void> Secrets::set(const std::string& name, std::string_view value) {
  if (!valid_secret_name(name))
    return fail(ErrorType::bad_request,
                fmt::format("\"{}\" is not a secret name (letters, digits and _, not starting with a digit)", name));
  if (value.size() > kMaxSecretBytes)
    return fail(ErrorType::payload_too_large, "a secret may hold at most 64 KiB");
  return store_.put_secret({name, box_.seal(value), epoch_ms_now()});
}

Expected<std::optional<std::string>> Secrets::get(const std::string& name) {
  auto row = store_.get_secret(name);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<std::string>();
  auto value = box_.unseal((*row)->sealed);
  if (!value) return tl::unexpected(Error(value.error().type, fmt::format("secret {}: {}", name, value.error().message)));
  return std::optional<std::string>(std::move(*value));
}

Expected<std::vector<store::SecretRow>> Secrets::list() { return store_.list_secrets(); }

Expected<bool> Secrets::remove(const std::string& name) { return store_.delete_secret(name); }

}  // namespace aifn::security
