#include "gateway/serve.h"

#include <pwd.h>
#include <unistd.h>

#include <filesystem>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "functions/registry.h"
#include "gateway/gateway.h"
#include "models/openai_provider.h"
#include "runtime/process.h"

namespace aifn::gateway {
namespace fs = std::filesystem;
namespace net = boost::asio;

std::string find_runtimes_dir() {
  if (const char* env = std::getenv("AIFN_RUNTIMES_DIR"); env && *env) return env;
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  for (auto dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
    if (fs::exists(dir / "runtimes" / "node" / "bootstrap.js")) return (dir / "runtimes").string();
    if (fs::exists(dir / "share" / "aifn" / "runtimes")) return (dir / "share" / "aifn" / "runtimes").string();
  }
  return "runtimes";
}

// The jobs service: this node's lease-owner name and the webhook signing
// secret live in the data dir (generated on first start, mode 0600).
// A job run's model-gateway grant: its invocation token is registered for
// the run, and the models and tokens it used go on its usage record.
class JobModelAccess : public jobs::ModelAccess {
 public:
  JobModelAccess(models::TokenRegistry& tokens, std::shared_ptr<models::Grant> grant, const std::string& token)
      : grant_(std::move(grant)), scope_(&tokens, token, grant_) {}
  void fill_usage(store::UsageRecord& r) override {
    r.model = grant_->model;
    r.tokens_in = grant_->tokens_in;
    r.tokens_out = grant_->tokens_out;
    grant_->recorded = true;
  }

 private:
  std::shared_ptr<models::Grant> grant_;
  models::TokenScope scope_;
};

std::optional<std::unique_ptr<jobs::Jobs>> start_jobs(net::io_context& io, const config::Server& cfg,
                                                      store::Store& store, functions::Registry& registry,
                                                      metering::Meter& meter, models::TokenRegistry& tokens,
                                                      security::Secrets& secrets) {
  auto node = jobs::load_or_create_node_id(cfg.data_dir);
  auto secret = jobs::load_or_create_webhook_secret(cfg.webhook_secret, cfg.data_dir,
                                                    [&secrets](const std::string& n) { return secrets.get(n); });
  if (!node || !secret) {
    spdlog::critical("jobs: {}", (!node ? node.error() : secret.error()).message);
    return std::nullopt;
  }
  jobs::JobsOptions opts;
  opts.node_id = *node;
  opts.webhook_secret = *secret;
  opts.callback_ca_file = cfg.callback_ca_file;
  opts.retention = cfg.job_retention;
  if (opts.retention.count() > 0 && opts.retention < opts.idempotency_window)
    spdlog::warn("event=config key=jobs.retention message=\"shorter than the 24h Idempotency-Key window: a key "
                 "whose job was deleted makes a new job\"");
  opts.grant_models = [&tokens](const runtime::FunctionSpec& spec, const std::string& request_id,
                                const std::string& token, const std::shared_ptr<void>& carried) {
    // A call that became a job brings its grant (and the tokens it used so far).
    auto grant = std::static_pointer_cast<models::Grant>(carried);
    if (!grant) {
      grant = std::make_shared<models::Grant>();
      grant->function = spec.cfg.name;
      grant->version = spec.version;
      grant->request_id = request_id;
      grant->models = spec.cfg.models;
    }
    return std::unique_ptr<jobs::ModelAccess>(new JobModelAccess(tokens, std::move(grant), token));
  };
  return std::make_unique<jobs::Jobs>(io, store, registry, meter, std::move(opts));
}

namespace {

// Runs io until it stops. After each burst of work it keeps polling (no
// sleep) for `spin` before blocking in epoll: a call's next step (the
// function's answer, the caller's next request) usually arrives within tens
// of microseconds, and waking a sleeping thread costs about that much again.
// Measured with bench/platform_bench.py (latency, one connection): exec hello
// p50 159 -> 91 us, Node and Python about 190 -> 120 us; an idle server
// still sleeps (only timers wake it, each costing one spin).
constexpr std::chrono::microseconds kSpinBeforeSleep{50};

void run_polling(net::io_context& io, std::chrono::microseconds spin) {
  using Clock = std::chrono::steady_clock;
  while (!io.stopped()) {
    for (auto until = Clock::now() + spin; Clock::now() < until && !io.stopped();)
      if (io.poll() > 0) until = Clock::now() + spin;
    if (io.stopped()) break;
    io.run_one();
  }
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Budgets count what each key already spent today (UTC), so a restart does
// not hand out a fresh day.
void seed_spent_today(store::Store& store, const config::Pricing& pricing, security::Limits& limits) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto midnight = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::floor<std::chrono::days>(now));
  auto groups = store.aggregate_usage(store::GroupBy::key, midnight.count(), 0);
  if (!groups) {
    spdlog::error("event=budget_seed_failed error=\"{}\"", groups.error().message);
    return;
  }
  for (auto& g : *groups)
    if (!g.group.empty()) limits.set_spent_today(g.group, metering::price(g, pricing));
}

// [instances] user, rlimits and the private /tmp, as far as this process
// may grant them (changing user and mounting need root).
bool apply_isolation(const config::Server& cfg, runtime::RuntimeContext& ctx) {
  bool root = ::geteuid() == 0;
  ctx.max_open_files = cfg.instance_max_open_files;
  ctx.max_processes = cfg.instance_max_processes;
  ctx.private_tmp = cfg.private_tmp && root;
  ctx.batch_scheduling = cfg.instance_scheduling == "batch";
  if (cfg.private_tmp && !root)
    spdlog::warn("event=isolation private_tmp=off reason=\"not running as root: instances share the host's /tmp\"");
  if (!cfg.instance_user.empty()) {
    struct passwd* pw = ::getpwnam(cfg.instance_user.c_str());
    if (!pw) {
      spdlog::critical("[instances] user: no user named \"{}\"", cfg.instance_user);
      return false;
    }
    if (!root && pw->pw_uid != ::geteuid()) {
      spdlog::critical("[instances] user = \"{}\" needs the server to run as root", cfg.instance_user);
      return false;
    }
    ctx.run_uid = pw->pw_uid;
    ctx.run_gid = pw->pw_gid;
  } else if (root) {
    spdlog::warn("event=isolation user=root reason=\"[instances] user is not set: instances run as root\"");
  }
  spdlog::info("event=isolation user={} max_open_files={} max_processes={} private_tmp={}",
               cfg.instance_user.empty() ? "(server's)" : cfg.instance_user, ctx.max_open_files, ctx.max_processes,
               ctx.private_tmp);
  return true;
}

}  // namespace

