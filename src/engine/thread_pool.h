// Persistent thread pool for the engine's parallel loops (matmul rows,
// attention heads). The calling thread takes part as thread 0, so a pool of N
// threads starts N-1 workers. Workers spin briefly between jobs (a decode step
// issues hundreds of short parallel loops) and then sleep on a condition variable.
// Work is handed out in chunks from a shared counter, and the caller never waits
// for a worker that has not yet picked the job up: on a busy machine a
// descheduled worker costs a missing helper, not a stalled loop.
// Thread-safety: parallel_for() may be called from several threads; calls are
// serialised (one loop at a time uses all threads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aifn::engine {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into chunks of `grain` items handed out dynamically; calls
  // fn(begin, end, thread_index) for each chunk and waits.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  // Calls fn(thread_index) on the caller and on every worker that joins before
  // the caller has finished its own call; waits for those that joined.
  void run(const std::function<void(int)>& fn);
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // serialises run() callers

  std::mutex mutex_;  // guards sleeping and stop_
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> joined_{0};    // workers that took the current job; negative once closed
  std::atomic<int> finished_{0};  // of those, how many are done
  const std::function<void(int)>* job_ = nullptr;  // published by the joined_ reset
};

}  // namespace aifn::engine
