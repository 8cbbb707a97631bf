// SPDX-License-Identifier: Apache-2.0
// The Store contract (see store_fixture.h): the archive.
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

// ---- archive ----

TEST_P(StoreTest, AppendReturnsIncreasingSeqsInInputOrder) {
  migrate();
  const auto first = append(3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_LT(first[0], first[1]);
  EXPECT_LT(first[1], first[2]);
  const auto second = append(2, 4);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_LT(first[2], second[0]);
  EXPECT_EQ(*store_->count_messages(kRoom), 5u);
  auto empty = store_->append_messages({});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());

  auto all = page(Q().max(10));
  ASSERT_EQ(all.messages.size(), 5u);
  EXPECT_EQ(all.messages[0].seq, first[0]);
  EXPECT_EQ(all.messages[0].room_jid, kRoom);
  EXPECT_EQ(all.messages[0].sender_nick, "odd");
  EXPECT_EQ(all.messages[0].sender_jid, "odd@example.com");
  EXPECT_EQ(all.messages[0].kind, "groupchat");
  EXPECT_EQ(all.messages[0].created_at, 1001);
  EXPECT_EQ(all.messages[0].stanza_xml, "<message type='groupchat'><body>m1</body></message>");
}

TEST_P(StoreTest, DuplicateStanzaIdRollsBackTheWholeBatch) {
  migrate();
  append(1);  // m1
  const std::vector<NewMessage> batch = {message(kRoom, "m2", "a", 1),
                                         message(kRoom, "m1", "a", 2),  // taken
                                         message(kRoom, "m3", "a", 3)};
  auto r = store_->append_messages(batch);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::AlreadyExists);
  EXPECT_EQ(*store_->count_messages(kRoom), 1u);
  EXPECT_THAT(ids(page(Q().max(10)).messages), ElementsAre("m1"));

  // Duplicates inside one batch too.
  const std::vector<NewMessage> twice = {message(kRoom, "m9", "a", 1),
                                         message(kRoom, "m9", "a", 2)};
  EXPECT_EQ(store_->append_messages(twice).error(), Errc::AlreadyExists);
  EXPECT_EQ(*store_->count_messages(kRoom), 1u);

  // The same stanza id in another room is fine, and the store still works after the failure.
  const std::vector<NewMessage> elsewhere = {message(kOtherRoom, "m1", "a", 1)};
  EXPECT_TRUE(store_->append_messages(elsewhere));
  EXPECT_TRUE(store_->append_messages(std::vector<NewMessage>{message(kRoom, "m2", "a", 1)}));
}

TEST_P(StoreTest, PagesForwardWithCompleteAcrossBoundaries) {
  migrate();
  append(25);
  append(4, 1, kOtherRoom);  // must never show up

  auto p1 = page(Q().max(10));
  EXPECT_THAT(ids(p1.messages), ElementsAreArray(range(1, 10)));
  EXPECT_FALSE(p1.complete);
  ASSERT_TRUE(p1.count);
  EXPECT_EQ(*p1.count, 25u);

  auto p2 = page(Q().after(p1.messages.back().stanza_id).max(10));
  EXPECT_THAT(ids(p2.messages), ElementsAreArray(range(11, 20)));
  EXPECT_FALSE(p2.complete);

  auto p3 = page(Q().after(p2.messages.back().stanza_id).max(10));
  EXPECT_THAT(ids(p3.messages), ElementsAreArray(range(21, 25)));
  EXPECT_TRUE(p3.complete);

  // A page that ends exactly on the last message is complete.
  auto exact = page(Q().after("m15").max(10));
  EXPECT_THAT(ids(exact.messages), ElementsAreArray(range(16, 25)));
  EXPECT_TRUE(exact.complete);

  auto after_last = page(Q().after("m25").max(10));
  EXPECT_TRUE(after_last.messages.empty());
  EXPECT_TRUE(after_last.complete);

  // max = 0 asks only for the count (XEP-0059 §2.7).
  auto count_only = page(Q().max(0));
  EXPECT_TRUE(count_only.messages.empty());
  EXPECT_FALSE(count_only.complete);
  EXPECT_EQ(*count_only.count, 25u);
}

