// SPDX-License-Identifier: Apache-2.0
#include "ha/cluster_settings.h"

#include <gtest/gtest.h>

namespace tc::broker::ha {
namespace {

using std::chrono::milliseconds;

std::string normal(std::string_view key, std::string_view value) {
  std::string message;
  auto n = normalize_setting(key, value, &message);
  return n ? *n : "error: " + message;
}

TEST(ClusterSettings, DefaultsAreTheVendors) {
  const ClusterSettings s;
  EXPECT_EQ(s.assignment_mode, AssignmentMode::Balanced);
  EXPECT_EQ(s.critical_service_down_delay, milliseconds(90'000));
  EXPECT_FALSE(s.auto_fallback);
  EXPECT_EQ(s.auto_fallback_delay, milliseconds(1'800'000));
  EXPECT_EQ(s.init_heartbeat_timeout, milliseconds(120'000));
  EXPECT_EQ(s.heartbeat_timeout, milliseconds(60'000));
  EXPECT_EQ(s.heartbeat_interval, milliseconds(15'000));
  EXPECT_FALSE(s.monitor_authentication);
  const auto pairs = s.to_pairs();
  ASSERT_EQ(pairs.size(), setting_keys().size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(pairs[i].first, setting_keys()[i].first);  // same keys, same order
  }
  EXPECT_EQ(pairs[0].second, "balanced");
  EXPECT_EQ(pairs[1].second, "90");
  EXPECT_EQ(pairs[3].second, "1800");
}

TEST(ClusterSettings, DurationsAcceptSecondsFractionsAndUnits) {
  EXPECT_EQ(normal("heartbeat_interval", "15"), "15");
  EXPECT_EQ(normal("heartbeat_interval", "0.1"), "0.1");
  EXPECT_EQ(normal("heartbeat_interval", "1.5s"), "1.5");
  EXPECT_EQ(normal("heartbeat_interval", "500ms"), "0.5");
  EXPECT_EQ(normal("heartbeat_timeout", " 60 "), "60");
  EXPECT_EQ(normal("heartbeat_timeout", "86400"), "86400");
  EXPECT_EQ(normal("heartbeat_timeout", "0.250"), "0.25");
}

TEST(ClusterSettings, DurationsRejectZeroNegativeHugeAndJunk) {
  for (const char* bad : {"0", "-1", "86401", "0ms", "abc", "", "1e3", "5m", "+3", "1.5 s s"}) {
    std::string message;
    EXPECT_FALSE(normalize_setting("heartbeat_timeout", bad, &message)) << bad;
    EXPECT_NE(message.find("heartbeat_timeout"), std::string::npos) << message;
  }
}

TEST(ClusterSettings, BooleansAndModesAreNormalised) {
  EXPECT_EQ(normal("auto_fallback", "yes"), "true");
  EXPECT_EQ(normal("auto_fallback", "OFF"), "false");
  EXPECT_EQ(normal("monitor_authentication", "1"), "true");
  EXPECT_EQ(normal("assignment_mode", "Active-Standby"), "active-standby");
  EXPECT_EQ(normal("assignment_mode", "none"), "none");
  EXPECT_EQ(normal("assignment_mode", "round-robin").rfind("error: assignment_mode", 0), 0u);
  EXPECT_EQ(normal("auto_fallback", "maybe").rfind("error: auto_fallback", 0), 0u);
}

TEST(ClusterSettings, UnknownKeyNamesTheKnownOnes) {
  std::string message;
  EXPECT_FALSE(normalize_setting("heartbeat", "1", &message));
  EXPECT_NE(message.find("heartbeat_interval"), std::string::npos) << message;
}

TEST(ClusterSettings, FromPairsAppliesValuesAndKeepsDefaults) {
  auto s = ClusterSettings::from_pairs({{"heartbeat_interval", "100ms"},
                                        {"heartbeat_timeout", "0.5"},
                                        {"assignment_mode", "active-standby"},
                                        {"auto_fallback", "true"},
                                        {"ha_enabled", "whatever"}});  // not ours: ignored
  ASSERT_TRUE(s);
  EXPECT_EQ(s->heartbeat_interval, milliseconds(100));
  EXPECT_EQ(s->heartbeat_timeout, milliseconds(500));
  EXPECT_EQ(s->assignment_mode, AssignmentMode::ActiveStandby);
  EXPECT_TRUE(s->auto_fallback);
  EXPECT_EQ(s->critical_service_down_delay, milliseconds(90'000));
}

TEST(ClusterSettings, FromPairsNamesTheBadKey) {
  std::string bad_key;
  std::string message;
  EXPECT_FALSE(
      ClusterSettings::from_pairs({{"critical_service_down_delay", "soon"}}, &bad_key, &message));
  EXPECT_EQ(bad_key, "critical_service_down_delay");
  // Interval must stay below the timeout (defaults: timeout 60).
  EXPECT_FALSE(ClusterSettings::from_pairs({{"heartbeat_interval", "60"}}, &bad_key, &message));
  EXPECT_EQ(bad_key, "heartbeat_interval");
  EXPECT_NE(message.find("heartbeat_timeout"), std::string::npos);
}

TEST(ClusterSettings, AssignmentModeRoundTrips) {
  for (auto m : {AssignmentMode::Balanced, AssignmentMode::ActiveStandby, AssignmentMode::None}) {
    EXPECT_EQ(assignment_mode_from(to_string(m)), m);
  }
  EXPECT_FALSE(assignment_mode_from("active"));
}

TEST(GroupRules, Names) {
  EXPECT_TRUE(valid_group_name("group-1_A"));
  EXPECT_TRUE(valid_group_name(std::string(128, 'a')));
  EXPECT_FALSE(valid_group_name(""));
  EXPECT_FALSE(valid_group_name(std::string(129, 'a')));
  EXPECT_FALSE(valid_group_name("group 1"));
  EXPECT_FALSE(valid_group_name("group.1"));
  EXPECT_FALSE(valid_group_name("grüppe"));
}

TEST(GroupRules, Descriptions) {
  EXPECT_TRUE(valid_group_description(""));
  EXPECT_TRUE(valid_group_description("Seoul pair, rack 4 (primary: 1A)!"));
  EXPECT_TRUE(valid_group_description(std::string(128, 'x')));
  EXPECT_FALSE(valid_group_description(std::string(129, 'x')));
  for (const char* bad : {"a\"b", "50%", "a&b", "a/b", "<b>", "a>b", "tab\there", "nl\n"}) {
    EXPECT_FALSE(valid_group_description(bad)) << bad;
  }
  // Printable non-ASCII is allowed and counted in characters, not bytes.
  std::string korean;
  for (int i = 0; i < 128; ++i) {
    korean += "\xea\xb7\xb8";  // U+ADF8, 3 bytes
  }
  EXPECT_TRUE(valid_group_description(korean));
  EXPECT_FALSE(valid_group_description(korean + "\xea\xb7\xb8"));
  EXPECT_FALSE(valid_group_description("\xc2\x85"));  // C1 control
  EXPECT_FALSE(valid_group_description("\xff"));      // not UTF-8
  EXPECT_FALSE(valid_group_description("\xc0\xaf"));  // overlong '/'
}

}  // namespace
}  // namespace tc::broker::ha