int run_server(const config::Server& cfg) {
  std::error_code ec;
  fs::create_directories(cfg.data_dir, ec);
  if (ec) {
    spdlog::critical("cannot create the data dir {}: {}", cfg.data_dir, ec.message());
    return 1;
  }
  auto store = store::open_store(config::store_url(cfg));
  if (!store) {
    spdlog::critical("cannot open the store: {}", store.error().message);
    return 1;
  }
  metering::Meter meter(**store);

  net::io_context io(1);
  runtime::ChildReaper reaper(io);
  auto listen = http::split_host_port(cfg.listen);
  if (!listen) {
    spdlog::critical("listen: {}", listen.error().message);
    return 1;
  }
  auto box = security::SecretBox::open(cfg.data_dir, env_or_empty("AIFN_MASTER_KEY"));
  if (!box) {
    spdlog::critical("secrets: {}", box.error().message);
    return 1;
  }
  security::Secrets secrets(**store, std::move(*box));
  security::ApiKeys keys(**store);
  if (auto r = keys.load(); !r) {
    spdlog::critical("API keys: {}", r.error().message);
    return 1;
  }
  security::Limits limits;
  seed_spent_today(**store, cfg.pricing, limits);
  security::Auth auth({cfg.auth, listen->first, env_or_empty("AIFN_ADMIN_KEY"), cfg.data_dir}, keys);
  if (auto r = auth.start(); !r) {
    spdlog::critical("auth: {}", r.error().message);
    return 1;
  }

  runtime::RuntimeContext ctx{io, reaper};
  ctx.secret_value = [&secrets](const std::string& name) { return secrets.get(name); };
  if (!apply_isolation(cfg, ctx)) return 1;
  ctx.runtimes_dir = find_runtimes_dir();
  ctx.node_path = runtime::resolve_interpreter("node", "-e 'process.stdout.write(process.execPath)'");
  ctx.python_path = runtime::resolve_interpreter("python3", "-c 'import sys; print(sys.executable)'");
  ctx.sse_heartbeat = cfg.sse_heartbeat;
  ctx.cgroup = runtime::CgroupRoot::detect(cfg.cgroup_root);
  if (ctx.cgroup)
    spdlog::info("event=memory_limits mode=cgroup_v{} path={}", ctx.cgroup->version(), ctx.cgroup->path());
  else
    spdlog::warn("event=memory_limits mode=rlimit reason=\"no writable memory cgroup; Node functions run without a memory limit\"");

  // Per-call model gateway tokens (DESIGN.md §5): 256 random bits.
  ctx.mint_token = [minter = std::make_shared<models::TokenMinter>()] { return minter->mint(); };

  LogStore logs;
  ctx.log_sink = [&logs](runtime::LogLine l) { logs.add(std::move(l)); };

  functions::Registry registry(ctx, cfg.data_dir, cfg.max_request);
  http::ServerOptions opts;
  opts.max_header = cfg.max_header;
  opts.read_timeout = cfg.idle_read_timeout;
  opts.idle_timeout = cfg.idle_read_timeout;
  models::TokenRegistry tokens;
  // Provider keys: "env:NAME" from this process's environment, "secret:NAME"
  // from the secret store; resolved once, here.
  auto router = models::make_router(
      cfg, io.get_executor(), models::secret_key_resolver([&secrets](const std::string& n) { return secrets.get(n); }));
  auto jobs = start_jobs(io, cfg, **store, registry, meter, tokens, secrets);
  if (!jobs) {
    registry.stop_all();
    return 1;
  }
  Gateway gateway({cfg, registry, **store, meter, logs, auth, keys, limits, secrets, router.get(), &tokens,
                   jobs->get()});
  http::Server server(io, opts, [&gateway](http::Exchange& ex) { return gateway.handle(ex); });
  if (auto r = server.listen(listen->first, listen->second); !r) {
    spdlog::critical("{}", r.error().message);
    return 1;
  }
  ctx.models_url = fmt::format("http://127.0.0.1:{}/v1", server.port());
  ctx.gateway_port = server.port();

  try {
    if (fs::is_directory(cfg.functions_dir)) registry.load_dir(cfg.functions_dir);
    else if (cfg.functions_dir_set) throw config::ConfigError(cfg.functions_dir, 0, "functions_dir", "no such folder");
    registry.load_deployed();
  } catch (const config::ConfigError& e) {
    spdlog::critical("{}", e.what());
    registry.stop_all();
    return 1;
  }
  (*jobs)->start();
  spdlog::info("event=listening url=http://{}:{} functions={} data_dir={} runtimes={}", listen->first, server.port(),
               registry.all().size(), cfg.data_dir, ctx.runtimes_dir);

  // Graceful stop: no new connections or job leases, idle connections
  // closed; calls and jobs in flight get up to shutdown_grace, then what is
  // left is aborted (its jobs queued again), every instance is killed and reaped.
  net::signal_set signals(io, SIGINT, SIGTERM);
  net::steady_timer grace(io);
  auto deadline = std::make_shared<std::chrono::steady_clock::time_point>();
  std::function<void()> wait_drain;
  std::function<void()> wait_reaped;
  int reap_polls = 0;
  wait_reaped = [&] {
    if (reaper.watched() == 0 || ++reap_polls > 100) {
      meter.flush();
      io.stop();
      return;
    }
    grace.expires_after(std::chrono::milliseconds(20));
    grace.async_wait([&](boost::system::error_code) { wait_reaped(); });
  };
  wait_drain = [&] {
    const bool drained = server.active_requests() == 0 && (*jobs)->executing() == 0;
    if (drained || std::chrono::steady_clock::now() >= *deadline) {
      if (!drained)
        spdlog::warn("event=shutdown_grace_over in_flight={} jobs_running={}", server.active_requests(),
                     (*jobs)->executing());
      (*jobs)->stop();
      registry.stop_all();
      server.close_all();
      wait_reaped();
      return;
    }
    grace.expires_after(std::chrono::milliseconds(20));
    grace.async_wait([&](boost::system::error_code) { wait_drain(); });
  };
  signals.async_wait([&](boost::system::error_code e, int sig) {
    if (e) return;
    spdlog::info("event=shutdown signal={} in_flight={} jobs_running={}", sig, server.active_requests(),
                 (*jobs)->executing());
    server.stop();
    (*jobs)->drain();
    *deadline = std::chrono::steady_clock::now() + cfg.shutdown_grace;
    wait_drain();
  });
  run_polling(io, kSpinBeforeSleep);
  if (ctx.cgroup) ctx.cgroup->remove();
  spdlog::info("event=stopped");
  return 0;
}

}  // namespace aifn::gateway