TEST_P(StoreTest, PagesBackwardFromTheLastPage) {
  migrate();
  append(25);

  auto last = page(Q().before("").max(10));
  EXPECT_THAT(ids(last.messages), ElementsAreArray(range(16, 25)));  // oldest first
  EXPECT_FALSE(last.complete);
  EXPECT_EQ(*last.count, 25u);

  auto p2 = page(Q().before(last.messages.front().stanza_id).max(10));
  EXPECT_THAT(ids(p2.messages), ElementsAreArray(range(6, 15)));
  EXPECT_FALSE(p2.complete);

  auto p3 = page(Q().before(p2.messages.front().stanza_id).max(10));
  EXPECT_THAT(ids(p3.messages), ElementsAreArray(range(1, 5)));
  EXPECT_TRUE(p3.complete);

  auto exact = page(Q().before("m11").max(10));
  EXPECT_THAT(ids(exact.messages), ElementsAreArray(range(1, 10)));
  EXPECT_TRUE(exact.complete);

  // Both cursors: the window between them, newest end first.
  auto window = page(Q().after("m3").before("m9").max(3));
  EXPECT_THAT(ids(window.messages), ElementsAre("m6", "m7", "m8"));
  EXPECT_FALSE(window.complete);
  auto window_rest = page(Q().after("m3").before("m6").max(3));
  EXPECT_THAT(ids(window_rest.messages), ElementsAre("m4", "m5"));
  EXPECT_TRUE(window_rest.complete);
}

TEST_P(StoreTest, FiltersByNickTimeAndPresence) {
  migrate();
  append(20);  // created_at 1001..1020; odd ids from "odd", even from "even"
  const std::vector<NewMessage> presence = {message(kRoom, "j1", "odd", 1021, "join"),
                                            message(kRoom, "l1", "odd", 1022, "leave")};
  ASSERT_TRUE(store_->append_messages(presence));

  auto odd = page(Q().nick("odd").max(4));
  EXPECT_THAT(ids(odd.messages), ElementsAre("m1", "m3", "m5", "m7"));
  EXPECT_FALSE(odd.complete);
  EXPECT_EQ(*odd.count, 10u);
  auto odd2 = page(Q().nick("odd").after("m13").max(4));
  EXPECT_THAT(ids(odd2.messages), ElementsAre("m15", "m17", "m19"));
  EXPECT_TRUE(odd2.complete);
  auto odd_last = page(Q().nick("odd").before("").max(3));
  EXPECT_THAT(ids(odd_last.messages), ElementsAre("m15", "m17", "m19"));
  EXPECT_FALSE(odd_last.complete);

  // start and end are inclusive.
  auto window = page(Q().start(1005).end(1009).max(10));
  EXPECT_THAT(ids(window.messages), ElementsAre("m5", "m6", "m7", "m8", "m9"));
  EXPECT_TRUE(window.complete);
  EXPECT_EQ(*window.count, 5u);
  auto window_paged = page(Q().start(1005).end(1009).max(2));
  EXPECT_THAT(ids(window_paged.messages), ElementsAre("m5", "m6"));
  EXPECT_FALSE(window_paged.complete);
  auto window_back = page(Q().start(1005).end(1009).before("").max(5));
  EXPECT_THAT(ids(window_back.messages), ElementsAre("m5", "m6", "m7", "m8", "m9"));
  EXPECT_TRUE(window_back.complete);
  auto from = page(Q().start(1018).max(10));
  EXPECT_THAT(ids(from.messages), ElementsAre("m18", "m19", "m20"));

  auto with_presence = page(Q().start(1019).end(1021).max(10).presence());
  EXPECT_THAT(ids(with_presence.messages), ElementsAre("m19", "m20", "j1"));
  EXPECT_THAT(ids(page(Q().start(1019).max(10)).messages), ElementsAre("m19", "m20"));
  // A window with nothing in it.
  auto none = page(Q().start(5000).max(10));
  EXPECT_TRUE(none.messages.empty());
  EXPECT_TRUE(none.complete);
  EXPECT_TRUE(page(Q().end(10).max(10)).messages.empty());
  EXPECT_EQ(*page(Q().max(100).presence()).count, 22u);
  EXPECT_EQ(*page(Q().max(100)).count, 20u);
}

