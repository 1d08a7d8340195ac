#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "gateway/gateway.h"

namespace aifn::gateway {

std::string new_request_id() {
  // UUID v4 text from a per-thread generator seeded once from the OS:
  // unique, not secret (tokens use libsodium).
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t a = rng(), b = rng();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                     b & 0xffffffffffffULL);
}

std::string request_id_for(std::string_view v) {
  if (v.empty() || v.size() > 128) return new_request_id();
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':'))
      return new_request_id();
  return std::string(v);
}

}  // namespace aifn::gateway
