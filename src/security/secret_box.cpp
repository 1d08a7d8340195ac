#include "security/secret_box.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

namespace aifn::security {
namespace fs = std::filesystem;

Expected<void> write_private_file(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail(ErrorType::internal, fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return fail(ErrorType::internal, fmt::format("cannot write {}", path));
  return {};
}

Expected<SecretBox> SecretBox::open(const std::string& data_dir, const std::string& env_key) {
  if (sodium_init() < 0) return fail(ErrorType::internal, "libsodium failed to initialise");
  SecretBox box;
  std::string hex = env_key;
  if (hex.empty()) {
    auto path = (fs::path(data_dir) / "master.key").string();
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    if (!fs::exists(path)) {
      unsigned char raw[crypto_secretbox_KEYBYTES];
      randombytes_buf(raw, sizeof raw);
      char text[2 * crypto_secretbox_KEYBYTES + 1];
      sodium_bin2hex(text, sizeof text, raw, sizeof raw);
      sodium_memzero(raw, sizeof raw);
      if (auto r = write_private_file(path, std::string(text) + "\n"); !r) return tl::unexpected(r.error());
    }
    std::ifstream in(path);
    in >> hex;
  }
  std::size_t len = 0;
  if (hex.size() != 2 * crypto_secretbox_KEYBYTES ||
      sodium_hex2bin(box.key_.data(), box.key_.size(), hex.data(), hex.size(), nullptr, &len, nullptr) != 0 ||
      len != box.key_.size())
    return fail(ErrorType::internal, env_key.empty() ? "the master key file is not 64 hex characters"
                                                     : "AIFN_MASTER_KEY is not 64 hex characters");
  return box;
}

std::string SecretBox::seal(std::string_view plaintext) const {
  std::string raw(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(raw.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        plaintext.size(), nonce, key_.data());
  std::string b64(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  b64.resize(std::strlen(b64.c_str()));
  return b64;
}

Expected<std::string> SecretBox::unseal(std::string_view sealed) const {
  std::string raw(sealed.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), sealed.data(), sealed.size(),
                        nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return fail(ErrorType::internal, "a stored secret is damaged");
  auto* nonce = reinterpret_cast<const unsigned char*>(raw.data());
  std::string out(len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()), nonce + crypto_secretbox_NONCEBYTES,
                                 len - crypto_secretbox_NONCEBYTES, nonce, key_.data()) != 0)
    return fail(ErrorType::internal, "a stored secret cannot be opened with this master key");
  return out;
}

}  // namespace aifn::security
