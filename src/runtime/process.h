// Starting and reaping instance processes. spawn_process() forks a child
// into its own process group (pgid == pid, so kill_group() reaches every
// descendant that did not leave the group), optionally into a memory cgroup,
// with a clean environment, stdin from /dev/null and stdout/stderr to the
// given pipes, and the isolation asked for (rlimits, a private /tmp, an
// unprivileged user). ChildReaper turns SIGCHLD into per-pid callbacks on the io
// thread. Both are used on the io thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "base/error.h"

namespace aifn::runtime {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path or found in PATH of env
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string cwd;
  std::string cgroup_procs;                // cgroup.procs to join before exec; "" = none
  std::optional<std::uint64_t> rlimit_as;  // fallback memory limit
  std::uint64_t max_open_files = 0;        // RLIMIT_NOFILE; 0 = inherit
  std::uint64_t max_processes = 0;         // RLIMIT_NPROC; 0 = inherit
  bool private_tmp = false;                // own mount namespace with a tmpfs /tmp
  bool batch_scheduling = true;            // SCHED_BATCH instead of the default policy
  int netns_fd = -1;                       // a network namespace to enter (gateway-only)
  std::optional<uid_t> uid;                // run as this user (and gid) ...
  gid_t gid = 0;                           // ... dropping every supplementary group
  int stdout_fd = -1;
  int stderr_fd = -1;
};

Expected<pid_t> spawn_process(const SpawnSpec& spec);
// SIGKILL to the whole process group.
void kill_group(pid_t pgid);

class ChildReaper {
 public:
  explicit ChildReaper(boost::asio::io_context& io);
  // `on_exit` receives the wait status (see WIFSIGNALED etc.).
  void watch(pid_t pid, std::function<void(int status)> on_exit);
  std::size_t watched() const { return callbacks_.size(); }

 private:
  void arm();
  void reap();
  boost::asio::signal_set signals_;
  std::unordered_map<pid_t, std::function<void(int)>> callbacks_;
};

// Resolves an interpreter once ("python3" behind a pyenv shim costs ~60 ms
// per start): the real executable path, or the name itself when unknown.
std::string resolve_interpreter(const std::string& name, const std::string& probe_args = "");

}  // namespace aifn::runtime
