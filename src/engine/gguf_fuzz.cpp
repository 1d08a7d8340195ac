// libFuzzer target for the GGUF reader: any byte string must give a file or an
// error, never a crash. Build with -DAIFN_FUZZ=ON and clang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = aifn::engine::GgufFile::from_memory(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!f) return 0;
  for (const std::string& k : (*f)->keys()) {
    (void)(*f)->get_string(k);
    (void)(*f)->get_int(k);
    (void)(*f)->get_float(k);
    (void)(*f)->get_string_array(k);
    (void)(*f)->get_float_array(k);
    (void)(*f)->get_int_array(k);
  }
  volatile uint8_t sink = 0;
  for (const auto& t : (*f)->tensors())
    if (t.nbytes > 0) sink = static_cast<uint8_t>(sink ^ t.data[0] ^ t.data[t.nbytes - 1]);
  return 0;
}
