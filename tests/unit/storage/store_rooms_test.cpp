// SPDX-License-Identifier: Apache-2.0
// The Store contract (see store_fixture.h): rooms, affiliations and the node registry.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/columns.h"
#include "storage/errc.h"
#include "storage/store.h"

#include "schema/migrations.h"
#include "store_fixture.h"

namespace tc::storage::test {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// ---- rooms and affiliations ----

TEST_P(StoreTest, RoomsSaveLoadListDelete) {
  migrate();
  RoomRecord room;
  room.jid = std::string(kRoom);
  room.config_json = R"({"muc#roomconfig_roomname":"Lobby","members_only":false})";
  room.persistent = true;
  room.subject = "Welcome";
  room.subject_nick = "alice";
  room.subject_at = 1234;
  room.host_node = "node-a";
  room.created_at = 1000;
  ASSERT_TRUE(store_->save_room(room));

  RoomRecord other = room;
  other.jid = std::string(kOtherRoom);
  other.host_node = "node-b";
  other.persistent = false;
  ASSERT_TRUE(store_->save_room(other));

  auto loaded = store_->load_room(kRoom);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->config_json, room.config_json);
  EXPECT_TRUE(loaded->persistent);
  EXPECT_EQ(loaded->subject, "Welcome");
  EXPECT_EQ(loaded->subject_nick, "alice");
  EXPECT_EQ(loaded->subject_at, 1234);
  EXPECT_EQ(loaded->host_node, "node-a");
  EXPECT_EQ(loaded->created_at, 1000);
  EXPECT_FALSE(store_->load_room(kOtherRoom)->persistent);

  // save_room replaces.
  room.subject = "New topic";
  room.host_node = "node-b";
  ASSERT_TRUE(store_->save_room(room));
  EXPECT_EQ(store_->load_room(kRoom)->subject, "New topic");

  auto all = store_->list_rooms();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].jid, kOtherRoom);  // sorted by JID
  EXPECT_EQ((*all)[1].jid, kRoom);
  EXPECT_EQ(store_->list_rooms("node-b")->size(), 2u);
  EXPECT_TRUE(store_->list_rooms("node-a")->empty());

  EXPECT_EQ(store_->load_room("nowhere@conference.example.com").error(), Errc::NotFound);
  EXPECT_EQ(store_->delete_room("nowhere@conference.example.com").error(), Errc::NotFound);
}

TEST_P(StoreTest, NodeRegistryUpsertsAndLists) {
  migrate();
  ASSERT_TRUE(store_->upsert_node(node("node-b", true, 2000, "http://127.0.0.1:20075")));
  ASSERT_TRUE(store_->upsert_node(node("node-a", true, 1000, "")));
  ASSERT_TRUE(store_->upsert_node(node("node-a", false, 3000, "http://127.0.0.1:20076")));
  auto nodes = store_->list_nodes();
  ASSERT_TRUE(nodes);
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].node, "node-a");
  EXPECT_FALSE((*nodes)[0].text_conference_running);
  EXPECT_EQ((*nodes)[0].heartbeat_at, 3000);
  EXPECT_EQ((*nodes)[0].admin_url, "http://127.0.0.1:20076");
  EXPECT_EQ((*nodes)[1].node, "node-b");
  EXPECT_TRUE((*nodes)[1].text_conference_running);
}

TEST_P(StoreTest, DeleteRoomRemovesAffiliationsAndArchive) {
  migrate();
  for (const auto jid : {kRoom, kOtherRoom}) {
    RoomRecord room;
    room.jid = std::string(jid);
    ASSERT_TRUE(store_->save_room(room));
    ASSERT_TRUE(store_->set_affiliation(
        {std::nullopt, std::string(jid), "alice@example.com", Affiliation::Owner, "", ""}));
  }
  append(5, 1, kRoom);
  append(3, 1, kOtherRoom);

  ASSERT_TRUE(store_->delete_room(kRoom));
  EXPECT_EQ(store_->load_room(kRoom).error(), Errc::NotFound);
  EXPECT_TRUE(store_->load_affiliations(kRoom)->empty());
  EXPECT_EQ(*store_->count_messages(kRoom), 0u);
  // The other room is untouched.
  EXPECT_TRUE(store_->load_room(kOtherRoom));
  EXPECT_EQ(store_->load_affiliations(kOtherRoom)->size(), 1u);
  EXPECT_EQ(*store_->count_messages(kOtherRoom), 3u);
  EXPECT_EQ(*store_->count_messages(""), 3u);
}

TEST_P(StoreTest, AffiliationsSetReplaceRemove) {
  migrate();
  const std::string room(kRoom);
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "carol@example.com", Affiliation::Member, "", "cc"}));
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "alice@example.com", Affiliation::Owner, "", ""}));
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "mallory@evil.example", Affiliation::Outcast, "spam", ""}));
  ASSERT_TRUE(
      store_->set_affiliation({std::nullopt, room, "bob@example.com", Affiliation::Admin, "", ""}));

  auto affs = store_->load_affiliations(kRoom);
  ASSERT_TRUE(affs);
  ASSERT_EQ(affs->size(), 4u);
  EXPECT_EQ((*affs)[0].user_jid, "alice@example.com");
  EXPECT_EQ((*affs)[0].affiliation, Affiliation::Owner);
  EXPECT_EQ((*affs)[1].affiliation, Affiliation::Admin);
  EXPECT_EQ((*affs)[2].user_jid, "carol@example.com");
  EXPECT_EQ((*affs)[2].affiliation, Affiliation::Member);
  EXPECT_EQ((*affs)[2].nick, "cc");
  EXPECT_EQ((*affs)[3].affiliation, Affiliation::Outcast);
  EXPECT_EQ((*affs)[3].reason, "spam");
  EXPECT_EQ((*affs)[3].room_jid, kRoom);

  // Replace, then remove with None.
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "carol@example.com", Affiliation::Admin, "", ""}));
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "mallory@evil.example", Affiliation::None, "", ""}));
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, room, "nobody@example.com", Affiliation::None, "", ""}));
  affs = store_->load_affiliations(kRoom);
  ASSERT_EQ(affs->size(), 3u);
  EXPECT_EQ((*affs)[2].affiliation, Affiliation::Admin);
  EXPECT_EQ((*affs)[2].nick, "");
  EXPECT_TRUE(store_->load_affiliations(kOtherRoom)->empty());
}

}  // namespace
}  // namespace tc::storage::test
