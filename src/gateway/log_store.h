// The recent output of every function, for `aifn logs` and
// GET /admin/logs/{name}: a bounded ring of lines per function (each tagged
// with its request id), and followers that receive new lines as they are
// written (`follow=1`). io thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace aifn::gateway {

class LogStore {
 public:
  explicit LogStore(std::size_t lines_per_function = 2000) : cap_(lines_per_function) {}
  void add(runtime::LogLine line);
  std::vector<runtime::LogLine> recent(const std::string& function, std::int64_t since_ms) const;
  // Returns a handle for unfollow().
  std::uint64_t follow(const std::string& function, std::function<void(const runtime::LogLine&)> cb);
  void unfollow(std::uint64_t handle);
  // All lines of one call, oldest first (X-Amz-Log-Result, tests).
  std::vector<runtime::LogLine> for_request(const std::string& function, const std::string& request_id) const;

 private:
  std::size_t cap_;
  std::map<std::string, std::deque<runtime::LogLine>> lines_;
  struct Follower {
    std::string function;
    std::function<void(const runtime::LogLine&)> cb;
  };
  std::map<std::uint64_t, Follower> followers_;
  std::uint64_t next_ = 1;
};

std::string to_json_line(const runtime::LogLine& l);

}  // namespace aifn::gateway
