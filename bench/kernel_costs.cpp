// aifn-bench-kernel: what this machine charges for the kernel transitions a
// call through aifn is made of, so a throughput figure can be read against
// the host it came from. Prints `bench NAME VALUE UNIT` lines:
//
//   kernel.syscall_us          a null system call (getppid)
//   kernel.recv_eagain_us      a non-blocking recv that finds nothing
//   kernel.pipe_same_cpu_us    one byte there and back between two processes
//                              pinned to one CPU: 4 syscalls + 2 switches
//   kernel.pipe_cross_cpu_us   the same with the processes on two CPUs: each
//                              hop wakes a sleeping task on the other CPU
//   kernel.context_switch_us   (same-CPU round trip - 4 syscalls) / 2
//
// A paravirtualised guest can charge several times what bare metal does for
// both, and a call through aifn pays for each several times over
// (docs/PERFORMANCE.md, "The ceiling on this host").

#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

using Clock = std::chrono::steady_clock;

double us_per(Clock::time_point start, int n) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

double syscall_us(int n) {
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) syscall(SYS_getppid);
  return us_per(start, n);
}

double recv_eagain_us(int n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  char byte;
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) (void)recv(sv[0], &byte, 1, MSG_DONTWAIT);
  double us = us_per(start, n);
  close(sv[0]);
  close(sv[1]);
  return us;
}

// One byte to a child process and back, n times; the child runs on
// `child_cpu`, this process on CPU 0.
double pipe_round_trip_us(int child_cpu, int n) {
  int there[2], back[2];
  if (pipe(there) != 0 || pipe(back) != 0) return -1;
  pid_t child = fork();
  if (child == 0) {
    pin_to(child_cpu);
    char byte;
    for (int i = 0; i < n; ++i)
      if (read(there[0], &byte, 1) != 1 || write(back[1], &byte, 1) != 1) _exit(1);
    _exit(0);
  }
  pin_to(0);
  char byte = 0;
  auto start = Clock::now();
  for (int i = 0; i < n; ++i)
    if (write(there[1], &byte, 1) != 1 || read(back[0], &byte, 1) != 1) break;
  double us = us_per(start, n);
  waitpid(child, nullptr, 0);
  for (int fd : {there[0], there[1], back[0], back[1]}) close(fd);
  return us;
}

void emit(char const* name, double value) { std::printf("bench kernel.%s %.3f us\n", name, value); }

}  // namespace

int main() {
  constexpr int kCalls = 1'000'000;
  constexpr int kTrips = 100'000;
  double sc = syscall_us(kCalls);
  emit("syscall_us", sc);
  emit("recv_eagain_us", recv_eagain_us(kCalls));
  double same = pipe_round_trip_us(0, kTrips);
  emit("pipe_same_cpu_us", same);
  if (sysconf(_SC_NPROCESSORS_ONLN) > 1) emit("pipe_cross_cpu_us", pipe_round_trip_us(1, kTrips));
  emit("context_switch_us", (same - 4 * sc) / 2);
}
