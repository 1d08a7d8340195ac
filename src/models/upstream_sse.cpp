#include "models/upstream_sse.h"

namespace aifn::models {

bool SseDecoder::feed(std::string_view bytes, std::vector<std::string>& events) {
  if (broken_) return false;
  for (char ch : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (ch == '\n') continue;  // the LF of a CRLF already ended the line
    }
    if (ch == '\r' || ch == '\n') {
      after_cr_ = ch == '\r';
      line_done(events);
      continue;
    }
    if (line_.size() >= max_line_) {
      broken_ = true;
      return false;
    }
    line_.push_back(ch);
  }
  return true;
}

void SseDecoder::finish(std::vector<std::string>& events) {
  if (broken_) return;
  if (!line_.empty()) line_done(events);
  line_done(events);  // an empty line dispatches a pending event
}

void SseDecoder::line_done(std::vector<std::string>& events) {
  if (line_.empty()) {  // blank line: dispatch
    if (has_data_) events.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view l = line_;
  if (l.front() != ':') {  // ':' starts a comment (keep-alive pings)
    auto colon = l.find(':');
    std::string_view field = l.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    }
  }
  line_.clear();
}

}  // namespace aifn::models
