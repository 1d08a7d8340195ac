#include "models/token_registry.h"

#include <algorithm>

#include <openssl/sha.h>

namespace aifn::models {

namespace {

std::string digest(std::string_view token) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof md);
}

}  // namespace

bool Grant::allows(std::string_view model_name) const {
  return std::find(models.begin(), models.end(), model_name) != models.end();
}

void TokenRegistry::add(std::string_view token, std::shared_ptr<Grant> grant) {
  grants_[digest(token)] = std::move(grant);
}

void TokenRegistry::remove(std::string_view token) { grants_.erase(digest(token)); }

std::shared_ptr<Grant> TokenRegistry::find(std::string_view token) const {
  if (token.empty()) return nullptr;
  auto it = grants_.find(digest(token));
  return it == grants_.end() ? nullptr : it->second;
}

}  // namespace aifn::models
