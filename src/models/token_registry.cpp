#include "models/token_registry.h"

#include <algorithm>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/rand.h>
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

TokenScope::TokenScope(TokenRegistry* registry, std::string_view token, std::shared_ptr<Grant> grant)
    : registry_(registry), key_(digest(token)) {
  registry_->grants_[key_] = std::move(grant);
}

TokenScope::~TokenScope() { registry_->grants_.erase(key_); }

std::string TokenMinter::mint() {
  constexpr std::size_t kBytes = 32;
  if (used_ + kBytes > sizeof pool_) {
    if (RAND_bytes(pool_, sizeof pool_) != 1) throw std::runtime_error("the CSPRNG failed");
    used_ = 0;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string t = "aifn_inv_";
  t.resize(t.size() + 2 * kBytes);
  char* out = t.data() + t.size() - 2 * kBytes;
  for (std::size_t i = 0; i < kBytes; ++i) {
    out[2 * i] = kHex[pool_[used_ + i] >> 4];
    out[2 * i + 1] = kHex[pool_[used_ + i] & 15];
  }
  OPENSSL_cleanse(pool_ + used_, kBytes);  // a used token's bytes do not linger
  used_ += kBytes;
  return t;
}

std::shared_ptr<Grant> TokenRegistry::find(std::string_view token) const {
  if (token.empty()) return nullptr;
  auto it = grants_.find(digest(token));
  return it == grants_.end() ? nullptr : it->second;
}

}  // namespace aifn::models
