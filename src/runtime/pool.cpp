#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/instance.h"

namespace aifn::runtime {
namespace net = boost::asio;

// A call waiting for a free instance. Granting it a slot cancels its timer.
struct Pool::Waiter {
  explicit Waiter(net::io_context& io) : timer(io) {}
  net::steady_timer timer;
  std::shared_ptr<Instance> granted;
  bool cold = false;
  bool background = false;
};

Pool::Pool(RuntimeContext& ctx, std::shared_ptr<const FunctionSpec> spec)
    : ctx_(ctx), spec_(std::move(spec)), janitor_(ctx.io) {}

Pool::~Pool() { stop_all(); }

void Pool::start() {
  for (int i = static_cast<int>(instances_.size()); i < spec_->cfg.min_instances; ++i) {
    std::string err;
    if (!start_instance(&err, false))
      spdlog::error("event=min_instance_failed function={} error=\"{}\"", spec_->cfg.name, err);
  }
  arm_janitor();
}

std::shared_ptr<Instance> Pool::pick_warm() {
  // Most recently used first, so the rest stay idle and can scale down.
  std::shared_ptr<Instance> best;
  for (auto& i : instances_) {
    if (i->state() != Instance::State::ready || i->inflight >= spec_->cfg.concurrency || i->retire) continue;
    if (!best || i->last_used > best->last_used) best = i;
  }
  if (best) {
    ++best->inflight;
    best->last_used = Clock::now();
  }
  return best;
}

std::shared_ptr<Instance> Pool::start_instance(std::string* error, bool reserve) {
  auto id = fmt::format("{}-{}-{}", spec_->cfg.name, spec_->version, ctx_.next_instance_id++);
  auto inst = std::make_shared<Instance>(ctx_, shared_from_this(), id);
  if (auto r = inst->start(); !r) {
    if (error) *error = r.error().message;
    spdlog::error("event=instance_start_failed function={} error=\"{}\"", spec_->cfg.name, r.error().message);
    return nullptr;
  }
  instances_.push_back(inst);
  if (reserve) ++inst->inflight;
  arm_janitor();
  return inst;
}

net::awaitable<Expected<std::shared_ptr<Invocation>>> Pool::invoke(const std::string& request_id, std::string&& event,
                                                                   CallOptions opts) {
  auto self = shared_from_this();
  if (draining_ || stopped_)
    co_return fail(ErrorType::unavailable, fmt::format("function {} version {} is being replaced", spec_->cfg.name,
                                                       spec_->version));
  if (opts.caller && opts.caller->gone()) co_return fail(ErrorType::bad_request, "the client disconnected");
  bool cold = false;
  // No overtaking those already waiting, except that a synchronous call
  // overtakes waiting background jobs.
  bool queue_ahead = opts.background ? !waiters_.empty()
                                     : std::any_of(waiters_.begin(), waiters_.end(),
                                                   [](const Waiter* w) { return !w->background; });
  auto inst = queue_ahead ? nullptr : pick_warm();
  if (!inst && !queue_ahead && static_cast<int>(instances_.size()) < spec_->cfg.max_instances) {
    std::string err;
    inst = start_instance(&err);
    if (!inst) co_return fail(ErrorType::instance_crashed, "could not start an instance: " + err);
    cold = true;
  }
  if (!inst) {
    Waiter w(ctx_.io);
    w.background = opts.background;
    if (opts.background)
      waiters_.push_back(&w);
    else
      waiters_.insert(std::find_if(waiters_.begin(), waiters_.end(), [](const Waiter* x) { return x->background; }),
                      &w);
    w.timer.expires_after(spec_->cfg.queue_timeout);
    if (opts.caller)
      opts.caller->wake_ = [this, &w] {
        std::erase(waiters_, &w);  // out of the queue now, before anything serves it
        w.timer.cancel();
      };
    boost::system::error_code ec;
    co_await w.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (opts.caller) opts.caller->wake_ = nullptr;
    std::erase(waiters_, &w);
    // A call granted an instance just before its caller left goes on; the
    // caller's disconnect handling ends it before the runtime takes it.
    if (!w.granted && opts.caller && opts.caller->gone())
      co_return fail(ErrorType::bad_request, "the client left while the call waited for an instance");
    if (!w.granted && (draining_ || stopped_))
      co_return fail(ErrorType::unavailable, fmt::format("function {} version {} is being replaced",
                                                         spec_->cfg.name, spec_->version));
    if (!w.granted) {
      Error e(ErrorType::throttled,
              fmt::format("all {} instances of {} are busy and none freed up within queue_timeout ({})",
                          spec_->cfg.max_instances, spec_->cfg.name, format_duration(spec_->cfg.queue_timeout)));
      e.retry_after_seconds = 1;
      co_return tl::unexpected(std::move(e));
    }
    inst = std::move(w.granted);
    cold = w.cold;
  }
  auto inv = std::make_shared<Invocation>(ctx_.io.get_executor(), request_id, std::move(event),
                                          opts.timeout.count() > 0 ? opts.timeout : spec_->cfg.timeout);
  inv->cold_start = cold;
  inv->handoff_timeout = opts.handoff_timeout;
  inv->handoff_at_deadline = opts.handoff_at_deadline;
  inv->pool_ = self;
  if (ctx_.mint_token) inv->token = ctx_.mint_token();
  inst->enqueue(inv);
  co_return inv;
}

void Pool::serve_waiters() {
  while (!waiters_.empty()) {
    bool cold = false;
    auto inst = pick_warm();
    if (!inst && !draining_ && !stopped_ && static_cast<int>(instances_.size()) < spec_->cfg.max_instances) {
      inst = start_instance(nullptr);
      cold = true;
    }
    if (!inst) break;
    auto* w = waiters_.front();
    waiters_.pop_front();
    w->granted = std::move(inst);
    w->cold = cold;
    w->timer.cancel();
  }
}

void Pool::on_instance_ready(Instance&) { serve_waiters(); }

void CallerWatch::left() {
  gone_ = true;
  if (wake_) wake_();
}

std::size_t Pool::calls_in_flight() const {
  std::size_t n = waiters_.size();
  for (const auto& i : instances_) n += static_cast<std::size_t>(i->inflight);
  return n;
}

void Pool::release(Instance& inst) {
  if ((draining_ || inst.retire) && inst.inflight == 0) {
    inst.kill();
    return;
  }
  serve_waiters();
}

void Pool::on_instance_gone(Instance& inst) {
  auto keep = inst.shared_from_this();
  std::erase_if(instances_, [&](auto& p) { return p.get() == &inst; });
  if (!stopped_) {
    serve_waiters();
    arm_janitor();
  }
}

void Pool::drain() {
  draining_ = true;
  for (auto& i : std::vector<std::shared_ptr<Instance>>(instances_))
    if (i->inflight == 0) i->kill();
  // Calls waiting for an instance of the old version are told at once, so the
  // gateway can send them to the new one.
  for (auto* w : waiters_) w->timer.cancel();
}

void Pool::recycle() {
  for (auto& i : std::vector<std::shared_ptr<Instance>>(instances_)) {
    i->retire = true;
    if (i->inflight == 0) i->kill();
  }
}

void Pool::stop_all() {
  stopped_ = true;
  janitor_.cancel();
  for (auto& i : std::vector<std::shared_ptr<Instance>>(instances_)) i->kill();
  for (auto* w : waiters_) w->timer.cancel();
}

std::vector<InstanceInfo> Pool::instances() const {
  std::vector<InstanceInfo> out;
  auto now = Clock::now();
  for (auto& i : instances_) {
    InstanceInfo info;
    info.id = i->id();
    info.pid = i->pid();
    info.state = i->state() == Instance::State::starting ? "starting"
                 : i->state() == Instance::State::ready  ? "ready"
                                                         : "stopping";
    info.inflight = i->inflight;
    info.idle_ms = i->inflight ? 0 : std::chrono::duration_cast<Millis>(now - i->last_used).count();
    info.init_ms = i->init_ms;
    info.calls = i->calls;
    info.version = spec_->version;
    out.push_back(info);
  }
  return out;
}

void Pool::arm_janitor() {
  if (janitor_armed_ || stopped_) return;
  if (instances_.empty() && spec_->cfg.min_instances == 0) return;
  janitor_armed_ = true;
  // Checks a few times per idle_timeout (at most once per second, at least
  // every 50 ms), so an idle instance stops soon after its idle_timeout.
  auto tick = std::clamp(spec_->cfg.idle_timeout / 4, Millis(50), Millis(1000));
  janitor_.expires_after(tick);
  janitor_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    auto self = w.lock();
    if (!self) return;
    self->janitor_armed_ = false;
    if (ec || self->stopped_) return;
    self->janitor();
    self->arm_janitor();
  });
}

void Pool::janitor() {
  auto now = Clock::now();
  int alive = 0;
  for (auto& i : instances_)
    if (i->state() == Instance::State::starting || i->state() == Instance::State::ready) ++alive;
  // Least recently used first: those are the ones to let go.
  std::vector<std::shared_ptr<Instance>> idle;
  for (auto& i : instances_)
    if (i->state() == Instance::State::ready && i->inflight == 0) idle.push_back(i);
  std::sort(idle.begin(), idle.end(), [](auto& a, auto& b) { return a->last_used < b->last_used; });
  int floor = draining_ ? 0 : spec_->cfg.min_instances;
  for (auto& i : idle) {
    if (alive <= floor) break;
    if (draining_ || now - i->last_used >= spec_->cfg.idle_timeout) {
      spdlog::debug("event=instance_idle_stop function={} instance={}", spec_->cfg.name, i->id());
      i->kill();
      --alive;
    }
  }
  if (!draining_)
    for (int n = alive; n < spec_->cfg.min_instances; ++n)
      if (!start_instance(nullptr, false)) break;
}

}  // namespace aifn::runtime