TEST_P(StoreTest, UnknownCursorIsNotFound) {
  migrate();
  append(3);
  auto after = store_->query_archive(Q().room(std::string(kRoom)).after("nope"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error(), Errc::NotFound);
  auto before = store_->query_archive(Q().room(std::string(kRoom)).before("nope"));
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error(), Errc::NotFound);
  // An id of another room is unknown in this one.
  append(1, 100, kOtherRoom);
  EXPECT_EQ(store_->query_archive(Q().room(std::string(kRoom)).after("m100")).error(),
            Errc::NotFound);
  auto empty_room = page(Q().room("empty@conference.example.com"));
  EXPECT_TRUE(empty_room.messages.empty());
  EXPECT_TRUE(empty_room.complete);
  EXPECT_EQ(*empty_room.count, 0u);
}

TEST_P(StoreTest, RecentMessagesAreTheNewestOldestFirst) {
  migrate();
  append(30);
  const std::vector<NewMessage> presence = {message(kRoom, "j1", "odd", 2000, "join")};
  ASSERT_TRUE(store_->append_messages(presence));

  auto recent = store_->recent_messages(kRoom, 5);
  ASSERT_TRUE(recent);
  EXPECT_THAT(ids(*recent), ElementsAreArray(range(26, 30)));  // presence is not history
  EXPECT_EQ(store_->recent_messages(kRoom, 100)->size(), 30u);
  EXPECT_TRUE(store_->recent_messages(kRoom, 0)->empty());
  EXPECT_TRUE(store_->recent_messages(kOtherRoom, 5)->empty());
}

TEST_P(StoreTest, LoadRoomsBundlesManyRoomsInTheirOrder) {
  migrate();
  // A room JID with a quote and a backslash: the PostgreSQL backend passes an array literal.
  const std::string odd = "we\"ird\\room@conference.example.com";
  for (const std::string& jid : {std::string(kRoom), std::string(kOtherRoom), odd}) {
    RoomRecord room;
    room.jid = jid;
    room.subject = "about " + jid;
    ASSERT_TRUE(store_->save_room(room));
  }
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, std::string(kRoom), "carol@example.com", Affiliation::Member, "", "cc"}));
  ASSERT_TRUE(store_->set_affiliation(
      {std::nullopt, std::string(kRoom), "alice@example.com", Affiliation::Owner, "", ""}));
  ASSERT_TRUE(
      store_->set_affiliation({std::nullopt, odd, "bob@example.com", Affiliation::Admin, "", ""}));
  append(30);
  append(3, 1, kOtherRoom);
  const std::vector<NewMessage> presence = {message(kRoom, "j1", "odd", 2000, "join")};
  ASSERT_TRUE(store_->append_messages(presence));

  const std::vector<std::string> wanted = {odd, "missing@conference.example.com",
                                           std::string(kRoom), std::string(kOtherRoom)};
  auto bundles = store_->load_rooms(wanted, 5);
  ASSERT_TRUE(bundles) << bundles.error().message();
  ASSERT_EQ(bundles->size(), 3u);  // the missing room is left out
  EXPECT_EQ((*bundles)[0].room.jid, odd);
  EXPECT_EQ((*bundles)[0].room.subject, "about " + odd);
  ASSERT_EQ((*bundles)[0].affiliations.size(), 1u);
  EXPECT_EQ((*bundles)[0].affiliations[0].room_jid, odd);
  EXPECT_TRUE((*bundles)[0].recent.empty());

  const RoomBundle& main = (*bundles)[1];
  EXPECT_EQ(main.room.jid, kRoom);
  ASSERT_EQ(main.affiliations.size(), 2u);
  EXPECT_EQ(main.affiliations[0].user_jid, "alice@example.com");
  EXPECT_EQ(main.affiliations[1].nick, "cc");
  EXPECT_THAT(ids(main.recent), ElementsAreArray(range(26, 30)));  // presence is not history

  EXPECT_EQ((*bundles)[2].room.jid, kOtherRoom);
  EXPECT_EQ((*bundles)[2].recent.size(), 3u);
  EXPECT_TRUE((*bundles)[2].affiliations.empty());

  auto without_history = store_->load_rooms(wanted, 0);
  ASSERT_TRUE(without_history);
  EXPECT_TRUE((*without_history)[1].recent.empty());
  EXPECT_TRUE(store_->load_rooms({}, 5)->empty());
}

