// Persistent thread pool for the engine's parallel loops (matmul rows,
// attention heads). The calling thread takes part as thread 0, so a pool of N
// threads starts N-1 workers. Workers spin briefly between jobs (a decode step
// issues hundreds of short parallel loops) and then sleep on a condition variable.
// Thread-safety: run()/parallel_for() may be called from several threads; calls
// are serialised (one job at a time uses all threads).
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

  // Calls fn(thread_index, n_threads) once on every thread and waits for all.
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into chunks of `grain` items handed out dynamically; calls
  // fn(begin, end, thread_index) for each chunk and waits.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // serialises run() callers

  std::mutex mutex_;  // guards sleeping and stop_
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int, int)>* job_ = nullptr;  // valid while pending_ > 0
};

}  // namespace aifn::engine
