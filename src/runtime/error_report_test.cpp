#include "runtime/error_report.h"

#include <gtest/gtest.h>

namespace aifn::runtime {
namespace {

TEST(ErrorReport, ReadsTypeAndMessageOrKeepsTheHeader) {
  auto r = parse_error_report(R"({"errorType":"TypeError","errorMessage":"x is undefined","trace":[]})", "Unhandled");
  EXPECT_EQ(r.type, "TypeError");
  EXPECT_EQ(r.message, "x is undefined");
  r = parse_error_report("not json", "Runtime.Custom");
  EXPECT_EQ(r.type, "Runtime.Custom");
  EXPECT_EQ(r.message, "");
  r = parse_error_report(R"({"errorType": 7})", "");
  EXPECT_EQ(r.type, "");
  EXPECT_EQ(r.message, "");
  EXPECT_EQ(parse_error_report(std::string(100000, '['), "H").type, "H");  // nesting bomb: refused, no crash
}

TEST(ErrorReport, TrailerIsBase64OfJsonOrKeptAsIs) {
  // base64 of {"errorType":"E"} (17 bytes: one padding character)
  EXPECT_EQ(decode_error_trailer("eyJlcnJvclR5cGUiOiJFIn0="), R"({"errorType":"E"})");
  EXPECT_EQ(decode_error_trailer(R"({"errorType":"E"})"), R"({"errorType":"E"})");
  EXPECT_EQ(decode_error_trailer("abc"), "abc");    // not base64: kept
  EXPECT_EQ(decode_error_trailer("ab!="), "ab!=");  // invalid characters: kept
  EXPECT_EQ(decode_error_trailer(""), "");
}

}  // namespace
}  // namespace aifn::runtime
