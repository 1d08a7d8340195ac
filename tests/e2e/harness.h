// End-to-end test harness: starts the real `aifn serve` binary on a free
// loopback port with a temporary data dir and a functions folder, waits for
// it to listen, and stops it with SIGTERM. Requests go over real HTTP.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "http/client.h"

namespace aifn::e2e {

namespace fs = std::filesystem;

inline std::string source_dir() {
  const char* s = std::getenv("AIFN_SOURCE_DIR");
  return s ? s : AIFN_SOURCE_DIR_DEFAULT;
}
// AIFN_TEST_BINARY runs the tests against another build of the server, e.g.
// one with the sanitizers (docs/OPERATIONS.md, "Checking a build under load").
inline std::string binary() {
  const char* b = std::getenv("AIFN_TEST_BINARY");
  return b && *b ? b : AIFN_BINARY;
}

// Polls `cond` every 10 ms until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// Running, that is: a zombie has been killed and only waits for its parent to
// reap it. (A function's own child is reparented to PID 1 when its instance is
// killed, and on these machines PID 1 may take its time to reap it.)
inline bool process_alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');  // the command name may hold spaces and parentheses
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Writes a function folder: function.toml plus files.
inline void write_function(const fs::path& dir, const std::string& toml,
                           const std::vector<std::pair<std::string, std::string>>& files) {
  fs::create_directories(dir);
  std::ofstream(dir / "function.toml") << toml;
  for (auto& [name, text] : files) std::ofstream(dir / name) << text;
}

class Server {
 public:
  explicit Server(fs::path functions_dir, std::vector<std::string> extra = {}, std::string config_text = "") {
    data_ = fs::temp_directory_path() / ("aifn-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(data_);
    fs::create_directories(data_);
    std::vector<std::string> args = {binary(), "serve", "--listen", "127.0.0.1:0", "--functions",
                                     functions_dir.string()};
    if (std::find(extra.begin(), extra.end(), "--data") == extra.end()) {
      args.push_back("--data");
      args.push_back(data_.string());
    }
    if (!config_text.empty()) {
      std::ofstream(data_ / "aifn.toml") << config_text;
      args.push_back("--config");
      args.push_back((data_ / "aifn.toml").string());
    }
    for (auto& e : extra) args.push_back(e);
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(p[1], 1);
      ::dup2(p[1], 2);
      ::close(p[0]);
      ::close(p[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    log_fd_ = p[0];
    reader_ = std::thread([this] {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(log_fd_, buf, sizeof buf)) > 0) {
        std::lock_guard lk(mu_);
        log_.append(buf, n);
      }
    });
    bool up = eventually([&] {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {  // exited: no point waiting
        pid_ = -1;
        if (reader_.joinable()) reader_.join();
        return true;
      }
      return port_from_log() != 0;
    }, std::chrono::seconds(20)) && pid_ > 0;
    if (!up) {
      stop();
      throw std::runtime_error("aifn did not start: " + log());
    }
    port_ = port_from_log();
  }
  ~Server() {
    const bool stopped_before = pid_ <= 0;
    int st = stop();
    // Against another build (AIFN_TEST_BINARY, e.g. the sanitized one) an
    // unclean exit is a finding: a fault that killed it, or leaks at exit.
    if (!stopped_before && std::getenv("AIFN_TEST_BINARY") && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
      ADD_FAILURE() << "aifn (" << binary() << ") did not exit cleanly: status " << st;
    if (::testing::Test::HasFailure()) {
      auto text = log();
      std::fprintf(stderr, "--- the server's log (last 8 KiB) ---\n%s\n",
                   text.substr(text.size() > 8192 ? text.size() - 8192 : 0).c_str());
    }
    fs::remove_all(data_);
  }

  // SIGTERM and wait; returns the exit status.
  int stop(std::chrono::seconds limit = std::chrono::seconds(20)) {
    if (pid_ <= 0) return exit_status_;
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto until = std::chrono::steady_clock::now() + limit;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    ::close(log_fd_);
    exit_status_ = status;
    return status;
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int port() const { return port_; }
  int pid() const { return pid_; }
  const fs::path& data_dir() const { return data_; }
  std::string log() {
    std::lock_guard lk(mu_);
    return log_;
  }

  http::ClientResponse post(const std::string& path, const std::string& body,
                            std::map<std::string, std::string> headers = {}) {
    auto r = http::fetch({.method = "POST", .url = url(path), .body = body, .headers = std::move(headers)});
    if (!r) throw std::runtime_error("request failed: " + r.error().message);
    return *r;
  }
  http::ClientResponse get(const std::string& path) {
    auto r = http::fetch({.method = "GET", .url = url(path)});
    if (!r) throw std::runtime_error("request failed: " + r.error().message);
    return *r;
  }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  int port_from_log() {
    std::lock_guard lk(mu_);
    auto pos = log_.find("event=listening url=http://127.0.0.1:");
    if (pos == std::string::npos) return 0;
    return std::atoi(log_.c_str() + pos + 37);
  }
  fs::path data_;
  int pid_ = -1;
  int port_ = 0;
  int log_fd_ = -1;
  int exit_status_ = 0;
  std::thread reader_;
  std::mutex mu_;
  std::string log_;
};

inline boost::json::value json(const std::string& s) { return boost::json::parse(s); }

// Runs the aifn CLI through /bin/sh with `prefix` in front (env assignments
// such as "AIFN_KEY=...", or a pipe into it); returns stdout and stderr together.
inline std::string run_cli(const std::string& args, const std::string& prefix = "") {
  std::string out;
  if (FILE* p = ::popen((prefix + " " + binary() + " " + args + " 2>&1").c_str(), "r")) {
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  return out;
}

// Children of `pid` (direct), from /proc.
inline std::vector<int> children_of(int pid) {
  std::vector<int> out;
  for (auto& e : fs::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat;
    std::getline(f, stat);
    auto rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    int ppid = 0;
    char state;
    std::sscanf(stat.c_str() + rp + 2, "%c %d", &state, &ppid);
    if (ppid == pid && state != 'Z') out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace aifn::e2e
