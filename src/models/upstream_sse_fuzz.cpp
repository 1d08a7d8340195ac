// libFuzzer: the SSE decoder over arbitrary bytes split at an arbitrary point.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/upstream_sse.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t cut = size ? data[0] % (size + 1) : 0;
  aifn::models::SseDecoder d(1024);
  std::vector<std::string> events;
  d.feed(all.substr(0, cut), events);
  d.feed(all.substr(cut), events);
  d.finish(events);
  return 0;
}
