// SPDX-License-Identifier: Apache-2.0
// The Store contract for users' own data (tc_user_data, schema v5) on every backend.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/errc.h"
#include "storage/store.h"

#include "store_fixture.h"

namespace tc::storage::test {
namespace {

constexpr char kAlice[] = "alice@example.com";
constexpr char kBob[] = "bob@example.com";

UserDataChange set(std::string owner, std::string kind, std::string key, std::string value) {
  return {std::move(owner), std::move(kind), std::move(key), std::move(value)};
}
UserDataChange erase(std::string owner, std::string kind, std::string key) {
  return {std::move(owner), std::move(kind), std::move(key), std::nullopt};
}

std::vector<std::string> keys_of(const std::vector<UserDatum>& data) {
  std::vector<std::string> out;
  for (const auto& d : data) {
    out.push_back(d.key);
  }
  return out;
}

TEST_P(StoreTest, UserDataAreSetReplacedListedAndDeleted) {
  migrate();
  const std::vector<UserDataChange> first = {
      set(kAlice, "roster", "bob@example.com", "<item jid='bob@example.com'/>"),
      set(kAlice, "roster", "carol@example.com", "<item jid='carol@example.com'/>"),
      set(kAlice, "roster", "Änne@example.com", "<item/>"),  // non-ASCII sorts by bytes
      set(kAlice, "vcard", "", "<vCard xmlns='vcard-temp'/>"),
      set(kBob, "roster", "alice@example.com", "<item jid='alice@example.com'/>"),
  };
  ASSERT_TRUE(store_->apply_user_data(first));
  auto roster = store_->list_user_data(kAlice, "roster");
  ASSERT_TRUE(roster) << roster.error().message();
  EXPECT_THAT(keys_of(*roster),
              ::testing::ElementsAre("bob@example.com", "carol@example.com", "Änne@example.com"));
  EXPECT_EQ((*roster)[0].value, "<item jid='bob@example.com'/>");
  EXPECT_GT((*roster)[0].updated_at, 1'600'000'000'000) << "stamped with the database clock";
  EXPECT_EQ(*store_->count_user_data(kAlice, "roster"), 3u);
  EXPECT_EQ(*store_->count_user_data(kBob, "roster"), 1u);
  EXPECT_EQ(*store_->count_user_data(kBob, "vcard"), 0u);
  EXPECT_EQ(*store_->get_user_datum(kAlice, "vcard", ""), "<vCard xmlns='vcard-temp'/>");
  auto missing = store_->get_user_datum(kBob, "vcard", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), Errc::NotFound);

  // Replace one, delete one, delete one that is not there: one transaction.
  const std::vector<UserDataChange> second = {
      set(kAlice, "roster", "bob@example.com", "<item jid='bob@example.com' name='B'/>"),
      erase(kAlice, "roster", "carol@example.com"),
      erase(kAlice, "roster", "nobody@example.com"),
  };
  ASSERT_TRUE(store_->apply_user_data(second));
  EXPECT_THAT(keys_of(*store_->list_user_data(kAlice, "roster")),
              ::testing::ElementsAre("bob@example.com", "Änne@example.com"));
  EXPECT_EQ(*store_->get_user_datum(kAlice, "roster", "bob@example.com"),
            "<item jid='bob@example.com' name='B'/>");
  // Another connection sees what was committed.
  auto other = open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(*other->count_user_data(kAlice, "roster"), 2u);
  EXPECT_TRUE(store_->apply_user_data({}));
}

TEST_P(StoreTest, UserDataListsByKeyPrefixAndLimit) {
  migrate();
  std::vector<UserDataChange> items;
  for (const char* key : {"urn:xmpp:bookmarks:1\nb", "urn:xmpp:bookmarks:1\na",
                          "urn:xmpp:avatar:data\nsha1", "urn:xmpp:bookmarks:10\nz", "ü\nx"}) {
    items.push_back(set(kAlice, "pep", key, std::string("<v k='") + key + "'/>"));
  }
  ASSERT_TRUE(store_->apply_user_data(items));
  auto bookmarks = store_->list_user_data(kAlice, "pep", "urn:xmpp:bookmarks:1\n");
  ASSERT_TRUE(bookmarks) << bookmarks.error().message();
  EXPECT_THAT(keys_of(*bookmarks),
              ::testing::ElementsAre("urn:xmpp:bookmarks:1\na", "urn:xmpp:bookmarks:1\nb"));
  EXPECT_THAT(keys_of(*store_->list_user_data(kAlice, "pep", "ü\n")),
              ::testing::ElementsAre("ü\nx"));
  EXPECT_THAT(keys_of(*store_->list_user_data(kAlice, "pep", {}, 2)),
              ::testing::ElementsAre("urn:xmpp:avatar:data\nsha1", "urn:xmpp:bookmarks:1\na"));
  EXPECT_TRUE(store_->list_user_data(kBob, "pep")->empty());
}

TEST_P(StoreTest, DeletingAUsersDataLeavesOthersAndRooms) {
  migrate();
  ASSERT_TRUE(store_->apply_user_data(std::vector{
      set(kAlice, "roster", "bob@example.com", "<item/>"), set(kAlice, "vcard", "", "<vCard/>"),
      set(kBob, "roster", "alice@example.com", "<item/>")}));
  NewMessage chat;
  chat.room_jid = kAlice;
  chat.stanza_id = "c1";
  chat.kind = "chat";
  chat.stanza_xml = "<message/>";
  NewMessage room = chat;
  room.room_jid = "lobby@conference.example.com";
  room.kind = "groupchat";
  ASSERT_TRUE(store_->append_messages(std::vector{chat, room}));

  auto removed = store_->delete_user_data_of(kAlice);
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_EQ(*removed, 3u) << "two data rows and one archived chat";
  EXPECT_EQ(*store_->count_user_data(kAlice, "roster"), 0u);
  EXPECT_EQ(*store_->count_user_data(kBob, "roster"), 1u);
  EXPECT_EQ(*store_->count_messages(kAlice), 0u);
  EXPECT_EQ(*store_->count_messages("lobby@conference.example.com"), 1u);
  EXPECT_EQ(*store_->delete_user_data_of(kAlice), 0u);
}

}  // namespace
}  // namespace tc::storage::test
