// SPDX-License-Identifier: Apache-2.0
#include "xmpp/datetime.h"

#include <gtest/gtest.h>

namespace tc::xmpp {
namespace {

// 2024-05-01T12:34:56.789Z
constexpr UnixMillis kMay = 1'714'566'896'789;

TEST(DateTimeTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(xep82_timestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(xep82_timestamp(kMay), "2024-05-01T12:34:56.789Z");
  EXPECT_EQ(xep82_timestamp(kMay - 789 + 5), "2024-05-01T12:34:56.005Z");
}

TEST(DateTimeTest, ParsesWhatItFormats) {
  for (UnixMillis at : {UnixMillis{0}, kMay, UnixMillis{951'782'400'000}}) {  // 2000-02-29
    EXPECT_EQ(parse_xep82(xep82_timestamp(at)), at) << xep82_timestamp(at);
  }
}

TEST(DateTimeTest, FractionIsOptionalAndCutToMilliseconds) {
  EXPECT_EQ(parse_xep82("2024-05-01T12:34:56Z"), kMay - 789);
  EXPECT_EQ(parse_xep82("2024-05-01T12:34:56.7Z"), kMay - 89);
  EXPECT_EQ(parse_xep82("2024-05-01T12:34:56.789123Z"), kMay);
}

TEST(DateTimeTest, OffsetsAreConvertedToUtc) {
  EXPECT_EQ(parse_xep82("2024-05-01T14:34:56.789+02:00"), kMay);
  EXPECT_EQ(parse_xep82("2024-05-01T07:04:56.789-05:30"), kMay);
  EXPECT_EQ(parse_xep82("2024-05-01T12:34:56.789+00:00"), kMay);
}

TEST(DateTimeTest, MalformedIsNullopt) {
  for (const char* bad : {"", "2024-05-01", "2024-05-01T12:34:56", "2024-05-01T12:34:56.789",
                          "2024-05-01 12:34:56Z", "yesterday at noon!!", "2024-05-01T12:34:56+2"}) {
    EXPECT_EQ(parse_xep82(bad), std::nullopt) << bad;
  }
  // What follows the zone is not looked at (as before the move to xmpp/).
  EXPECT_EQ(parse_xep82("2024-05-01T12:34:56.789Zulu"), kMay);
}

}  // namespace
}  // namespace tc::xmpp
