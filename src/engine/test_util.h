// Helpers shared by the engine's unit tests: where the reference vectors live
// and file reading. Test-only.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace aifn::engine::testing {

// $AIFN_TESTDATA, else $AIFN_SOURCE_DIR/../shared/testdata/engine, else
// /work/shared/testdata/engine.
inline std::string testdata_dir() {
  if (const char* d = std::getenv("AIFN_TESTDATA"); d != nullptr && *d != 0) return d;
  if (const char* s = std::getenv("AIFN_SOURCE_DIR"); s != nullptr && *s != 0) {
    std::filesystem::path p = std::filesystem::path(s) / ".." / "shared" / "testdata" / "engine";
    if (std::filesystem::exists(p)) return p.string();
  }
  return "/work/shared/testdata/engine";
}

// Stems (file names without .gguf) of every reference model.
inline std::vector<std::string> reference_models() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(testdata_dir(), ec))
    if (e.path().extension() == ".gguf") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace aifn::engine::testing
