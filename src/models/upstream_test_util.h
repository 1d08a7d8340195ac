// Test helpers shared by the upstream and openai provider tests: a throwaway
// CA written to a temp file, and a way to run a coroutine to completion.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "models/upstream_client.h"
#include "models/upstream_test_certs.h"

namespace aifn::models::testing {

// Writes `pem` to a fresh file under the temp dir; removed with the object.
class TempPemFile {
 public:
  explicit TempPemFile(const std::string& pem) {
    static int n = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("aifn-upstream-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".pem");
    std::ofstream(path_) << pem;
  }
  ~TempPemFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Runs `make()`'s coroutine on `io` until it finishes (other work on io too).
template <class T>
T run_on(boost::asio::io_context& io, const std::function<boost::asio::awaitable<T>()>& make) {
  auto fut = boost::asio::co_spawn(io, make(), boost::asio::use_future);
  io.restart();
  io.run();
  return fut.get();
}

// Short deadlines and backoffs so failure paths finish quickly in tests.
inline UpstreamOptions fast_options() {
  UpstreamOptions o;
  o.connect_timeout = Millis(5'000);
  o.first_byte_timeout = Millis(5'000);
  o.idle_timeout = Millis(5'000);
  o.backoff_base = Millis(5);
  o.backoff_max = Millis(20);
  o.retry_after_cap = Millis(3'000);
  return o;
}

}  // namespace aifn::models::testing
