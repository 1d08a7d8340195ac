// aifn::models::SseDecoder — incremental decoder for the Server-Sent Events
// streams OpenAI-compatible upstreams answer with (`stream: true`): bytes go
// in as they arrive, split anywhere (also inside a CRLF or a UTF-8
// character); each complete event's `data` (its data lines joined with "\n")
// comes out. Comments (":"), other fields (event, id, retry) and empty events
// are skipped; LF, CRLF and CR all end a line (WHATWG HTML §9.2). Outside
// input: a line longer than the limit is an error, not unbounded memory.
// Not thread-safe: one decoder per stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace aifn::models {

class SseDecoder {
 public:
  explicit SseDecoder(std::size_t max_line = 8u << 20) : max_line_(max_line) {}
  // Appends the data of every event completed by `bytes` to `events`.
  // Returns false once a line exceeded the limit (the stream is unusable).
  bool feed(std::string_view bytes, std::vector<std::string>& events);
  // End of stream: an unterminated last line and event are delivered too.
  void finish(std::vector<std::string>& events);

 private:
  void line_done(std::vector<std::string>& events);
  std::size_t max_line_;
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;  // the previous byte was CR: a following LF belongs to it
  bool broken_ = false;
};

}  // namespace aifn::models
