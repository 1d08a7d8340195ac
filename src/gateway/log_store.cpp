#include "gateway/log_store.h"

#include <boost/json.hpp>

namespace aifn::gateway {

void LogStore::add(runtime::LogLine line) {
  for (auto& [_, f] : followers_)
    if (f.function == line.function) f.cb(line);
  auto& q = lines_[line.function];
  q.push_back(std::move(line));
  while (q.size() > cap_) q.pop_front();
}

std::vector<runtime::LogLine> LogStore::recent(const std::string& function, std::int64_t since_ms) const {
  std::vector<runtime::LogLine> out;
  auto it = lines_.find(function);
  if (it == lines_.end()) return out;
  for (auto& l : it->second)
    if (l.time_ms >= since_ms) out.push_back(l);
  return out;
}

std::vector<runtime::LogLine> LogStore::for_request(const std::string& function, const std::string& rid) const {
  std::vector<runtime::LogLine> out;
  auto it = lines_.find(function);
  if (it == lines_.end()) return out;
  for (auto& l : it->second)
    if (l.request_id == rid) out.push_back(l);
  return out;
}

std::uint64_t LogStore::follow(const std::string& function, std::function<void(const runtime::LogLine&)> cb) {
  auto h = next_++;
  followers_[h] = {function, std::move(cb)};
  return h;
}

void LogStore::unfollow(std::uint64_t handle) { followers_.erase(handle); }

std::string to_json_line(const runtime::LogLine& l) {
  boost::json::object o{{"time_ms", l.time_ms},   {"function", l.function}, {"request_id", l.request_id},
                        {"stream", l.stream},     {"message", l.text}};
  return boost::json::serialize(o) + "\n";
}

}  // namespace aifn::gateway
