// One running instance of a function: a process group plus the Lambda
// Runtime API endpoint it polls, on a loopback port of its own. Internal to
// the runtime library; Pool owns instances, Invocations keep theirs alive
// while they run, and each instance keeps its pool alive until it has exited
// (a replaced version's pool outlives its Deployed while its instances stop).
// io thread only.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "http/server.h"
#include "runtime/netns.h"
#include "runtime/runtime.h"

namespace aifn::runtime {

class Instance : public std::enable_shared_from_this<Instance> {
 public:
  enum class State { starting, ready, stopping, dead };

  Instance(RuntimeContext& ctx, std::shared_ptr<Pool> pool, std::string id);
  ~Instance();

  // Opens the Runtime API endpoint and spawns the process.
  Expected<void> start();
  // Queues a call; the runtime takes it with its next /next.
  void enqueue(std::shared_ptr<Invocation> inv);
  // Kills the process group (and anything left in its cgroup). Calls still
  // on the instance end with `why` (or the crash reason found at exit).
  void kill(std::optional<Error> why = std::nullopt);
  // Removes a finished call; its slot goes back to the pool.
  void finish(Invocation& inv);

  const std::string& id() const { return id_; }
  State state() const { return state_; }
  int inflight = 0;
  bool retire = false;  // stop once its calls are done (a secret it holds was rotated)
  std::uint64_t calls = 0;
  Clock::time_point last_used = Clock::now();
  Clock::time_point spawned_at{};
  std::int64_t init_ms = 0;
  pid_t pid() const { return pid_; }

 private:
  boost::asio::awaitable<void> handle(http::Exchange& ex);
  boost::asio::awaitable<void> on_next(http::Exchange& ex);
  boost::asio::awaitable<void> on_response(http::Exchange& ex, const std::string& id);
  boost::asio::awaitable<void> on_error(http::Exchange& ex, const std::string& id);
  boost::asio::awaitable<void> on_init_error(http::Exchange& ex);
  boost::asio::awaitable<void> pump_output(boost::asio::posix::stream_descriptor& d, const char* stream);
  void on_exit(int status);
  void emit_line(const char* stream, std::string text);
  std::shared_ptr<Invocation> find_running(const std::string& id);
  std::vector<std::string> command_line() const;
  Expected<std::vector<std::string>> environment() const;

  RuntimeContext& ctx_;
  const std::shared_ptr<Pool> pool_;
  const std::string id_;
  State state_ = State::starting;
  pid_t pid_ = -1;
  std::unique_ptr<http::Server> api_;
  std::unique_ptr<GatewayRelay> relay_;  // network = "gateway-only" 
  std::optional<InstanceCgroup> cgroup_;
  boost::asio::posix::stream_descriptor out_;
  boost::asio::posix::stream_descriptor err_;
  boost::asio::steady_timer init_timer_;
  std::deque<std::shared_ptr<Invocation>> queued_;
  std::unordered_map<std::string, std::shared_ptr<Invocation>> running_;
  std::vector<boost::asio::steady_timer*> next_waiters_;  // parked /next polls
  std::optional<Error> kill_reason_;
  std::optional<Error> init_error_;
  std::string stderr_tail_;  // last few KiB, for crash reports
  std::string last_request_id_;
  bool pool_notified_gone_ = false;
};

}  // namespace aifn::runtime