TEST_P(StoreTest, PurgeRemovesOlderMessages) {
  migrate();
  append(10);                 // created_at 1001..1010
  append(10, 1, kOtherRoom);  // same times
  auto purged = store_->purge_archive(kRoom, 1006);
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 5u);
  EXPECT_THAT(ids(page(Q().max(100)).messages), ElementsAreArray(range(6, 10)));
  EXPECT_EQ(*store_->count_messages(kOtherRoom), 10u);

  purged = store_->purge_archive("", 1009);  // every room
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 3u + 8u);
  EXPECT_EQ(*store_->count_messages(kRoom), 2u);
  EXPECT_EQ(*store_->count_messages(kOtherRoom), 2u);
  EXPECT_EQ(*store_->purge_archive(kRoom, 0), 0u);

  // Seqs keep increasing after a purge of the newest rows.
  const auto before = append(1, 50);
  ASSERT_EQ(*store_->purge_archive("", 5000), 5u);
  const auto after = append(1, 51);
  ASSERT_EQ(before.size(), 1u);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_GT(after[0], before[0]);
}

TEST_P(StoreTest, UnicodeAndLargeBodiesRoundTrip) {
  migrate();
  std::string body;
  const std::string chunk = "héllo wörld — 你好，世界 — مرحبا بالعالم — 🎉🚀 ";
  while (body.size() < 200 * 1024) {
    body += chunk;
  }
  NewMessage m = message(kRoom, "big-ünïcode-id-✓", "Zoë 🦊", 42);
  m.stanza_xml = "<message type='groupchat'><body>" + body + "</body></message>";
  m.sender_jid = "zoë@exämple.com";
  ASSERT_TRUE(store_->append_messages(std::vector<NewMessage>{m}));

  auto got = page(Q().nick("Zoë 🦊"));
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].stanza_xml, m.stanza_xml);
  EXPECT_EQ(got.messages[0].stanza_id, m.stanza_id);
  EXPECT_EQ(got.messages[0].sender_jid, m.sender_jid);
  auto recent = store_->recent_messages(kRoom, 1);
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].stanza_xml.size(), m.stanza_xml.size());
  EXPECT_EQ((*recent)[0].stanza_xml, m.stanza_xml);
  auto cursor = page(Q().after(m.stanza_id));
  EXPECT_TRUE(cursor.messages.empty());

  RoomRecord room;
  room.jid = std::string(kRoom);
  room.subject = "Ünïcödé 主题 🎈";
  room.config_json = R"({"name":"Salle à manger 🍽"})";
  ASSERT_TRUE(store_->save_room(room));
  EXPECT_EQ(store_->load_room(kRoom)->subject, room.subject);
  EXPECT_EQ(store_->load_room(kRoom)->config_json, room.config_json);
  ASSERT_TRUE(store_->create_account(account("jürgen")));
  EXPECT_TRUE(store_->load_account("jürgen"));
}

