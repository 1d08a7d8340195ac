// libFuzzer target: Runtime API error bodies and streamed error trailers,
// which the function (outside input) writes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/error_report.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto split = in.find('\n');
  auto header = split == std::string_view::npos ? std::string_view() : in.substr(0, split);
  auto body = split == std::string_view::npos ? in : in.substr(split + 1);
  auto r = aifn::runtime::parse_error_report(body, header);
  auto t = aifn::runtime::decode_error_trailer(body);
  if (r.type.size() > size || t.size() > size) __builtin_trap();  // nothing grows out of thin air
  return 0;
}
