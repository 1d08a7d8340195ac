// aifn::cache::SingleFlight — coalesces identical work in flight: the first
// caller for a key runs it, callers arriving while it runs wait for the same
// result instead of starting their own (one model call for N identical
// cacheable requests). For coroutines on one io thread (not thread-safe).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aifn::cache {

template <class T>
class SingleFlight {
 public:
  // Runs `work` unless an identical key is running; then waits for that
  // run's result. `shared` (optional) tells which happened.
  boost::asio::awaitable<T> run(const std::string& key, const std::function<boost::asio::awaitable<T>()>& work,
                                bool* shared = nullptr) {
    if (auto it = flights_.find(key); it != flights_.end()) {
      auto flight = it->second;  // keep it alive past its erase
      while (!flight->result) {
        boost::system::error_code ec;
        co_await flight->done.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      }
      if (shared) *shared = true;
      co_return *flight->result;
    }
    auto flight = std::make_shared<Flight>(co_await boost::asio::this_coro::executor);
    flight->done.expires_at(std::chrono::steady_clock::time_point::max());
    flights_[key] = flight;
    struct Erase {  // also when work throws
      SingleFlight* self;
      const std::string& key;
      ~Erase() { self->flights_.erase(key); }
    } erase{this, key};
    flight->result.emplace(co_await work());
    flight->done.cancel();
    if (shared) *shared = false;
    co_return *flight->result;
  }

  std::size_t in_flight() const { return flights_.size(); }

 private:
  struct Flight {
    explicit Flight(boost::asio::any_io_executor ex) : done(ex) {}
    boost::asio::steady_timer done;
    std::optional<T> result;
  };
  std::map<std::string, std::shared_ptr<Flight>> flights_;
};

}  // namespace aifn::cache
