// SPDX-License-Identifier: Apache-2.0
#include "ha/cluster_view.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tc::broker::ha {
namespace {

std::string name(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%02d", prefix, i);
  return buf;
}

ClusterSnapshot pair() {
  ClusterSnapshot s;
  s.self = "node1";
  s.members = {"node1", "node2"};
  return s;
}

TEST(ClusterViewTest, SimilarRoomNamesDoNotAlternateInFixedPatterns) {
  // FNV-1a % 2 put r00-r09 and r10-r19 on opposite nodes, name for name.
  const auto s = pair();
  int same = 0;
  for (int i = 0; i < 10; ++i) {
    same += s.room_partition(name("r", i) + "@conference.localhost") ==
            s.room_partition(name("r", i + 10) + "@conference.localhost");
  }
  EXPECT_GT(same, 0);
  EXPECT_LT(same, 10);
}

TEST(ClusterViewTest, RoomsSpreadEvenlyOverTwoAndThreeMembers) {
  for (const auto& members : {std::vector<std::string>{"node1", "node2"},
                              std::vector<std::string>{"g1a", "g2a", "g3a"}}) {
    std::map<std::string, int> count;
    const int n = 3000;
    for (int i = 0; i < n; ++i) {
      ++count[ClusterSnapshot::owner_of(members, "room-" + std::to_string(i) + "@conference.x")];
    }
    ASSERT_EQ(count.size(), members.size());
    for (const auto& [m, c] : count) {
      const double share = static_cast<double>(c) / n;
      EXPECT_NEAR(share, 1.0 / members.size(), 0.05) << m;
    }
  }
}

TEST(ClusterViewTest, AddingAMemberMovesOnlyTheKeysItWins) {
  const std::vector<std::string> two{"g1", "g2"};
  const std::vector<std::string> three{"g1", "g2", "g3"};
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "room" + std::to_string(i);
    const auto& before = ClusterSnapshot::owner_of(two, key);
    const auto& after = ClusterSnapshot::owner_of(three, key);
    if (before != after) {
      EXPECT_EQ(after, "g3") << key;  // a key only ever moves to the new member
      ++moved;
    }
  }
  EXPECT_NEAR(moved / 2000.0, 1.0 / 3, 0.05);
}

TEST(ClusterViewTest, UsersFollowTheAssignmentMode) {
  auto s = pair();
  EXPECT_TRUE(s.user_partition("alice").has_value());
  EXPECT_EQ(*s.user_partition("alice"), ClusterSnapshot::owner_of(s.members, "alice"));
  s.mode = AssignmentMode::ActiveStandby;
  EXPECT_EQ(s.user_partition("alice"), "node1");
  EXPECT_EQ(s.user_partition("bob"), "node1");
  s.mode = AssignmentMode::None;
  EXPECT_EQ(s.user_partition("alice"), std::nullopt);
}

}  // namespace
}  // namespace tc::broker::ha
