// aifn::runtime — instances of deployed functions and the scheduler that
// hands calls to them (DESIGN.md §5). A Pool serves one version of one
// function: it picks a warm idle instance (most recently used first), starts
// one while below max_instances (a cold start), or lets the call wait up to
// queue_timeout (then 429). Each instance is a process group speaking the
// Lambda Runtime API on its own loopback port; its answer comes back to the
// caller as a stream of CallEvents. Deadlines kill the whole process group
// (504), crashes give 502 instance_crashed, a memory-cgroup kill 502
// out_of_memory. Idle instances stop after idle_timeout, down to
// min_instances.
//
// Thread-safety: everything here lives on the server's single io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/error.h"
#include "config/config.h"
#include "runtime/cgroup.h"
#include "runtime/event_queue.h"
#include "runtime/process.h"

namespace aifn::runtime {

using Clock = std::chrono::steady_clock;

// One deployed version of a function. Immutable once built.
struct FunctionSpec {
  config::Function cfg;
  std::string dir;      // absolute path of the function folder
  std::string version;  // "1", "2", ... per deploy
};

// A line a function wrote, tagged with the call it belongs to.
struct LogLine {
  std::int64_t time_ms = 0;  // epoch ms
  std::string function;
  std::string request_id;
  std::string stream;  // stdout | stderr | aifn
  std::string text;
};

// Server-wide settings and services every instance needs.
struct RuntimeContext {
  boost::asio::io_context& io;
  ChildReaper& reaper;
  std::string runtimes_dir;  // holds node/bootstrap.js, python/bootstrap.py
  std::string node_path = "node";
  std::string python_path = "python3";
  std::string models_url;  // AIFN_MODELS_URL for instances
  std::uint16_t gateway_port = 0;  // the server's port: relayed into gateway-only instances
  std::optional<CgroupRoot> cgroup;
  // Isolation of every instance (see SpawnSpec).
  std::optional<uid_t> run_uid;
  gid_t run_gid = 0;
  std::uint64_t max_open_files = 0;
  std::uint64_t max_processes = 0;
  bool private_tmp = false;
  bool batch_scheduling = true;  // [instances] scheduling = "batch" (see SpawnSpec)
  Millis sse_heartbeat{15'000};
  Millis init_timeout{10'000};  // spawn -> first /next
  std::uint64_t max_response = 6ull * 1024 * 1024;  // buffered results
  std::function<void(LogLine)> log_sink;
  // Issues a per-call token for the model gateway (issue: model gateway).
  std::function<std::string()> mint_token;
  // A secret's value for an instance's environment; nullopt = not set.
  std::function<Expected<std::optional<std::string>>(const std::string&)> secret_value;
  std::uint64_t next_instance_id = 1;
};

enum class EventKind {
  stream_start,  // data = content type; chunks follow
  chunk,         // data = bytes the function wrote
  result,        // data = the whole buffered result (JSON)
  done,          // a stream ended normally
  failed,        // error holds why (function_error, timeout, crash, ...)
  handoff,       // the call became a background job (on_timeout / on_disconnect = "job");
                 // the same execution goes on and its events follow
};

struct CallEvent {
  EventKind kind = EventKind::failed;
  std::string data;
  Error error;
};

class Instance;
class Pool;

// One call on its way through an instance. The caller reads next_event()
// until result, done or failed. abort() ends it from the caller's side.
class Invocation : public std::enable_shared_from_this<Invocation> {
 public:
  Invocation(boost::asio::any_io_executor ex, std::string id, std::string event, Millis timeout);
  ~Invocation();

  const std::string id;
  const std::string event;
  const Millis timeout;
  std::string token;  // Aifn-Invocation-Token
  bool cold_start = false;
  std::int64_t init_ms = 0;
  Clock::time_point created = Clock::now();
  Clock::time_point exec_started{};  // the runtime took the event (/next)
  Clock::time_point finished{};
  std::int64_t deadline_epoch_ms = 0;
  std::string instance_id;
  std::string runtime_id;  // Lambda-Runtime-Aws-Request-Id: `id`, made unique on its instance

  boost::asio::awaitable<CallEvent> next_event();

  // One execution, two shapes (DESIGN.md §4). With handoff_timeout set, the
  // call may turn into a background job: at its deadline when
  // handoff_at_deadline (on_timeout = "job"), or when request_handoff() is
  // called (on_disconnect = "job"). It is not killed: the reader gets a
  // handoff event and the deadline becomes handoff_timeout from the start
  // of execution.
  Millis handoff_timeout{0};
  bool handoff_at_deadline = false;
  bool request_handoff();  // false when not allowed or already done
  bool handed_off() const { return handed_off_; }
  // Ends the call now: the instance is killed (there is no way to stop one
  // call inside a Lambda runtime) and the caller sees `why`.
  void abort(Error why);
  bool ended() const { return ended_; }
  std::int64_t exec_ms() const;
  // Execution time rounded up to the next millisecond, at least 1 once the
  // runtime took the event; 0 for a call that never ran (Lambda style).
  std::int64_t billed_ms() const;

 private:
  friend class Instance;
  friend class Pool;
  void deliver(CallEvent ev);
  boost::asio::awaitable<bool> deliver_wait(CallEvent&& ev);
  void end(std::optional<Error> why);
  void start_deadline();
  void arm_deadline(Clock::time_point at);
  // SSE streams: a ": ping" comment after `every` of silence (DESIGN.md §6).
  void start_heartbeat(Millis every);

  EventQueue<CallEvent> events_;
  boost::asio::steady_timer deadline_;
  std::shared_ptr<Instance> instance_;
  std::shared_ptr<Pool> pool_;
  bool ended_ = false;
  bool taken_ = false;
  bool handed_off_ = false;
  Clock::time_point last_output_{};
  std::unique_ptr<boost::asio::steady_timer> heartbeat_;
};

struct InstanceInfo {
  std::string id;
  int pid = 0;
  std::string state;  // starting | ready | stopping
  int inflight = 0;
  std::int64_t idle_ms = 0;
  std::int64_t init_ms = 0;
  std::uint64_t calls = 0;
  std::string version;
};

// The caller of one call, seen from the pool: when it leaves while the call
// still waits for an instance (on_disconnect = "cancel"), left() takes the
// call out of the queue at once, so no instance is started or handed to it.
class CallerWatch {
 public:
  void left();
  bool gone() const { return gone_; }

 private:
  friend class Pool;
  bool gone_ = false;
  std::function<void()> wake_;  // set while the call waits
};

// How one call asks for an instance. Trivially copyable (coroutine rule).
struct CallOptions {
  Millis timeout{0};        // 0 = the function's `timeout` (jobs pass job_timeout)
  // A background job: waits behind every synchronous call in the pool's
  // queue, so a flood of jobs cannot starve interactive calls.
  bool background = false;
  // Invocation::handoff_timeout / handoff_at_deadline (on_timeout and
  // on_disconnect = "job").
  Millis handoff_timeout{0};
  bool handoff_at_deadline = false;
  // Optional; outlives the invoke() it is passed to.
  CallerWatch* caller = nullptr;
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(RuntimeContext& ctx, std::shared_ptr<const FunctionSpec> spec);
  ~Pool();

  // Finds or starts an instance and queues the call on it; 429 throttled
  // when none frees up within queue_timeout, 503 when draining.
  boost::asio::awaitable<Expected<std::shared_ptr<Invocation>>> invoke(const std::string& request_id,
                                                                      std::string&& event, CallOptions opts = {});

  // Starts min_instances (called once the pool is installed).
  void start();
  // A newer version took over: no new calls; idle instances stop now, busy
  // ones when their calls finish.
  void drain();
  // Replaces every instance: idle ones stop now, busy ones after their calls
  // (a secret they hold changed). New calls start fresh instances.
  void recycle();
  // Kills every instance now (shutdown).
  void stop_all();

  const FunctionSpec& spec() const { return *spec_; }
  std::shared_ptr<const FunctionSpec> spec_ptr() const { return spec_; }
  std::size_t live_instances() const { return instances_.size(); }
  std::size_t waiting_calls() const { return waiters_.size(); }
  // Calls granted an instance (queued or running) plus those waiting for one.
  std::size_t calls_in_flight() const;
  // Calls that may run at once (instances x concurrency).
  int capacity() const { return spec_->cfg.max_instances * spec_->cfg.concurrency; }
  bool draining() const { return draining_; }
  std::vector<InstanceInfo> instances() const;

 private:
  friend class Instance;
  friend class Invocation;
  struct Waiter;
  std::shared_ptr<Instance> pick_warm();
  std::shared_ptr<Instance> start_instance(std::string* error, bool reserve = true);
  void on_instance_ready(Instance& inst);
  void on_instance_gone(Instance& inst);
  void release(Instance& inst);
  void serve_waiters();
  void arm_janitor();
  void janitor();

  RuntimeContext& ctx_;
  std::shared_ptr<const FunctionSpec> spec_;
  std::vector<std::shared_ptr<Instance>> instances_;
  std::deque<Waiter*> waiters_;
  boost::asio::steady_timer janitor_;
  bool janitor_armed_ = false;
  bool draining_ = false;
  bool stopped_ = false;
};

}  // namespace aifn::runtime
