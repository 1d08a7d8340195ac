#include "models/upstream_test_certs.h"

#include <memory>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace aifn::models::testing {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
template <class T>
using Ptr = std::unique_ptr<T, Free>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
}

std::string to_pem(X509* x) {
  Ptr<BIO> b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(b.get(), x) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string to_pem(EVP_PKEY* k) {
  Ptr<BIO> b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Ptr<X509> parse_cert(const std::string& pem) {
  Ptr<BIO> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  check(x != nullptr, "PEM_read_bio_X509");
  return x;
}

Ptr<EVP_PKEY> parse_key(const std::string& pem) {
  Ptr<BIO> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  check(k != nullptr, "PEM_read_bio_PrivateKey");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Ptr<X509> new_cert(EVP_PKEY* key, const std::string& cn, long serial) {
  Ptr<X509> x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 7 * 24 * 3600);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return x;
}

}  // namespace

Pem make_ca(const std::string& common_name) {
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  auto x = new_cert(key.get(), common_name, 1);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(x.get(), key.get(), EVP_sha256()) > 0, "X509_sign");
  return {to_pem(x.get()), to_pem(key.get())};
}

Pem make_server_cert(const Pem& ca, const std::vector<std::string>& dns_names) {
  auto ca_cert = parse_cert(ca.cert);
  auto ca_key = parse_key(ca.key);
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  auto x = new_cert(key.get(), dns_names.empty() ? "server" : dns_names.front(), 2);
  X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get()));
  std::string san;
  for (const auto& n : dns_names) san += "DNS:" + n + ",";
  san += "IP:127.0.0.1";
  add_ext(x.get(), ca_cert.get(), NID_subject_alt_name, san);
  add_ext(x.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(x.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(x.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth");
  check(X509_sign(x.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign");
  return {to_pem(x.get()), to_pem(key.get())};
}

}  // namespace aifn::models::testing
