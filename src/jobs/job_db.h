// Internal to aifn_jobs: the one thread that talks to the store for jobs.
// Inserts and state updates that pile up while a transaction commits are
// written together in the next one (group commit); each waiter is answered,
// on the io thread, after the commit that holds its write. Other store calls
// (lease, get, list, cancel) run on the same thread in order, so the io
// thread never blocks on SQLite.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/store.h"

namespace aifn::jobs {

class JobDb {
 public:
  JobDb(boost::asio::any_io_executor io, store::Store& store, std::int64_t idempotency_window_ms);
  ~JobDb();  // writes what is pending, then stops the thread
  JobDb(const JobDb&) = delete;
  JobDb& operator=(const JobDb&) = delete;

  using InsertDone = std::function<void(Expected<store::EnqueueOutcome>)>;
  using UpdateDone = std::function<void(bool applied)>;
  // `done` runs on the io thread after the commit.
  void insert(store::JobRecord rec, InsertDone done);
  void update(store::JobUpdate u, UpdateDone done = {});
  // Runs fn(store) on the writer thread after the pending writes.
  void call(std::function<void(store::Store&)> fn);

  // Awaitable forms.
  boost::asio::awaitable<Expected<store::EnqueueOutcome>> insert_async(store::JobRecord& rec);
  boost::asio::awaitable<bool> update_async(store::JobUpdate& u);
  // `fn` is copied; pass a named object, not a temporary (GCC 12 destroys
  // temporaries of a co_await expression twice).
  template <class T>
  boost::asio::awaitable<T> call_async(const std::function<T(store::Store&)>& fn);

  std::uint64_t commits() const;

 private:
  void run();
  struct Insert {
    store::JobRecord rec;
    InsertDone done;
  };
  struct Update {
    store::JobUpdate u;
    UpdateDone done;
  };
  boost::asio::any_io_executor io_;
  store::Store& store_;
  const std::int64_t window_ms_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Insert> inserts_;                          // guarded by mu_
  std::vector<Update> updates_;                          // guarded by mu_
  std::vector<std::function<void(store::Store&)>> calls_;  // guarded by mu_
  std::uint64_t commits_ = 0;                            // guarded by mu_
  bool stop_ = false;                                    // guarded by mu_
  std::thread thread_;
};

// Resumes the awaiting coroutine with the value passed to the callback that
// `start` receives; the callback may be called from any thread.
// Not a coroutine itself (GCC PR 99576: no class values as coroutine
// parameters): it returns the awaitable async_initiate builds.
template <class T, class Start>
boost::asio::awaitable<T> await_callback(Start start) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(T)>(
      [](auto handler, Start st) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto ex = boost::asio::get_associated_executor(*h);
        st([h, ex](T v) { boost::asio::post(ex, [h, v = std::move(v)]() mutable { std::move (*h)(std::move(v)); }); });
      },
      boost::asio::use_awaitable, std::move(start));
}

template <class T>
boost::asio::awaitable<T> JobDb::call_async(const std::function<T(store::Store&)>& fn) {
  return await_callback<T>([this, fn](std::function<void(T)> deliver) {
    call([fn, deliver](store::Store& s) { deliver(fn(s)); });
  });
}

}  // namespace aifn::jobs
