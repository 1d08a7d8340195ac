// libFuzzer target for extract_tar_gz: every input is unpacked into a fresh
// temporary folder with small limits, which is then removed. ASan catches
// memory errors; the assertion catches anything written beside that folder.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "functions/archive.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path base = [] {
    std::string tmpl = (fs::temp_directory_path() / "aifn-archive-fuzz-XXXXXX").string();
    return fs::path(mkdtemp(tmpl.data()));
  }();
  const fs::path dest = base / "dest";
  fs::create_directory(dest);
  aifn::functions::ExtractLimits limits;
  limits.max_total_bytes = 1 << 20;
  limits.max_entries = 64;
  (void)aifn::functions::extract_tar_gz(std::string_view(reinterpret_cast<const char*>(data), size), dest.string(),
                                        limits);
  // Nothing may appear next to dest.
  for (const auto& e : fs::directory_iterator(base))
    if (e.path() != dest) __builtin_trap();
  fs::remove_all(dest);
  return 0;
}
