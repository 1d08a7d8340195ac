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
  // nullptr when the token is unknown or its call has finished.
  std::shared_ptr<Grant> find(std::string_view token) const;
  std::size_t size() const { return grants_.size(); }

 private:
  friend class TokenScope;
  std::unordered_map<std::string, std::shared_ptr<Grant>> grants_;  // key: SHA-256 of the token
};

// Registers a token for a grant while the scope lives (the call runs); the
// digest is computed once, here.
class TokenScope {
 public:
  TokenScope(TokenRegistry* registry, std::string_view token, std::shared_ptr<Grant> grant);
  ~TokenScope();
  TokenScope(const TokenScope&) = delete;
  TokenScope& operator=(const TokenScope&) = delete;

 private:
  TokenRegistry* registry_;
  std::string key_;
};

// Makes invocation tokens: "aifn_inv_" and 64 hex digits (256 random bits
// from OpenSSL's CSPRNG). Random bytes are drawn 4 KiB at a time: one
// RAND_bytes per call was 1.8 % of the machine's CPU (about 3 % of the
// server's) at 15,000-19,000 calls/s.
// io thread only.
class TokenMinter {
 public:
  std::string mint();

 private:
  unsigned char pool_[4096];
  std::size_t used_ = sizeof pool_;  // empty until the first mint()
};

}  // namespace aifn::models
