#include "runtime/process.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>

#include <gtest/gtest.h>

namespace aifn::runtime {
namespace {

using namespace std::chrono_literals;

pid_t fork_exiting_with(int code) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(code);
  return pid;
}

// Waits until `pid` has exited and is a zombie, without reaping it.
void wait_for_zombie(pid_t pid) {
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
}

void run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(20ms);
  }
}

TEST(ChildReaper, AChildThatExitedBeforeItWasWatchedIsStillReaped) {
  boost::asio::io_context io;
  ChildReaper reaper(io);
  pid_t child = fork_exiting_with(7);
  wait_for_zombie(child);
  int status = -1;
  reaper.watch(child, [&](int s) { status = s; });
  run_until(io, [&] { return status != -1; });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(reaper.watched(), 0u);
}

// Exit callbacks change the pool (instances gone, waiting calls served). One
// run inside watch(), i.e. inside a pool that is starting an instance for a
// waiting call, once handed the same waiting call out twice and crashed.
TEST(ChildReaper, WatchNeverRunsAnExitCallbackInsideTheCaller) {
  boost::asio::io_context io;
  ChildReaper reaper(io);
  pid_t first = fork_exiting_with(3);
  int first_status = -1;
  reaper.watch(first, [&](int s) { first_status = s; });
  wait_for_zombie(first);
  pid_t second = fork_exiting_with(0);
  int second_status = -1;
  reaper.watch(second, [&](int s) { second_status = s; });
  EXPECT_EQ(first_status, -1);
  run_until(io, [&] { return first_status != -1 && second_status != -1; });
  ASSERT_TRUE(WIFEXITED(first_status));
  EXPECT_EQ(WEXITSTATUS(first_status), 3);
  ASSERT_TRUE(WIFEXITED(second_status));
  EXPECT_EQ(WEXITSTATUS(second_status), 0);
}

// Instances run under SCHED_BATCH (so a woken instance does not preempt
// the server's I/O thread) unless told otherwise; the program inherits it.
// Returns the policy the spawned program runs under: /proc/PID/stat's 41st
// field, 3 for SCHED_BATCH, 0 for SCHED_OTHER (-1 if it could not be read).
int policy_of_spawned(bool batch_scheduling) {
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", "set -- $(cat /proc/$$/stat); shift 40; exit $1"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.batch_scheduling = batch_scheduling;
  auto pid = spawn_process(spec);
  if (!pid) return -1;
  int status = -1;
  if (::waitpid(*pid, &status, 0) != *pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(SpawnProcess, TheInstanceRunsUnderSchedBatch) { EXPECT_EQ(policy_of_spawned(true), SCHED_BATCH); }

TEST(SpawnProcess, TheInstanceKeepsTheDefaultPolicyWhenBatchIsOff) {
  EXPECT_EQ(policy_of_spawned(false), SCHED_OTHER);
}

}  // namespace
}  // namespace aifn::runtime
