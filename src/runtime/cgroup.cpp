#include "runtime/cgroup.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

namespace aifn::runtime {
namespace fs = std::filesystem;
namespace {

bool write_file(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (!f) return false;
  f << value;
  f.flush();
  return static_cast<bool>(f);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "9:memory:/a/b" lines of /proc/self/cgroup -> the path for one controller
// (v1) or for the unified hierarchy ("0::/x").
std::optional<std::string> own_cgroup(bool v2) {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    auto controllers = line.substr(a + 1, b - a - 1);
    auto path = line.substr(b + 1);
    if (v2 && line.rfind("0::", 0) == 0) return path;
    if (!v2) {
      std::stringstream cs(controllers);
      std::string c;
      while (std::getline(cs, c, ','))
        if (c == "memory") return path;
    }
  }
  return std::nullopt;
}

bool try_make(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  return !ec && fs::is_directory(dir);
}

}  // namespace

std::optional<CgroupRoot> CgroupRoot::detect(const std::string& forced) {
  std::string server_dir = "aifn-" + std::to_string(::getpid());
  auto attempt = [&](int version, const std::string& base) -> std::optional<CgroupRoot> {
    std::string dir = base + "/" + server_dir;
    if (!try_make(dir)) return std::nullopt;
    if (version == 2) {
      // v2 needs the memory controller enabled for our children.
      write_file(dir + "/cgroup.subtree_control", "+memory");
      if (read_file(dir + "/cgroup.controllers").find("memory") == std::string::npos) {
        ::rmdir(dir.c_str());
        return std::nullopt;
      }
    } else if (!fs::exists(dir + "/memory.limit_in_bytes")) {
      ::rmdir(dir.c_str());
      return std::nullopt;
    }
    CgroupRoot r;
    r.version_ = version;
    r.path_ = dir;
    return r;
  };
  if (!forced.empty()) {
    int v = fs::exists(forced + "/cgroup.controllers") ? 2 : 1;
    return attempt(v, forced);
  }
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
    if (auto own = own_cgroup(true))
      if (auto r = attempt(2, "/sys/fs/cgroup" + *own)) return r;
  }
  if (fs::exists("/sys/fs/cgroup/memory")) {
    if (auto own = own_cgroup(false))
      if (auto r = attempt(1, "/sys/fs/cgroup/memory" + (*own == "/" ? std::string() : *own))) return r;
  }
  return std::nullopt;
}

void CgroupRoot::remove() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

std::optional<InstanceCgroup> InstanceCgroup::create(const CgroupRoot& root, const std::string& name,
                                                     std::uint64_t memory_bytes) {
  InstanceCgroup g;
  g.version_ = root.version();
  g.dir_ = root.path() + "/" + name;
  if (!try_make(g.dir_)) return std::nullopt;
  g.procs_ = g.dir_ + "/cgroup.procs";
  bool ok;
  if (g.version_ == 2) {
    ok = write_file(g.dir_ + "/memory.max", std::to_string(memory_bytes));
    write_file(g.dir_ + "/memory.swap.max", "0");
  } else {
    ok = write_file(g.dir_ + "/memory.limit_in_bytes", std::to_string(memory_bytes));
    // Without swap accounting this file is absent; the limit still holds.
    write_file(g.dir_ + "/memory.memsw.limit_in_bytes", std::to_string(memory_bytes));
  }
  if (!ok) {
    ::rmdir(g.dir_.c_str());
    return std::nullopt;
  }
  return g;
}

bool InstanceCgroup::oom_killed() const {
  // v2: memory.events "oom_kill N"; v1: memory.oom_control "oom_kill N"
  // (kernels since 4.13), else a hit limit in memory.failcnt.
  std::string text = read_file(dir_ + (version_ == 2 ? "/memory.events" : "/memory.oom_control"));
  auto pos = text.find("oom_kill ");
  if (pos != std::string::npos) return std::stol(text.substr(pos + 9)) > 0;
  if (version_ == 1) {
    auto failcnt = read_file(dir_ + "/memory.failcnt");
    return !failcnt.empty() && std::stol(failcnt) > 0;
  }
  return false;
}

std::vector<int> InstanceCgroup::pids() const {
  std::vector<int> out;
  std::ifstream f(procs_);
  int pid;
  while (f >> pid) out.push_back(pid);
  return out;
}

void InstanceCgroup::kill_all() const {
  for (int pid : pids()) ::kill(pid, SIGKILL);
}

void InstanceCgroup::remove() const {
  if (::rmdir(dir_.c_str()) != 0 && errno != ENOENT)
    spdlog::debug("event=cgroup_remove_failed dir={} errno={}", dir_, errno);
}

}  // namespace aifn::runtime
