// Memory cgroups for instances (DESIGN.md §5): one cgroup per instance with
// a hard memory limit, so a function that allocates past `memory` is killed
// by the kernel and reported as out_of_memory. cgroup v2 (`memory.max`,
// `memory.events`) where the unified hierarchy is writable, else v1
// (`memory.limit_in_bytes`, `memory.oom_control`), else none (the caller then
// falls back to an rlimit). Used by the instance spawner on the io thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aifn::runtime {

class CgroupRoot {
 public:
  // Finds a writable memory cgroup below this process's own (or `forced`
  // when given) and creates a folder for this server in it. Empty when none.
  static std::optional<CgroupRoot> detect(const std::string& forced = "");
  int version() const { return version_; }
  const std::string& path() const { return path_; }
  void remove();  // removes the server folder (must be empty)

 private:
  int version_ = 0;
  std::string path_;
};

// One instance's cgroup. create() makes the folder and sets the limit;
// procs_file() is what the child writes its pid into before exec.
class InstanceCgroup {
 public:
  static std::optional<InstanceCgroup> create(const CgroupRoot& root, const std::string& name,
                                              std::uint64_t memory_bytes);
  const std::string& procs_file() const { return procs_; }
  // True when the kernel's OOM killer acted in this cgroup.
  bool oom_killed() const;
  std::vector<int> pids() const;
  // Kills every process still in the cgroup (those that left our process
  // group too) and removes the folder once it is empty.
  void kill_all() const;
  void remove() const;

 private:
  int version_ = 0;
  std::string dir_;
  std::string procs_;
};

}  // namespace aifn::runtime
