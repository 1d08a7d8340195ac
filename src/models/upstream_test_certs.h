// Test helper: a throwaway certificate authority and server certificates made
// with the OpenSSL API (EC P-256, SHA-256), so TLS tests need no files in the
// repository and no `openssl` binary. PEM strings; nothing here is secret.
#pragma once

#include <string>
#include <vector>

namespace aifn::models::testing {

struct Pem {
  std::string cert;
  std::string key;
};

// A self-signed CA certificate (CA:TRUE, keyCertSign) named `common_name`.
Pem make_ca(const std::string& common_name);
// A server certificate for `dns_names` (and 127.0.0.1) signed by `ca`.
Pem make_server_cert(const Pem& ca, const std::vector<std::string>& dns_names);

}  // namespace aifn::models::testing
