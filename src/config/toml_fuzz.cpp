// libFuzzer target for manifests: bytes written as function.toml and as
// aifn.toml, loaded; a bad file must end in ConfigError, nothing else.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("aifn-toml-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d / "fn");
    return d;
  }();
  {
    std::ofstream f(dir / "fn" / "function.toml", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    (void)aifn::config::load_function((dir / "fn").string());
  } catch (const aifn::config::ConfigError&) {
  }
  try {
    (void)aifn::config::load_server((dir / "fn" / "function.toml").string());
  } catch (const aifn::config::ConfigError&) {
  }
  return 0;
}
