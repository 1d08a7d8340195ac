#include "runtime/instance.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fmt/format.h>

#include "base/units.h"

namespace aifn::runtime {
namespace net = boost::asio;

// Chunks a slow client has not taken yet before the function is held back.
constexpr std::size_t kEventBacklog = 64;

Invocation::Invocation(net::any_io_executor ex, std::string id_, std::string event_, Millis timeout_)
    : id(std::move(id_)), event(std::move(event_)), timeout(timeout_), events_(ex, kEventBacklog), deadline_(ex) {}

Invocation::~Invocation() = default;

net::awaitable<CallEvent> Invocation::next_event() {
  auto ev = co_await events_.pop();
  if (!ev) co_return CallEvent{EventKind::failed, {}, Error(ErrorType::internal, "the call ended without an answer")};
  co_return std::move(*ev);
}

void Invocation::deliver(CallEvent ev) {
  if (ended_) return;
  last_output_ = Clock::now();
  events_.push(std::move(ev));
}

net::awaitable<bool> Invocation::deliver_wait(CallEvent&& ev) {
  if (ended_) co_return false;
  last_output_ = Clock::now();
  co_return co_await events_.push_wait(std::move(ev));
}

void Invocation::start_heartbeat(Millis every) {
  if (!heartbeat_) heartbeat_ = std::make_unique<net::steady_timer>(deadline_.get_executor());
  heartbeat_->expires_at(last_output_ + every);
  heartbeat_->async_wait([w = weak_from_this(), every](boost::system::error_code ec) {
    auto self = w.lock();
    if (ec || !self || self->ended_) return;
    if (Clock::now() - self->last_output_ >= every) self->deliver({EventKind::chunk, ": ping\n\n", {}});
    self->start_heartbeat(every);
  });
}

std::int64_t Invocation::exec_ms() const {
  if (exec_started == Clock::time_point{}) return 0;
  auto end = finished == Clock::time_point{} ? Clock::now() : finished;
  return std::chrono::duration_cast<Millis>(end - exec_started).count();
}

std::int64_t Invocation::billed_ms() const {
  if (exec_started == Clock::time_point{}) return 0;
  auto end = finished == Clock::time_point{} ? Clock::now() : finished;
  return std::max<std::int64_t>(1, std::chrono::ceil<Millis>(end - exec_started).count());
}

void Invocation::start_deadline() {
  exec_started = Clock::now();
  Millis limit = handed_off_ ? handoff_timeout : timeout;
  // With on_timeout = "job" the execution may run until job_timeout, and
  // the runtime's deadline header (context.getRemainingTimeInMillis) says so.
  Millis told = handoff_at_deadline ? handoff_timeout : limit;
  deadline_epoch_ms = epoch_ms_now() + told.count();
  arm_deadline(exec_started + limit);
}

void Invocation::arm_deadline(Clock::time_point at) {
  deadline_.expires_at(at);
  deadline_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    auto self = w.lock();
    if (ec || !self || self->ended_) return;
    if (self->handoff_at_deadline && self->request_handoff()) return;
    self->abort(Error(ErrorType::timeout,
                      fmt::format("the function did not finish within its {} of {}",
                                  self->handed_off_ ? "job_timeout" : "timeout",
                                  format_duration(self->handed_off_ ? self->handoff_timeout : self->timeout))));
  });
}

bool Invocation::request_handoff() {
  if (ended_ || handed_off_ || handoff_timeout.count() <= 0) return false;
  handed_off_ = true;
  // The runtime's deadline header was sent at /next and cannot change; the
  // kill deadline moves to job_timeout from the start of execution.
  if (exec_started != Clock::time_point{}) arm_deadline(exec_started + handoff_timeout);
  deliver({EventKind::handoff, {}, {}});
  return true;
}

void Invocation::end(std::optional<Error> why) {
  if (ended_) return;
  ended_ = true;
  finished = Clock::now();
  deadline_.cancel();
  if (heartbeat_) heartbeat_->cancel();
  if (why) events_.push({EventKind::failed, {}, std::move(*why)});
  events_.close();
  if (auto inst = std::move(instance_)) inst->finish(*this);
  pool_.reset();
}

void Invocation::abort(Error why) {
  if (ended_) return;
  // The only way to stop one call inside a Lambda runtime is to stop the
  // process; other calls sharing it (concurrency > 1) learn why from this.
  // A call still in the queue has not reached the process. The kill comes
  // before end(): end() frees this call's slot, and a ready instance with a
  // free slot would be handed to a call waiting for one, just before dying.
  if (instance_ && taken_)
    instance_->kill(Error(ErrorType::instance_crashed,
                          fmt::format("the instance was stopped because another call on it ({}) ended early: {}", id,
                                      why.message)));
  end(std::move(why));
}

}  // namespace aifn::runtime
