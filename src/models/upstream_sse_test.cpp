#include "models/upstream_sse.h"

#include <gtest/gtest.h>

namespace aifn::models {
namespace {

std::vector<std::string> decode_split(std::string_view all, std::size_t piece) {
  SseDecoder d;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < all.size(); i += piece) EXPECT_TRUE(d.feed(all.substr(i, piece), out));
  d.finish(out);
  return out;
}

TEST(SseDecoder, EventsSurviveAnySplit) {
  const std::string stream =
      ": keep-alive comment\r\n\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: message\nid: 7\ndata:{\"b\":2}\n\n"
      "data: line1\rdata: line2\r\r"
      "data: [DONE]\n\n";
  const std::vector<std::string> want = {"{\"a\":1}", "{\"b\":2}", "line1\nline2", "[DONE]"};
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) EXPECT_EQ(decode_split(stream, piece), want) << piece;
}

TEST(SseDecoder, UnterminatedLastEventDeliveredAtEnd) {
  EXPECT_EQ(decode_split("data: x\n\ndata: tail", 3), (std::vector<std::string>{"x", "tail"}));
}

TEST(SseDecoder, OverlongLineIsAnError) {
  SseDecoder d(16);
  std::vector<std::string> out;
  EXPECT_FALSE(d.feed("data: " + std::string(100, 'x'), out));
  EXPECT_FALSE(d.feed("\n\n", out));
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace aifn::models
