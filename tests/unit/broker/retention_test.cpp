// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include "storage/store.h"

#include "muc/muc_service.h"
#include "muc/room_config.h"

namespace tc::broker::muc {
namespace {

constexpr storage::UnixMillis kDay = 86'400'000;
constexpr storage::UnixMillis kNow = 1'000 * kDay;

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = storage::open_store("sqlite::memory:");
    ASSERT_TRUE(opened);
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->migrate());
  }

  /// A room whose messages are 10, 5 and 1 days old.
  void add_room(const std::string& jid, int retention_days) {
    RoomConfig c;
    c.retention_days = retention_days;
    storage::RoomRecord r;
    r.jid = jid;
    r.config_json = c.to_json();
    ASSERT_TRUE(store_->save_room(r));
    std::vector<storage::NewMessage> batch;
    for (int age : {10, 5, 1}) {
      batch.push_back({std::nullopt, jid, jid + std::to_string(age), "n", "u@x", "groupchat",
                       "<message/>", kNow - age * kDay});
    }
    ASSERT_TRUE(store_->append_messages(batch));
  }

  std::uint64_t count(const std::string& jid) { return *store_->count_messages(jid); }

  std::unique_ptr<storage::Store> store_;
};

TEST_F(RetentionTest, OffByDefaultKeepsEverything) {
  add_room("a@c", 0);
  Config config;  // muc.retention_days = 0
  auto removed = purge_expired(*store_, config, kNow);
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 0u);
  EXPECT_EQ(count("a@c"), 3u);
}

TEST_F(RetentionTest, ServiceDefaultAppliesWhereRoomsSetNothing) {
  add_room("a@c", 0);
  Config config;
  config.muc_retention_days = 7;
  EXPECT_EQ(*purge_expired(*store_, config, kNow), 1u);  // the 10-day-old message
  EXPECT_EQ(count("a@c"), 2u);
}

TEST_F(RetentionTest, RoomOverrideWinsOverTheServiceDefault) {
  add_room("short@c", 2);  // keeps only the 1-day-old message
  add_room("long@c", 0);   // service default: keeps everything younger than 30 days
  Config config;
  config.muc_retention_days = 30;
  EXPECT_EQ(*purge_expired(*store_, config, kNow), 2u);
  EXPECT_EQ(count("short@c"), 1u);
  EXPECT_EQ(count("long@c"), 3u);
}

}  // namespace
}  // namespace tc::broker::muc
