#include "runtime/process.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::runtime {
namespace {

// Writes a decimal number with async-signal-safe calls only (after fork).
void write_pid(int fd, pid_t pid) {
  char buf[24];
  int n = 0;
  char tmp[24];
  do {
    tmp[n++] = static_cast<char>('0' + pid % 10);
    pid /= 10;
  } while (pid > 0);
  for (int i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  buf[n++] = '\n';
  (void)!::write(fd, buf, n);
}

// In the child after fork (no allocation): creates `path`'s folders on the
// fresh /tmp and attaches the detached mount `fd` (from open_tree) there.
bool bind_back(int fd, const char* path) {
  char buf[4096];
  std::size_t n = std::strlen(path);
  if (n >= sizeof buf) return false;
  for (std::size_t i = 1; i <= n; ++i) {
    if (path[i] != '/' && path[i] != '\0') continue;
    std::memcpy(buf, path, i);
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return false;
  }
  return ::move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) == 0;
}

[[noreturn]] void child_fail(const char* what) {
  const char* msg = "aifn: instance start failed: ";
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  const char* e = std::strerror(errno);
  (void)!::write(2, e, std::strlen(e));
  (void)!::write(2, "\n", 1);
  ::_exit(127);
}

}  // namespace

Expected<pid_t> spawn_process(const SpawnSpec& spec) {
  if (spec.argv.empty()) return fail(ErrorType::internal, "nothing to start: empty command line");
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls are allowed (the server has other threads).
  std::vector<char*> argv, envp;
  for (auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string exe = spec.argv[0];
  if (exe.find('/') == std::string::npos) {
    // The instance's clean environment has no PATH of ours, so a bare command
    // is looked up here, on the server's PATH, then the usual places.
    const char* server_path = std::getenv("PATH");
    std::string dirs = std::string(server_path ? server_path : "") + ":/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
      std::size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      auto dir = dirs.substr(start, end - start);
      start = end + 1;
      if (dir.empty()) continue;
      auto cand = dir + "/" + exe;
      if (::access(cand.c_str(), X_OK) == 0) {
        exe = cand;
        break;
      }
    }
  }
  // Folders under /tmp the instance needs through its private /tmp: the
  // function folder, the folders of the program and script it runs (a
  // runtime bootstrap of a checkout under /tmp), and folders its environment
  // names (NODE_PATH=/tmp/x/node_modules, a ':' list too). Computed before fork.
  std::vector<std::string> keep;
  if (spec.private_tmp) {
    auto add = [&](const std::string& dir) {
      if (dir.rfind("/tmp/", 0) == 0 && std::find(keep.begin(), keep.end(), dir) == keep.end()) keep.push_back(dir);
    };
    add(spec.cwd);
    add(std::filesystem::path(exe).parent_path().string());
    for (std::size_t i = 1; i < spec.argv.size(); ++i)
      if (spec.argv[i].rfind("/tmp/", 0) == 0) add(std::filesystem::path(spec.argv[i]).parent_path().string());
    for (const std::string& kv : spec.env) {
      std::string_view rest(kv);
      rest.remove_prefix(std::min(rest.size(), rest.find('=') + 1));
      while (!rest.empty()) {
        std::string piece(rest.substr(0, rest.find(':')));
        rest.remove_prefix(std::min(rest.size(), piece.size() + 1));
        std::error_code ec;
        if (piece.rfind("/tmp/", 0) == 0 && std::filesystem::is_directory(piece, ec)) add(piece);
      }
    }
  }
  std::vector<int> trees(keep.size(), -1);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return fail(ErrorType::unavailable, fmt::format("fork failed: {}", std::strerror(e)));
  }
  if (pid == 0) {
    // Child: default signal dispositions, unblocked.
    for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setpgid(0, 0);
    // SCHED_BATCH: an instance woken by its next event does not preempt the
    // server's I/O thread, which first finishes the events it has in hand
    // (exec hello 1.08-1.22x at 16 connections on an otherwise idle machine,
    // p50 at one connection the same). It does not preempt anything else
    // either, so beside other CPU-bound work it costs latency instead:
    // `[instances] scheduling = "normal"` turns it off (docs/OPERATIONS.md).
    // Allowed to any user; inherited by the program.
    if (spec.batch_scheduling) {
      struct sched_param batch{};
      ::sched_setscheduler(0, SCHED_BATCH, &batch);
    }
    if (!spec.cgroup_procs.empty()) {
      int fd = ::open(spec.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) child_fail("joining the memory cgroup");
      write_pid(fd, ::getpid());
      ::close(fd);
    }
    if (spec.rlimit_as) {
      struct rlimit rl{*spec.rlimit_as, *spec.rlimit_as};
      ::setrlimit(RLIMIT_AS, &rl);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (spec.stdout_fd >= 0) ::dup2(spec.stdout_fd, 1);
    if (spec.stderr_fd >= 0) ::dup2(spec.stderr_fd, 2);
    // Isolation after the pipes are in place, so a failure shows in the
    // instance's stderr (and so in the 502 the caller gets).
    if (spec.max_open_files) {
      struct rlimit rl{spec.max_open_files, spec.max_open_files};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) child_fail("limiting open files");
    }
    if (spec.max_processes) {
      struct rlimit rl{spec.max_processes, spec.max_processes};
      if (::setrlimit(RLIMIT_NPROC, &rl) != 0) child_fail("limiting processes");
    }
    if (spec.private_tmp) {
      // A mount namespace of its own: the tmpfs on /tmp is seen by this
      // instance only and vanishes with it. The folders in `keep` (under
      // /tmp) are bound back in at the same paths.
      if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        child_fail("making a mount namespace");
      // Detached copies of the folders' mounts, taken before /tmp is covered.
      for (std::size_t i = 0; i < keep.size(); ++i) {
        trees[i] = ::open_tree(AT_FDCWD, keep[i].c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (trees[i] < 0) child_fail("opening a folder under /tmp that the instance needs");
      }
      if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777") != 0)
        child_fail("mounting a private /tmp");
      for (std::size_t i = 0; i < keep.size(); ++i)
        if (!bind_back(trees[i], keep[i].c_str())) child_fail("binding a folder back into the private /tmp");
    }
    if (spec.netns_fd >= 0 && ::setns(spec.netns_fd, CLONE_NEWNET) != 0)
      child_fail("entering the instance's network namespace");
    if (spec.uid) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(spec.gid) != 0 || ::setuid(*spec.uid) != 0)
        child_fail("switching to the instance user");
    }
    // Close everything else the server holds (sockets, the store, pipes).
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) child_fail("entering the function folder");
    ::execve(exe.c_str(), argv.data(), envp.data());
    child_fail(argv[0]);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::setpgid(pid, pid);  // also from the parent, so kill_group works at once
  return pid;
}

