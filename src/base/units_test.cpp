#include "base/units.h"

#include <gtest/gtest.h>

namespace aifn {

TEST(Units, DurationsAcceptEveryUnit) {
  EXPECT_EQ(parse_duration("250ms")->count(), 250);
  EXPECT_EQ(parse_duration("30s")->count(), 30'000);
  EXPECT_EQ(parse_duration("5m")->count(), 300'000);
  EXPECT_EQ(parse_duration("2h")->count(), 7'200'000);
  EXPECT_EQ(parse_duration("1.5s")->count(), 1500);
}

TEST(Units, DurationsRejectMissingOrUnknownUnits) {
  EXPECT_FALSE(parse_duration("30"));
  EXPECT_FALSE(parse_duration("30d"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration(""));
}

TEST(Units, SizesAreDecimalOrBinary) {
  EXPECT_EQ(*parse_size("1024"), 1024u);
  EXPECT_EQ(*parse_size("1KB"), 1000u);
  EXPECT_EQ(*parse_size("6MiB"), 6u * 1024 * 1024);
  EXPECT_EQ(*parse_size("256Mi"), 256u * 1024 * 1024);
  EXPECT_EQ(*parse_size("1GB"), 1'000'000'000u);
  EXPECT_EQ(*parse_size("2GiB"), 2ull * 1024 * 1024 * 1024);
  EXPECT_FALSE(parse_size("12XB"));
  EXPECT_FALSE(parse_size("lots"));
}

TEST(Units, FormatNamesTheLimit) {
  EXPECT_EQ(format_size(1024 * 1024), "1 MiB");
  EXPECT_EQ(format_size(1000), "1000 bytes");
  EXPECT_EQ(format_duration(Millis(30'000)), "30s");
}

}  // namespace aifn
