// aifn::models::TokenRegistry — the invocation tokens the model gateway
// accepts (DESIGN.md §5). A function call's token is registered when its
// Invocation is created and removed when the call finishes, so /v1/* takes it
// only while the call runs, and only for the models the function listed
// (`models` in function.toml: [[models]] names or "provider/model" targets,
// matched exactly). Tokens used by the call are added to that call's Grant,
// which the invoke path writes into the call's usage record.
//
// Tokens are held by their SHA-256 digest: a lookup never compares the secret
// itself byte by byte, and the registry holds no usable token.
// io thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace aifn::models {

// What one call's token allows, and the model tokens it used so far.
struct Grant {
  std::string function;
  std::string version;
  std::string request_id;
  std::vector<std::string> models;  // what the function may call
  // Usage, summed over the call's model requests; `model` is the last
  // "provider/model" target used (a usage record has one model field).
  std::string model;
  std::int64_t tokens_in = 0;
  std::int64_t tokens_out = 0;
  // Set once the call's usage record was written: tokens that arrive later
  // (a /v1 request still finishing) are recorded on their own.
  bool recorded = false;

  bool allows(std::string_view model_name) const;
  void add(const std::string& target, std::int64_t in, std::int64_t out) {
    model = target;
    tokens_in += in;
    tokens_out += out;
  }
};

class TokenRegistry {
 public:
  void add(std::string_view token, std::shared_ptr<Grant> grant);
  void remove(std::string_view token);
  // nullptr when the token is unknown or its call has finished.
  std::shared_ptr<Grant> find(std::string_view token) const;
  std::size_t size() const { return grants_.size(); }

 private:
  std::unordered_map<std::string, std::shared_ptr<Grant>> grants_;  // key: SHA-256 of the token
};

// Removes a token from the registry when the call's scope ends.
class TokenScope {
 public:
  TokenScope(TokenRegistry* registry, std::string token) : registry_(registry), token_(std::move(token)) {}
  ~TokenScope() {
    if (registry_ && !token_.empty()) registry_->remove(token_);
  }
  TokenScope(const TokenScope&) = delete;
  TokenScope& operator=(const TokenScope&) = delete;

 private:
  TokenRegistry* registry_;
  std::string token_;
};

}  // namespace aifn::models