TEST_P(StoreTest, TwoWritersInterleave) {
  // Two broker processes appending to one database at once (SQLite: WAL + busy_timeout).
  migrate();
  auto other = open();
  ASSERT_NE(other, nullptr);
  constexpr int kBatches = 20;
  const auto writer = [](Store* s, std::string prefix, bool* ok) {
    for (int b = 0; b < kBatches && *ok; ++b) {
      std::vector<NewMessage> batch;
      for (int i = 0; i < 5; ++i) {
        batch.push_back(message(kRoom, prefix + std::to_string(b * 5 + i), prefix, b));
      }
      *ok = static_cast<bool>(s->append_messages(batch));
    }
  };
  bool ok_a = true;
  bool ok_b = true;
  std::thread a(writer, store_.get(), "a", &ok_a);
  std::thread b(writer, other.get(), "b", &ok_b);
  a.join();
  b.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
  EXPECT_EQ(*store_->count_messages(kRoom), 2u * kBatches * 5);
}

TEST_P(StoreTest, ReplacesAnArchivedStanzaInPlace) {
  migrate();
  const auto seqs = append(3);
  append(1, 2, kOtherRoom);  // m2 in another room stays as it is
  auto before = store_->archived_message(kRoom, "m2");
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_EQ(before->seq, seqs[1]);
  EXPECT_EQ(before->stanza_xml, "<message type='groupchat'><body>m2</body></message>");
  EXPECT_EQ(store_->archived_message(kRoom, "m9").error(), Errc::NotFound);
  EXPECT_EQ(store_->archived_message(kOtherRoom, "m1").error(), Errc::NotFound);

  const std::string tombstone = "<message type='groupchat'><retracted stamp='x'/></message>";
  ASSERT_TRUE(store_->replace_archived_stanza(kRoom, "m2", tombstone));
  auto after = store_->archived_message(kRoom, "m2");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->stanza_xml, tombstone);
  // Everything but the stanza is kept: the order, the sender, the time.
  EXPECT_EQ(after->seq, before->seq);
  EXPECT_EQ(after->sender_nick, before->sender_nick);
  EXPECT_EQ(after->sender_jid, before->sender_jid);
  EXPECT_EQ(after->kind, before->kind);
  EXPECT_EQ(after->created_at, before->created_at);
  const ArchivePage all = page(Q().max(10));
  EXPECT_THAT(ids(all.messages), ElementsAre("m1", "m2", "m3"));
  EXPECT_EQ(all.messages[1].stanza_xml, tombstone);
  EXPECT_EQ(all.messages[0].stanza_xml, "<message type='groupchat'><body>m1</body></message>");
  EXPECT_EQ(store_->archived_message(kOtherRoom, "m2")->stanza_xml,
            "<message type='groupchat'><body>m2</body></message>");

  EXPECT_EQ(store_->replace_archived_stanza(kRoom, "m9", tombstone).error(), Errc::NotFound);
  EXPECT_EQ(store_->replace_archived_stanza(kOtherRoom, "m3", tombstone).error(), Errc::NotFound);
  EXPECT_EQ(*store_->count_messages(kRoom), 3u);
}

TEST_P(StoreTest, ReplacingAnArchivedStanzaIsFenced) {
  migrate();
  const LeaseRecord a = acquire("node-a", "node-a", 60'000);
  const Fence stale = fence(a);
  append(2);
  ASSERT_TRUE(store_->replace_archived_stanza(kRoom, "m1", "<message>one</message>", &stale));
  EXPECT_EQ(store_->archived_message(kRoom, "m1")->stanza_xml, "<message>one</message>");

  auto taken = store_->transfer_lease(stale, "node-b", 60'000);
  ASSERT_TRUE(taken);
  const Fence current = fence(*taken);
  EXPECT_EQ(store_->replace_archived_stanza(kRoom, "m1", "<message>two</message>", &stale).error(),
            Errc::StaleEpoch);
  EXPECT_EQ(store_->replace_archived_stanza(kRoom, "m9", "<message>two</message>", &stale).error(),
            Errc::StaleEpoch);
  EXPECT_EQ(store_->archived_message(kRoom, "m1")->stanza_xml, "<message>one</message>");
  ASSERT_TRUE(store_->replace_archived_stanza(kRoom, "m2", "<message>three</message>", &current));
  EXPECT_EQ(store_->archived_message(kRoom, "m2")->stanza_xml, "<message>three</message>");
}

}  // namespace
}  // namespace tc::storage::test
