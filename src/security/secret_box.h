// aifn::security::SecretBox — seals secrets at rest with libsodium's
// secretbox (XSalsa20-Poly1305) under one master key: AIFN_MASTER_KEY (64 hex
// characters) or DATA_DIR/master.key, created on first use with mode 0600.
// Immutable after open(): safe from any thread.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "base/error.h"

namespace aifn::security {

class SecretBox {
 public:
  // `env_key`: the AIFN_MASTER_KEY value or "" to use the key file.
  static Expected<SecretBox> open(const std::string& data_dir, const std::string& env_key);
  // base64(nonce || ciphertext)
  std::string seal(std::string_view plaintext) const;
  // Fails (internal) when the text was not sealed with this key or was altered.
  Expected<std::string> unseal(std::string_view sealed) const;

 private:
  std::array<unsigned char, 32> key_{};
};

// Writes `bytes` to `path` with mode 0600, created exclusively (a file that
// exists already is an error). For the master key and the admin key.
Expected<void> write_private_file(const std::string& path, std::string_view bytes);

}  // namespace aifn::security
