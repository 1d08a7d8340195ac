// A single-consumer queue of call events between an instance's Runtime API
// handlers (producers) and the caller's coroutine (consumer), on one io
// thread. A steady_timer serves as the wake-up signal: cancelling it resumes
// the waiter. Bounded: a producer awaits while the consumer lags, so a slow
// client slows the function instead of growing memory.
#pragma once

#include <chrono>
#include <deque>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aifn::runtime {

template <class T>
class EventQueue {
 public:
  EventQueue(boost::asio::any_io_executor ex, std::size_t capacity)
      : capacity_(capacity), consumer_(ex), producer_(ex) {}

  void push(T v) {
    q_.push_back(std::move(v));
    consumer_.cancel();
  }
  // Pushes, then waits while the queue is over capacity. False once closed.
  boost::asio::awaitable<bool> push_wait(T&& v) {
    push(std::move(v));
    while (q_.size() > capacity_ && !closed_) {
      producer_.expires_at(std::chrono::steady_clock::time_point::max());
      boost::system::error_code ec;
      co_await producer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    co_return !closed_;
  }
  // Waits for the next item; empty optional once closed and drained.
  boost::asio::awaitable<std::optional<T>> pop() {
    while (q_.empty() && !closed_) {
      consumer_.expires_at(std::chrono::steady_clock::time_point::max());
      boost::system::error_code ec;
      co_await consumer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    if (q_.empty()) co_return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    if (q_.size() <= capacity_) producer_.cancel();
    co_return std::optional<T>(std::move(v));
  }
  // Wakes everyone; pop() still drains what is queued.
  void close() {
    closed_ = true;
    consumer_.cancel();
    producer_.cancel();
  }
  bool closed() const { return closed_; }

 private:
  std::size_t capacity_;
  std::deque<T> q_;
  bool closed_ = false;
  boost::asio::steady_timer consumer_;
  boost::asio::steady_timer producer_;
};

}  // namespace aifn::runtime