void kill_group(pid_t pgid) {
  if (pgid > 0) ::kill(-pgid, SIGKILL);
}

ChildReaper::ChildReaper(boost::asio::io_context& io) : signals_(io, SIGCHLD) { arm(); }

void ChildReaper::watch(pid_t pid, std::function<void(int)> on_exit) {
  // A child that exited before this line still has its SIGCHLD waiting in
  // signals_, so the next reap() finds it. No reap() here: it would run other
  // instances' exit callbacks inside the caller, e.g. in the middle of the
  // pool handing instances to waiting calls.
  callbacks_[pid] = std::move(on_exit);
}

void ChildReaper::arm() {
  signals_.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    reap();
    arm();
  });
}

void ChildReaper::reap() {
  // SIGCHLDs coalesce: reap every child that is ready, but only ours, so
  // processes started elsewhere (none today) are left to their owner.
  std::vector<std::pair<std::function<void(int)>, int>> done;
  for (auto it = callbacks_.begin(); it != callbacks_.end();) {
    int status = 0;
    pid_t r = ::waitpid(it->first, &status, WNOHANG);
    if (r == it->first || (r < 0 && errno == ECHILD)) {
      done.emplace_back(std::move(it->second), r < 0 ? 0 : status);
      it = callbacks_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [cb, status] : done) cb(status);
}

std::string resolve_interpreter(const std::string& name, const std::string& probe_args) {
  std::string cmd = name + " " + probe_args + " 2>/dev/null";
  std::array<char, 4096> buf{};
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (!out.empty() && out.front() == '/' && ::access(out.c_str(), X_OK) == 0) return out;
  return name;
}

}  // namespace aifn::runtime
