// Files in the data dir that the jobs subsystem keeps between runs: the
// node's lease-owner name and the generated webhook signing secret.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "jobs/jobs.h"

namespace aifn::jobs {
namespace fs = std::filesystem;
namespace {

std::string random_base64(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  RAND_bytes(raw.data(), static_cast<int>(raw.size()));
  std::string out(4 * ((bytes + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), raw.data(), static_cast<int>(bytes));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Reads PATH, or creates it with `fresh` and mode 0600 (O_EXCL: two
// processes starting at once agree on one value).
Expected<std::string> read_or_create(const fs::path& path, const std::string& fresh) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string text = fresh + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return fail(ErrorType::unavailable, fmt::format("cannot write {}", path.string()));
    return fresh;
  }
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string v = trim(ss.str());
  if (!f || v.empty()) return fail(ErrorType::unavailable, fmt::format("cannot read {}", path.string()));
  return v;
}

}  // namespace

Expected<std::string> load_or_create_webhook_secret(const std::string& configured, const std::string& data_dir,
                                                    const SecretLookup& secret) {
  auto checked = [](std::string s) -> Expected<std::string> {
    if (!s.starts_with("whsec_"))
      return fail(ErrorType::bad_request, "[jobs] webhook_secret: the value must look like whsec_<base64>");
    return s;
  };
  if (configured.starts_with("env:")) {
    const char* v = std::getenv(configured.substr(4).c_str());
    if (!v || !*v)
      return fail(ErrorType::bad_request,
                  fmt::format("[jobs] webhook_secret: environment variable {} is not set", configured.substr(4)));
    return checked(v);
  }
  if (configured.starts_with("secret:")) {
    auto name = configured.substr(7);
    auto v = secret ? secret(name) : Expected<std::optional<std::string>>();
    if (!v) return tl::unexpected(v.error());
    if (!*v) return fail(ErrorType::bad_request, fmt::format("[jobs] webhook_secret: secret {} is not set", name));
    return checked(**v);
  }
  return read_or_create(fs::path(data_dir) / "webhook_secret", "whsec_" + random_base64(32));
}

Expected<std::string> load_or_create_node_id(const std::string& data_dir) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string h = host;
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '-';
  std::string fresh = fmt::format("{}-{}", h.empty() ? "node" : h, random_base64(6));
  for (char& c : fresh)
    if (c == '+' || c == '/') c = '_';
  return read_or_create(fs::path(data_dir) / "node_id", fresh);
}

}  // namespace aifn::jobs
