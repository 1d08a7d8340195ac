#include "cache/single_flight.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace aifn::cache {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

TEST(SingleFlight, IdenticalKeysInFlightShareOneRun) {
  net::io_context io;
  SingleFlight<int> sf;
  int runs = 0, shared_count = 0;
  std::vector<int> results;
  auto work = [&]() -> net::awaitable<int> {
    ++runs;
    net::steady_timer t(co_await net::this_coro::executor, 50ms);
    co_await t.async_wait(net::use_awaitable);
    co_return 42;
  };
  for (int i = 0; i < 5; ++i)
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      bool shared = false;
      results.push_back(co_await sf.run("k", work, &shared));
      shared_count += shared;
    }, net::detached);
  net::co_spawn(io, [&]() -> net::awaitable<void> {
    results.push_back(co_await sf.run("other", []() -> net::awaitable<int> { co_return 7; }));
  }, net::detached);
  io.run();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(shared_count, 4);
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ(std::count(results.begin(), results.end(), 42), 5);
  EXPECT_EQ(sf.in_flight(), 0u);
}

TEST(SingleFlight, ALaterCallRunsAgain) {
  net::io_context io;
  SingleFlight<int> sf;
  int runs = 0;
  auto work = [&]() -> net::awaitable<int> { co_return ++runs; };
  int a = 0, b = 0;
  net::co_spawn(io, [&]() -> net::awaitable<void> {
    a = co_await sf.run("k", work);
    b = co_await sf.run("k", work);
  }, net::detached);
  io.run();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
}

}  // namespace
}  // namespace aifn::cache
