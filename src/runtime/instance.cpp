#include "runtime/instance.h"
#include "base/units.h"
#include "runtime/error_report.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace aifn::runtime {
namespace net = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::string_view kPrefix = "/2018-06-01/runtime/";
constexpr std::size_t kStderrTail = 4096;
constexpr std::size_t kMaxLine = 16 * 1024;


bool has_shell_syntax(const std::string& s) {
  return s.find_first_of("|&;<>()$`\\\"'*?[]#~=%{}") != std::string::npos;
}

}  // namespace

Instance::Instance(RuntimeContext& ctx, std::shared_ptr<Pool> pool, std::string id)
    : ctx_(ctx), pool_(std::move(pool)), id_(std::move(id)), out_(ctx.io), err_(ctx.io), init_timer_(ctx.io) {}

Instance::~Instance() {
  if (pid_ > 0 && state_ != State::dead) kill_group(pid_);
  if (cgroup_) {
    cgroup_->kill_all();
    cgroup_->remove();
  }
}

std::vector<std::string> Instance::command_line() const {
  const auto& cfg = pool_->spec().cfg;
  if (cfg.runtime == "node") return {ctx_.node_path, ctx_.runtimes_dir + "/node/bootstrap.js"};
  if (cfg.runtime == "python") return {ctx_.python_path, "-u", ctx_.runtimes_dir + "/python/bootstrap.py"};
  // exec: the handler is a command line. Plain words are executed directly
  // (no shell start on the cold path); anything shell-like goes through sh.
  if (has_shell_syntax(cfg.handler)) return {"/bin/sh", "-c", "exec " + cfg.handler};
  std::vector<std::string> argv;
  std::string word;
  for (char c : cfg.handler) {
    if (c == ' ' || c == '\t') {
      if (!word.empty()) argv.push_back(std::move(word)), word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) argv.push_back(word);
  if (!argv.empty() && argv[0].find('/') != std::string::npos && argv[0][0] != '/')
    argv[0] = pool_->spec().dir + "/" + argv[0];
  return argv;
}

Expected<std::vector<std::string>> Instance::environment() const {
  const auto& spec = pool_->spec();
  const auto& cfg = spec.cfg;
  std::vector<std::string> env = {
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "LANG=C.UTF-8",
      "TZ=:UTC",
      "HOME=/tmp",
      "AWS_LAMBDA_RUNTIME_API=127.0.0.1:" + std::to_string(api_->port()),
      "_HANDLER=" + cfg.handler,
      "LAMBDA_TASK_ROOT=" + spec.dir,
      "AWS_LAMBDA_FUNCTION_NAME=" + cfg.name,
      "AWS_LAMBDA_FUNCTION_VERSION=" + spec.version,
      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(cfg.memory / (1024 * 1024)),
      "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + cfg.name,
      "AWS_LAMBDA_LOG_STREAM_NAME=" + id_,
      "AWS_REGION=local",
      "AIFN_MODELS_URL=" + ctx_.models_url,
      "AIFN_CONCURRENCY=" + std::to_string(cfg.concurrency),
  };
  // The manifest's env wins over the defaults (e.g. _HANDLER for an exec
  // function that runs aws-lambda-ric itself).
  for (auto& [k, v] : cfg.env) {
    std::string prefix = k + "=";
    std::erase_if(env, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    env.push_back(prefix + v);
  }
  // Secrets last: only those the manifest lists, read fresh at every start
  // so a rotated value reaches new instances without a redeploy.
  for (auto& name : cfg.secrets) {
    auto value = ctx_.secret_value ? ctx_.secret_value(name) : Expected<std::optional<std::string>>();
    if (!value) return tl::unexpected(value.error());
    if (!*value) return fail(ErrorType::unavailable, fmt::format("secret {} is not set (aifn secrets set {})", name, name));
    std::string prefix = name + "=";
    std::erase_if(env, [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
    env.push_back(prefix + **value);
  }
  return env;
}

Expected<void> Instance::start() {
  auto self = weak_from_this();
  http::ServerOptions opts;
  opts.idle_timeout = Millis(24 * 3600 * 1000);  // the runtime long-polls
  opts.read_timeout = std::max(pool_->spec().cfg.timeout, Millis(30'000));
  opts.max_header = 64 * 1024;
  api_ = std::make_unique<http::Server>(ctx_.io, opts, [self](http::Exchange& ex) -> net::awaitable<void> {
    auto inst = self.lock();
    if (!inst) {
      co_await ex.respond_error(Error(ErrorType::unavailable, "instance is gone"));
      co_return;
    }
    co_await inst->handle(ex);
  });
  int netns_fd = -1;
  if (pool_->spec().cfg.network == "gateway-only") {
    // Its own network namespace: the Runtime API and a relay to the model
    // gateway are opened inside it, and nothing else is there.
    auto ns = make_gateway_only_net(ctx_.gateway_port);
    if (!ns) return tl::unexpected(ns.error());
    if (auto r = api_->listen_fd(ns->api_fd); !r) {
      ::close(ns->relay_fd);
      ::close(ns->ns_fd);
      return r;
    }
    relay_ = std::make_unique<GatewayRelay>(ctx_.io, ns->relay_fd, ctx_.gateway_port);
    netns_fd = ns->ns_fd;
  } else if (auto r = api_->listen("127.0.0.1", 0); !r) {
    return r;
  }
  struct CloseFd {
    int fd;
    ~CloseFd() {
      if (fd >= 0) ::close(fd);
    }
  } close_netns{netns_fd};  // the child holds the namespace once it entered
  auto env = environment();
  if (!env) return tl::unexpected(env.error());

  const auto& cfg = pool_->spec().cfg;
  if (ctx_.cgroup) cgroup_ = InstanceCgroup::create(*ctx_.cgroup, id_, cfg.memory);

  int outp[2], errp[2];
  if (::pipe2(outp, O_CLOEXEC) != 0) return fail(ErrorType::unavailable, "pipe failed");
  if (::pipe2(errp, O_CLOEXEC) != 0) {
    ::close(outp[0]);
    ::close(outp[1]);
    return fail(ErrorType::unavailable, "pipe failed");
  }
  SpawnSpec spec;
  spec.argv = command_line();
  spec.env = std::move(*env);
  spec.cwd = pool_->spec().dir;
  spec.stdout_fd = outp[1];
  spec.stderr_fd = errp[1];
  spec.max_open_files = ctx_.max_open_files;
  spec.max_processes = ctx_.max_processes;
  spec.private_tmp = ctx_.private_tmp;
  spec.batch_scheduling = ctx_.batch_scheduling;
  spec.uid = ctx_.run_uid;
  spec.netns_fd = netns_fd;
  spec.gid = ctx_.run_gid;
  if (cgroup_) {
    spec.cgroup_procs = cgroup_->procs_file();
  } else if (cfg.runtime != "node") {
    // No writable memory cgroup: an address-space limit is the fallback
    // (not for Node, whose V8 reserves far more than it uses).
    spec.rlimit_as = cfg.memory + 64ull * 1024 * 1024;
  }
  spawned_at = Clock::now();
  auto pid = spawn_process(spec);
  ::close(outp[1]);
  ::close(errp[1]);
  if (!pid) {
    ::close(outp[0]);
    ::close(errp[0]);
    return tl::unexpected(pid.error());
  }
  pid_ = *pid;
  out_.assign(outp[0]);
  err_.assign(errp[0]);
  auto me = shared_from_this();
  ctx_.reaper.watch(pid_, [w = weak_from_this()](int status) {
    if (auto i = w.lock()) i->on_exit(status);
  });
  net::co_spawn(ctx_.io, [me]() { return me->pump_output(me->out_, "stdout"); }, net::detached);
  net::co_spawn(ctx_.io, [me]() { return me->pump_output(me->err_, "stderr"); }, net::detached);
  init_timer_.expires_after(ctx_.init_timeout);
  init_timer_.async_wait([w = weak_from_this(), t = ctx_.init_timeout](error_code ec) {
    auto i = w.lock();
    if (ec || !i || i->state_ != State::starting) return;
    i->kill(Error(ErrorType::instance_crashed,
                  fmt::format("the instance did not ask for work within {} of starting", format_duration(t))));
  });
  spdlog::debug("event=instance_spawned function={} instance={} pid={}", pool_->spec().cfg.name, id_, pid_);
  return {};
}

void Instance::enqueue(std::shared_ptr<Invocation> inv) {
  inv->instance_ = shared_from_this();
  inv->instance_id = id_;
  queued_.push_back(std::move(inv));
  if (!next_waiters_.empty()) {
    next_waiters_.front()->cancel();
    next_waiters_.erase(next_waiters_.begin());
  }
}

void Instance::kill(std::optional<Error> why) {
  if (state_ == State::dead) return;
  if (why && !kill_reason_) kill_reason_ = std::move(why);
  if (state_ != State::stopping) state_ = State::stopping;
  kill_group(pid_);
  if (cgroup_) cgroup_->kill_all();
}

void Instance::finish(Invocation& inv) {
  if (!inv.runtime_id.empty()) running_.erase(inv.runtime_id);
  for (auto it = queued_.begin(); it != queued_.end(); ++it)
    if (it->get() == &inv) {
      queued_.erase(it);
      break;
    }
  if (inflight > 0) --inflight;
  last_used = Clock::now();
  if (state_ == State::ready) pool_->release(*this);
}

std::shared_ptr<Invocation> Instance::find_running(const std::string& id) {
  auto it = running_.find(id);
  return it == running_.end() ? nullptr : it->second;
}

net::awaitable<void> Instance::handle(http::Exchange& ex) {
  auto path = ex.path();
  if (path.substr(0, kPrefix.size()) != kPrefix) {
    co_await ex.respond_error(Error(ErrorType::not_found, "not a Runtime API route"));
    co_return;
  }
  auto rest = path.substr(kPrefix.size());
  if (rest == "invocation/next" && ex.method() == http::bhttp::verb::get) {
    co_await on_next(ex);
  } else if (rest == "init/error" && ex.method() == http::bhttp::verb::post) {
    co_await on_init_error(ex);
  } else if (rest.substr(0, 11) == "invocation/" && ex.method() == http::bhttp::verb::post) {
    auto tail = rest.substr(11);
    auto slash = tail.find('/');
    if (slash == std::string_view::npos) {
      co_await ex.respond_error(Error(ErrorType::not_found, "unknown Runtime API route"));
      co_return;
    }
    std::string id(tail.substr(0, slash));
    auto what = tail.substr(slash + 1);
    if (what == "response") co_await on_response(ex, id);
    else if (what == "error") co_await on_error(ex, id);
    else co_await ex.respond_error(Error(ErrorType::not_found, "unknown Runtime API route"));
  } else {
    co_await ex.respond_error(Error(ErrorType::not_found, "unknown Runtime API route"));
  }
}

net::awaitable<void> Instance::on_next(http::Exchange& ex) {
  auto self = shared_from_this();
  if (state_ == State::starting) {
    state_ = State::ready;
    init_timer_.cancel();
    init_ms = std::chrono::duration_cast<Millis>(Clock::now() - spawned_at).count();
    pool_->on_instance_ready(*this);
  }
  // The 202 of this runtime's last answer may be held for the next event.
  // A call granted to this instance but not queued yet (counted in inflight,
  // not in running_ or queued_) is queued as soon as its caller's coroutine
  // resumes: the 202 waits for it. With none coming it goes now, before the
  // wait.
  const bool granted_in_transit = inflight > static_cast<int>(running_.size() + queued_.size());
  if (ex.holding() && queued_.empty() && !granted_in_transit) co_await ex.release_held();
  while (queued_.empty() && state_ == State::ready) {
    net::steady_timer wake(ctx_.io, Clock::time_point::max());
    next_waiters_.push_back(&wake);
    error_code ec;
    co_await wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    std::erase(next_waiters_, &wake);
  }
  if (queued_.empty() || state_ != State::ready) {
    co_await ex.respond_error(Error(ErrorType::unavailable, "instance is stopping"));
    co_return;
  }
  auto inv = std::move(queued_.front());
  queued_.pop_front();
  if (inv->ended()) {  // aborted while queued: nothing to run
    co_await ex.respond_error(Error(ErrorType::unavailable, "call was cancelled"));
    co_return;
  }
  // Clients choose X-Request-Id; two calls on one instance may share one, so
  // the Runtime API id is made unique per instance.
  inv->runtime_id = inv->id;
  for (std::uint64_t n = calls + 1; running_.count(inv->runtime_id); ++n) inv->runtime_id = fmt::format("{}.{}", inv->id, n);
  running_[inv->runtime_id] = inv;
  ++calls;
  last_request_id_ = inv->id;
  if (inv->cold_start) inv->init_ms = init_ms;
  inv->taken_ = true;
  inv->start_deadline();

  http::Response res{http::bhttp::status::ok, 11};
  res.set(http::bhttp::field::content_type, "application/json");
  res.set("Lambda-Runtime-Aws-Request-Id", inv->runtime_id);
  res.set("Lambda-Runtime-Deadline-Ms", std::to_string(inv->deadline_epoch_ms));
  res.set("Lambda-Runtime-Invoked-Function-Arn",
          "arn:aws:lambda:local:000000000000:function:" + pool_->spec().cfg.name);
  res.set("Lambda-Runtime-Trace-Id", "Root=1-" + inv->runtime_id);
  if (!inv->token.empty()) res.set("Aifn-Invocation-Token", inv->token);
  res.body() = inv->event;
  co_await ex.respond(res);
}

net::awaitable<void> Instance::on_response(http::Exchange& ex, const std::string& id) {
  auto self = shared_from_this();
  auto inv = find_running(id);
  if (!inv || inv->ended()) {
    // Late answer of a call that timed out or was cancelled.
    ex.close_after();
    co_await ex.respond_error(Error(ErrorType::not_found, "no such invocation in flight"));
    co_return;
  }
  bool streaming = ex.field("Lambda-Runtime-Function-Response-Mode") == "streaming";
  if (!streaming) {
    auto body = co_await ex.read_body(ctx_.max_response);
    if (!body) {
      co_await ex.respond_error(body.error());
      if (!inv->ended())
        inv->end(Error(ErrorType::function_error,
                       fmt::format("the function's response is larger than {}", format_size(ctx_.max_response))));
      co_return;
    }
    if (!inv->ended()) {
      inv->deliver({EventKind::result, std::move(*body), {}});
      inv->end(std::nullopt);
    }
    // While the function has other calls in flight, the next event is close
    // behind: a runtime that pipelined its GET /next gets this 202 with it,
    // in one send (+25 % exec hello throughput at 16 connections; holding
    // only when a call was already granted to this instance gave +10 %).
    // on_next() sends it at once if no call is queued or on its way to this
    // instance.
    // Otherwise the 202 goes now and is read while the runtime is idle, not
    // in front of the next event (held always, the Python bootstrap's p50 at
    // one connection was 16 us slower).
    if (pool_->calls_in_flight() > 0) ex.hold_for_next();
    co_await ex.respond(202, "application/json", R"({"status":"OK"})");
    co_return;
  }
  std::string ct(ex.field("Content-Type"));
  if (ct.empty()) ct = "application/octet-stream";
  // The caller's response starts with the first byte, not with the headers:
  // a stream that fails before writing anything (aws-lambda-ric sends an
  // empty body with error trailers) still gets a plain error status.
  bool started = false;
  auto start = [&] {
    if (started) return;
    started = true;
    inv->deliver({EventKind::stream_start, ct, {}});
    if (ct.rfind("text/event-stream", 0) == 0) inv->start_heartbeat(ctx_.sse_heartbeat);
  };
  // SSE clients expect the headers at once (and pings while it is quiet).
  if (ct.rfind("text/event-stream", 0) == 0) start();
  for (;;) {
    auto piece = co_await ex.read_body_some(UINT64_MAX);
    if (inv->ended()) break;
    if (!piece) {
      inv->end(Error(ErrorType::instance_crashed, "the function's stream broke off: " + piece.error().message));
      break;
    }
    if (!*piece) {
      auto etype = ex.field("Lambda-Runtime-Function-Error-Type");
      if (!etype.empty()) {
        Error e(ErrorType::function_error, "the function failed mid-stream");
        e.function_error_type = std::string(etype);
        e.function_error_body = decode_error_trailer(ex.field("Lambda-Runtime-Function-Error-Body"));
        inv->end(std::move(e));
      } else {
        start();
        inv->deliver({EventKind::done, {}, {}});
        inv->end(std::nullopt);
      }
      break;
    }
    start();
    CallEvent chunk{EventKind::chunk, std::move(**piece), {}};
    if (!co_await inv->deliver_wait(std::move(chunk))) break;
  }
  if (ex.body_done()) co_await ex.respond(202, "application/json", R"({"status":"OK"})");
  else {
    ex.close_after();
    co_await ex.respond_error(Error(ErrorType::conflict, "the call already ended"));
  }
}

net::awaitable<void> Instance::on_error(http::Exchange& ex, const std::string& id) {
  auto self = shared_from_this();
  auto body = co_await ex.read_body(1024 * 1024);
  auto inv = find_running(id);
  if (inv && !inv->ended()) {
    Error e(ErrorType::function_error, "the function returned an error");
    auto report = parse_error_report(body ? *body : std::string(), ex.field("Lambda-Runtime-Function-Error-Type"));
    if (!report.message.empty()) e.message = report.message;
    if (body) e.function_error_body = *body;
    e.function_error_type = report.type.empty() ? "Error" : report.type;
    inv->end(std::move(e));
  }
  co_await ex.respond(202, "application/json", R"({"status":"OK"})");
}

net::awaitable<void> Instance::on_init_error(http::Exchange& ex) {
  auto self = shared_from_this();
  auto body = co_await ex.read_body(1024 * 1024);
  Error e(ErrorType::function_error, "the function failed to initialise");
  auto report = parse_error_report(body ? *body : std::string(), ex.field("Lambda-Runtime-Function-Error-Type"));
  e.function_error_type = report.type;
  if (!report.message.empty()) e.message = report.message;
  if (body) e.function_error_body = *body;
  if (e.function_error_type.empty()) e.function_error_type = "Runtime.InitError";
  emit_line("aifn", "init error: " + e.function_error_type + ": " + e.message);
  co_await ex.respond(202, "application/json", R"({"status":"OK"})");
  kill(std::move(e));
}

net::awaitable<void> Instance::pump_output(net::posix::stream_descriptor& d, const char* stream) {
  auto self = shared_from_this();
  std::string pending;
  char buf[8192];
  for (;;) {
    error_code ec;
    std::size_t n = co_await d.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    pending.append(buf, n);
    if (stream[3] == 'e') {  // stderr: keep a tail for crash reports
      stderr_tail_.append(buf, n);
      if (stderr_tail_.size() > kStderrTail) stderr_tail_.erase(0, stderr_tail_.size() - kStderrTail);
    }
    std::size_t start = 0;
    for (;;) {
      auto nl = pending.find('\n', start);
      if (nl == std::string::npos) break;
      emit_line(stream, pending.substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    if (pending.size() > kMaxLine) {
      emit_line(stream, pending);
      pending.clear();
    }
  }
  if (!pending.empty()) emit_line(stream, pending);
}

void Instance::emit_line(const char* stream, std::string text) {
  if (!ctx_.log_sink) return;
  LogLine l;
  l.time_ms = epoch_ms_now();
  l.function = pool_->spec().cfg.name;
  l.request_id = last_request_id_;
  l.stream = stream;
  l.text = std::move(text);
  ctx_.log_sink(std::move(l));
}

void Instance::on_exit(int status) {
  auto self = shared_from_this();
  bool was_stopping = state_ == State::stopping;
  state_ = State::dead;
  init_timer_.cancel();
  Error why;
  if (kill_reason_) {
    why = *kill_reason_;
  } else if (cgroup_ && cgroup_->oom_killed()) {
    why = Error(ErrorType::out_of_memory,
                fmt::format("the function exceeded its memory limit of {}", format_size(pool_->spec().cfg.memory)));
  } else if (WIFSIGNALED(status)) {
    why = Error(ErrorType::instance_crashed, fmt::format("the instance was killed by signal {}", WTERMSIG(status)));
  } else {
    why = Error(ErrorType::instance_crashed,
                fmt::format("the instance exited with code {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1));
  }
  if (!was_stopping || kill_reason_) {
    spdlog::warn("event=instance_exit function={} instance={} pid={} reason={} message=\"{}\" stderr_tail=\"{}\"",
                 pool_->spec().cfg.name, id_, pid_, to_string(why.type), why.message,
                 stderr_tail_.substr(stderr_tail_.size() > 512 ? stderr_tail_.size() - 512 : 0));
  }
  kill_group(pid_);  // anything left in the group
  if (cgroup_) {
    cgroup_->kill_all();
    cgroup_->remove();
    cgroup_.reset();
  }
  std::vector<std::shared_ptr<Invocation>> calls(queued_.begin(), queued_.end());
  for (auto& [_, inv] : running_) calls.push_back(inv);
  queued_.clear();
  running_.clear();
  for (auto& inv : calls)
    if (!inv->ended()) inv->end(why);
  for (auto* w : next_waiters_) w->cancel();
  next_waiters_.clear();
  if (api_) {
    api_->stop();
    api_->close_all();
  }
  relay_.reset();
  // Output pipes close by themselves once every writer is gone.
  if (!pool_notified_gone_) {
    pool_notified_gone_ = true;
    pool_->on_instance_gone(*this);
  }
}

}  // namespace aifn::runtime
