// Function folders for the end-to-end tests: each scenario gets its own
// manifest around the shared probe function in tests/functions/probe.
#pragma once

#include <string>
#include <vector>

#include "harness.h"

namespace aifn::e2e {

struct FnDef {
  std::string name;
  std::string toml_extra;  // manifest lines after name/runtime/handler
  std::string runtime = "node";
  std::string handler = "index.handler";
};

// A temporary functions folder holding the given functions.
class FunctionsDir {
 public:
  FunctionsDir() : FunctionsDir(std::initializer_list<FnDef>{}) {}
  FunctionsDir(std::initializer_list<FnDef> fns) {
    static int n = 0;
    dir_ = fs::temp_directory_path() / ("aifn-fns-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (auto& f : fns) add(f);
  }
  FunctionsDir(const FunctionsDir&) = delete;
  FunctionsDir& operator=(const FunctionsDir&) = delete;
  ~FunctionsDir() { fs::remove_all(dir_); }
  void add(const FnDef& f) {
    auto d = dir_ / f.name;
    fs::create_directories(d);
    fs::path probe = fs::path(source_dir()) / "tests/functions/probe";
    for (auto& e : fs::directory_iterator(probe)) fs::copy_file(e.path(), d / e.path().filename(),
                                                                fs::copy_options::overwrite_existing);
    std::ofstream(d / "function.toml") << "name = \"" << f.name << "\"\nruntime = \"" << f.runtime
                                       << "\"\nhandler = \"" << f.handler << "\"\n" << f.toml_extra << "\n";
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

inline int json_int(const std::string& body, const char* key) {
  return static_cast<int>(json(body).at(key).to_number<std::int64_t>());
}

inline std::string error_type(const std::string& body) {
  return boost::json::value_to<std::string>(json(body).at("error").at("type"));
}

inline std::size_t instance_count(Server& s, const std::string& fn) {
  auto r = s.get("/admin/functions/" + fn + "/instances");
  return json(r.body).at("instances").as_array().size();
}

}  // namespace aifn::e2e
