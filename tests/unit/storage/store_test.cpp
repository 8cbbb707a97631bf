// SPDX-License-Identifier: Apache-2.0
// The Store contract, run against every backend this build has (see backend_fixture.h).
#include "storage/store.h"

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

#include "backend_fixture.h"
#include "schema/migrations.h"

namespace tc::storage::test {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr std::string_view kRoom = "lobby@conference.example.com";
constexpr std::string_view kOtherRoom = "attic@conference.example.com";

/// Builds an ArchiveQuery for kRoom (designated initializers would trip
/// -Wmissing-field-initializers on the optionals).
class Q {
 public:
  Q() { q_.room_jid = std::string(kRoom); }
  Q& room(std::string jid) { return q_.room_jid = std::move(jid), *this; }
  Q& max(std::size_t n) { return q_.max = n, *this; }
  Q& after(std::string id) { return q_.after_id = std::move(id), *this; }
  Q& before(std::string id) { return q_.before_id = std::move(id), *this; }
  Q& nick(std::string nick) { return q_.with_nick = std::move(nick), *this; }
  Q& start(UnixMillis at) { return q_.start = at, *this; }
  Q& end(UnixMillis at) { return q_.end = at, *this; }
  Q& presence() { return q_.include_presence = true, *this; }
  operator const ArchiveQuery&() const { return q_; }  // NOLINT(google-explicit-constructor)

 private:
  ArchiveQuery q_;
};

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    db_ = std::make_unique<TestDatabase>(GetParam());
    if (!db_->ready()) {
      if (uses_postgresql(GetParam()) && skip_postgresql_allowed()) {
        GTEST_SKIP() << db_->problem() << " (TC_SKIP_PG=1)";
      }
      FAIL() << db_->problem() << "\n(set TC_SKIP_PG=1 to skip the PostgreSQL backends)";
    }
    store_ = open();
    ASSERT_NE(store_, nullptr);
  }

  /// A new Store on this test's database (not migrated).
  std::unique_ptr<Store> open() {
    auto store = open_store(db_->url());
    EXPECT_TRUE(store) << redact_url(db_->url()) << ": " << store.error().message();
    return store ? std::move(*store) : nullptr;
  }

  void migrate() { ASSERT_TRUE(store_->migrate()) << "migrate failed"; }

  /// Appends `n` groupchat messages "m<first>".."m<first+n-1>" to `room`, created_at = 1000 + i.
  std::vector<std::int64_t> append(std::size_t n, std::size_t first = 1,
                                   std::string_view room = kRoom) {
    std::vector<NewMessage> batch;
    for (std::size_t i = first; i < first + n; ++i) {
      batch.push_back(message(room, "m" + std::to_string(i), i % 2 == 0 ? "even" : "odd",
                              static_cast<UnixMillis>(1000 + i)));
    }
    auto seqs = store_->append_messages(batch);
    EXPECT_TRUE(seqs);
    return seqs ? *seqs : std::vector<std::int64_t>{};
  }

  static NewMessage message(std::string_view room, std::string id, std::string nick, UnixMillis at,
                            std::string kind = "groupchat") {
    NewMessage m;
    m.room_jid = std::string(room);
    m.stanza_id = std::move(id);
    m.sender_nick = std::move(nick);
    m.sender_jid = m.sender_nick + "@example.com";
    m.kind = std::move(kind);
    m.stanza_xml = "<message type='groupchat'><body>" + m.stanza_id + "</body></message>";
    m.created_at = at;
    return m;
  }

  static std::vector<std::string> ids(const std::vector<ArchivedMessage>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) {
      out.push_back(m.stanza_id);
    }
    return out;
  }
  static std::vector<std::string> range(int first, int last) {
    std::vector<std::string> out;
    for (int i = first; i <= last; ++i) {
      out.push_back("m" + std::to_string(i));
    }
    return out;
  }

  ArchivePage page(const ArchiveQuery& q) {
    auto result = store_->query_archive(q);
    EXPECT_TRUE(result) << result.error().message();
    return result ? *result : ArchivePage{};
  }

  static AccountRecord account(std::string name) {
    AccountRecord a;
    a.username = std::move(name);
    // Binary on purpose: NUL, high bytes.
    a.scram_sha1 = {std::string("salt\0\xff\x01", 7), 4096, std::string(20, '\x9c'),
                    std::string("\0\0k", 3)};
    a.scram_sha256 = {"pepper", 10000, std::string(32, '\x01'), std::string(32, '\xfe')};
    a.created_at = 1700000000000;
    return a;
  }

  static NodeRecord node(std::string name, bool running, UnixMillis at, std::string url) {
    NodeRecord n;
    n.node = std::move(name);
    n.text_conference_running = running;
    n.heartbeat_at = at;
    n.admin_url = std::move(url);
    return n;
  }

  static Fence fence(const LeaseRecord& lease) {
    return {lease.partition, lease.holder, lease.epoch};
  }

  /// Acquires `partition` for `node`; fails the test when that is refused.
  LeaseRecord acquire(std::string_view partition, std::string_view node, std::int64_t ttl_ms) {
    auto lease = store_->acquire_lease(partition, node, ttl_ms);
    EXPECT_TRUE(lease) << lease.error().message();
    return lease ? *lease : LeaseRecord{};
  }

  /// Polls the database clock until it is past `at` (short polls, bounded at 10 s).
  void wait_until_db_clock_passes(UnixMillis at) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto now = store_->db_now();
      ASSERT_TRUE(now) << now.error().message();
      if (*now > at) {
        return;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "db clock never passed " << at;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Store> store_;
};

// ---- schema ----

TEST_P(StoreTest, MigratesAnEmptyDatabase) {
  EXPECT_FALSE(store_->backend().empty());
  ASSERT_TRUE(store_->ping());
  auto before = store_->schema_version();
  ASSERT_TRUE(before);
  EXPECT_EQ(*before, 0);
  migrate();
  auto after = store_->schema_version();
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, Store::latest_schema_version());
  EXPECT_GE(Store::latest_schema_version(), 1);
}

TEST_P(StoreTest, MigrateIsIdempotent) {
  migrate();
  migrate();
  auto again = open();
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(again->migrate());
  EXPECT_EQ(*again->schema_version(), Store::latest_schema_version());
  ASSERT_TRUE(again->create_account(account("alice")));
  EXPECT_TRUE(store_->load_account("alice"));
}

TEST_P(StoreTest, ConcurrentMigrateFromTwoConnectionsIsSafe) {
  // Two broker processes starting together; each has its own connection.
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  Result<void> ra, rb;
  std::thread ta([&] { ra = a->migrate(); });
  std::thread tb([&] { rb = b->migrate(); });
  ta.join();
  tb.join();
  EXPECT_TRUE(ra) << ra.error().message();
  EXPECT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(*store_->schema_version(), Store::latest_schema_version());
}

TEST_P(StoreTest, RefusesASchemaNewerThanThisBuild) {
  migrate();
  const int future = Store::latest_schema_version() + 1;
  db_->exec_raw("INSERT INTO tc_schema_version (version, applied_at) VALUES (" +
                std::to_string(future) + ", 0)");
  auto reopened = open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(*reopened->schema_version(), future);
  auto r = reopened->migrate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::SchemaTooNew);
  EXPECT_EQ(r.error().category().name(), std::string("storage"));
}

TEST_P(StoreTest, RefusesForeignTcTablesWithoutAVersionRow) {
  // Another product's tables (Cisco's own schema uses tc_rooms) must never be "migrated".
  db_->exec_raw("CREATE TABLE tc_rooms (room_jid VARCHAR(3071), subject VARCHAR(255))");
  auto r = store_->migrate();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::SchemaMismatch);
}

TEST_P(StoreTest, ColumnListsNameTheMigratedColumns) {
  // storage/columns.h is what the backends and tc-merge read and write by; the migrations are
  // what creates the tables. Every listed column must exist in every dialect.
  migrate();
  for (const columns::Table& table : {columns::kAccounts, columns::kRooms, columns::kAffiliations,
                                      columns::kArchive, columns::kNodes, columns::kLeases,
                                      columns::kSettings, columns::kGroups, columns::kGroupNodes}) {
    SCOPED_TRACE(table.name);
    EXPECT_NO_THROW(db_->exec_raw("SELECT " + columns::list(table.columns) + " FROM " +
                                  std::string(table.name) + " WHERE 1 = 0"));
  }
}

// ---- accounts ----

TEST_P(StoreTest, AccountsCrud) {
  migrate();
  const AccountRecord alice = account("alice");
  ASSERT_TRUE(store_->create_account(alice));
  auto dup = store_->create_account(alice);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error(), Errc::AlreadyExists);

  auto loaded = store_->load_account("alice");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->username, "alice");
  EXPECT_EQ(loaded->scram_sha1.salt, alice.scram_sha1.salt);
  EXPECT_EQ(loaded->scram_sha1.iterations, 4096u);
  EXPECT_EQ(loaded->scram_sha1.stored_key, alice.scram_sha1.stored_key);
  EXPECT_EQ(loaded->scram_sha1.server_key, alice.scram_sha1.server_key);
  EXPECT_EQ(loaded->scram_sha256.salt, "pepper");
  EXPECT_EQ(loaded->scram_sha256.iterations, 10000u);
  EXPECT_EQ(loaded->scram_sha256.stored_key, alice.scram_sha256.stored_key);
  EXPECT_EQ(loaded->scram_sha256.server_key, alice.scram_sha256.server_key);
  EXPECT_EQ(loaded->created_at, alice.created_at);

  AccountRecord changed = alice;
  changed.scram_sha256.iterations = 20000;
  changed.scram_sha256.salt = "new salt";
  ASSERT_TRUE(store_->update_account(changed));
  EXPECT_EQ(store_->load_account("alice")->scram_sha256.iterations, 20000u);
  EXPECT_EQ(store_->load_account("alice")->scram_sha256.salt, "new salt");
  EXPECT_EQ(store_->update_account(account("nobody")).error(), Errc::NotFound);

  ASSERT_TRUE(store_->create_account(account("carol")));
  ASSERT_TRUE(store_->create_account(account("bob")));
  auto names = store_->list_accounts();
  ASSERT_TRUE(names);
  EXPECT_THAT(*names, ElementsAre("alice", "bob", "carol"));

  ASSERT_TRUE(store_->delete_account("bob"));
  EXPECT_EQ(store_->delete_account("bob").error(), Errc::NotFound);
  EXPECT_EQ(store_->load_account("bob").error(), Errc::NotFound);
  EXPECT_THAT(*store_->list_accounts(), ElementsAre("alice", "carol"));
}

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

// ---- HA: schema v3, leases, fencing, settings, groups ----

TEST_P(StoreTest, MigratesFromVersion2ToVersion3KeepingRows) {
  // A database left by a build that knew schema version 2, planted statement by statement.
  const schema::Dialect dialect =
      uses_postgresql(GetParam()) ? schema::Dialect::Postgresql : schema::Dialect::Sqlite;
  db_->exec_raw(std::string(schema::bootstrap_statement(dialect)));
  for (const schema::Migration& m : schema::migrations(dialect).first(2)) {
    for (const std::string_view statement : m.statements) {
      db_->exec_raw(std::string(statement));
    }
    db_->exec_raw("INSERT INTO tc_schema_version (version, applied_at) VALUES (" +
                  std::to_string(m.version) + ", 0)");
  }
  db_->exec_raw(
      "INSERT INTO tc_nodes (node, text_conference_running, heartbeat_at, admin_url) "
      "VALUES ('node-a', 1, 42, 'http://127.0.0.1:1')");
  db_->exec_raw(
      "INSERT INTO tc_rooms (jid, created_at) VALUES ('lobby@conference.example.com', 7)");
  ASSERT_EQ(*store_->schema_version(), 2);
  EXPECT_EQ(store_->acquire_lease("node-a", "node-a", 1000).error(), Errc::QueryFailed)
      << "no tc_leases before the migration";

  migrate();
  EXPECT_EQ(Store::latest_schema_version(), 3);
  EXPECT_EQ(*store_->schema_version(), 3);
  auto nodes = store_->list_nodes();
  ASSERT_TRUE(nodes);
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].node, "node-a");
  EXPECT_TRUE((*nodes)[0].text_conference_running);
  EXPECT_EQ((*nodes)[0].heartbeat_at, 42);
  EXPECT_EQ((*nodes)[0].admin_url, "http://127.0.0.1:1");
  EXPECT_EQ((*nodes)[0].client_endpoint, "");
  EXPECT_EQ((*nodes)[0].version, "");
  EXPECT_EQ(store_->load_room(kRoom)->created_at, 7);
  EXPECT_TRUE(store_->list_leases()->empty());
  EXPECT_TRUE(store_->list_settings()->empty());
  EXPECT_TRUE(store_->list_groups()->empty());
  EXPECT_EQ(acquire("node-a", "node-a", 1000).epoch, 1);
}

TEST_P(StoreTest, NodeRegistryCarriesHaColumns) {
  migrate();
  NodeRecord n = node("node-a", true, 5, "http://127.0.0.1:8080");
  n.client_endpoint = "10.0.0.1:5222";
  n.srm_endpoint = "10.0.0.1:5290";
  n.state = "Normal";
  n.reason = "Peer up";
  n.version = "1.2.3";
  ASSERT_TRUE(store_->upsert_node(n));
  n.state = "Backup Mode";
  n.reason = "Peer down";
  ASSERT_TRUE(store_->upsert_node(n));
  auto nodes = store_->list_nodes();
  ASSERT_TRUE(nodes);
  ASSERT_EQ(nodes->size(), 1u);
  const NodeRecord& got = (*nodes)[0];
  EXPECT_EQ(got.client_endpoint, "10.0.0.1:5222");
  EXPECT_EQ(got.srm_endpoint, "10.0.0.1:5290");
  EXPECT_EQ(got.state, "Backup Mode");
  EXPECT_EQ(got.reason, "Peer down");
  EXPECT_EQ(got.version, "1.2.3");
}

TEST_P(StoreTest, DbNowIsTheServerClockInUnixMillis) {
  migrate();
  auto first = store_->db_now();
  ASSERT_TRUE(first) << first.error().message();
  // The test server runs on this machine: its clock is ours, give or take.
  EXPECT_LT(std::abs(*first - schema::now_millis()), 60'000);
  auto second = store_->db_now();
  ASSERT_TRUE(second);
  EXPECT_GE(*second, *first);
}

TEST_P(StoreTest, AcquireOnAMissingLeaseStartsAtEpochOne) {
  migrate();
  EXPECT_EQ(store_->read_lease("node-a").error(), Errc::NotFound);
  const LeaseRecord lease = acquire("node-a", "node-a", 10'000);
  EXPECT_EQ(lease.partition, "node-a");
  EXPECT_EQ(lease.holder, "node-a");
  EXPECT_EQ(lease.epoch, 1);
  EXPECT_GT(lease.db_now, 0);
  EXPECT_EQ(lease.expires_at - lease.db_now, 10'000);

  auto read = store_->read_lease("node-a");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->holder, "node-a");
  EXPECT_EQ(read->epoch, 1);
  EXPECT_EQ(read->expires_at, lease.expires_at);
  EXPECT_GE(read->db_now, lease.db_now);
  EXPECT_LT(read->db_now, read->expires_at);

  acquire("node-b", "node-b", 10'000);
  auto all = store_->list_leases();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].partition, "node-a");
  EXPECT_EQ((*all)[1].partition, "node-b");
  EXPECT_GT((*all)[1].db_now, 0);
}

TEST_P(StoreTest, ReacquireByTheHolderKeepsTheEpochAndExtends) {
  migrate();
  const LeaseRecord first = acquire("node-a", "node-a", 1'000);
  const LeaseRecord again = acquire("node-a", "node-a", 60'000);
  EXPECT_EQ(again.holder, "node-a");
  EXPECT_EQ(again.epoch, first.epoch);
  EXPECT_GT(again.expires_at, first.expires_at);
  EXPECT_EQ(store_->read_lease("node-a")->expires_at, again.expires_at);
}

TEST_P(StoreTest, AcquireOfAValidLeaseHeldByAnotherNodeIsAlreadyExists) {
  migrate();
  const LeaseRecord held = acquire("node-a", "node-a", 60'000);
  auto taken = store_->acquire_lease("node-a", "node-b", 60'000);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error(), Errc::AlreadyExists);
  auto read = store_->read_lease("node-a");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->holder, "node-a");
  EXPECT_EQ(read->epoch, held.epoch);
  EXPECT_EQ(read->expires_at, held.expires_at);
}

TEST_P(StoreTest, AcquireAfterExpiryTakesOverWithTheNextEpoch) {
  migrate();
  const LeaseRecord old = acquire("node-a", "node-a", 100);
  wait_until_db_clock_passes(old.expires_at);
  const LeaseRecord taken = acquire("node-a", "node-b", 10'000);
  EXPECT_EQ(taken.holder, "node-b");
  EXPECT_EQ(taken.epoch, old.epoch + 1);
  EXPECT_GT(taken.expires_at, old.expires_at);
  // The old holder is now the one refused.
  EXPECT_EQ(store_->acquire_lease("node-a", "node-a", 10'000).error(), Errc::AlreadyExists);
}

TEST_P(StoreTest, RenewExtendsTheCurrentLeaseAndRefusesAStaleEpoch) {
  migrate();
  const LeaseRecord old = acquire("node-a", "node-a", 100);
  auto renewed = store_->renew_lease(fence(old), 60'000);
  ASSERT_TRUE(renewed) << renewed.error().message();
  EXPECT_EQ(renewed->epoch, old.epoch);
  EXPECT_EQ(renewed->holder, "node-a");
  EXPECT_EQ(renewed->expires_at - renewed->db_now, 60'000);
  EXPECT_EQ(store_->read_lease("node-a")->expires_at, renewed->expires_at);

  // Let it lapse, let node-b take it, then node-a's renewal is stale.
  ASSERT_TRUE(store_->renew_lease(fence(old), 50));
  wait_until_db_clock_passes(store_->read_lease("node-a")->expires_at);
  const LeaseRecord taken = acquire("node-a", "node-b", 60'000);
  ASSERT_EQ(taken.epoch, old.epoch + 1);
  EXPECT_EQ(store_->renew_lease(fence(old), 60'000).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->renew_lease({"node-a", "node-b", old.epoch}, 60'000).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->renew_lease({"node-z", "node-b", 1}, 60'000).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->read_lease("node-a")->expires_at, taken.expires_at);
  EXPECT_TRUE(store_->renew_lease(fence(taken), 60'000));
}

TEST_P(StoreTest, TransferHandsTheLeaseOverWithTheNextEpoch) {
  migrate();
  const LeaseRecord a = acquire("node-a", "node-a", 60'000);
  auto moved = store_->transfer_lease(fence(a), "node-b", 30'000);
  ASSERT_TRUE(moved) << moved.error().message();
  EXPECT_EQ(moved->partition, "node-a");
  EXPECT_EQ(moved->holder, "node-b");
  EXPECT_EQ(moved->epoch, a.epoch + 1);
  EXPECT_EQ(moved->expires_at - moved->db_now, 30'000);
  auto read = store_->read_lease("node-a");
  EXPECT_EQ(read->holder, "node-b");
  EXPECT_EQ(read->epoch, a.epoch + 1);
  // The old fence can neither transfer again nor renew nor release.
  EXPECT_EQ(store_->transfer_lease(fence(a), "node-c", 30'000).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->renew_lease(fence(a), 30'000).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->release_lease(fence(a)).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->acquire_lease("node-a", "node-a", 30'000).error(), Errc::AlreadyExists);
  // Fallback: node-b hands it back.
  auto back = store_->transfer_lease(fence(*moved), "node-a", 30'000);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->holder, "node-a");
  EXPECT_EQ(back->epoch, a.epoch + 2);
}

TEST_P(StoreTest, ReleaseMakesTheLeaseAcquirableAtOnce) {
  migrate();
  const LeaseRecord a = acquire("node-a", "node-a", 600'000);
  ASSERT_TRUE(store_->release_lease(fence(a)));
  auto read = store_->read_lease("node-a");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->holder, "node-a");
  EXPECT_EQ(read->epoch, a.epoch);
  EXPECT_LE(read->expires_at, read->db_now);
  // No waiting: well within the original ten minutes.
  const LeaseRecord b = acquire("node-a", "node-b", 60'000);
  EXPECT_EQ(b.holder, "node-b");
  EXPECT_EQ(b.epoch, a.epoch + 1);
  EXPECT_EQ(store_->release_lease(fence(a)).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->release_lease({"nowhere", "node-a", 1}).error(), Errc::StaleEpoch);
}

TEST_P(StoreTest, FencedWritesSucceedWithTheCurrentFence) {
  migrate();
  const Fence current = fence(acquire("node-a", "node-a", 60'000));
  RoomRecord room;
  room.fence = current;
  room.jid = std::string(kRoom);
  room.subject = "fenced";
  ASSERT_TRUE(store_->save_room(room));
  EXPECT_EQ(store_->load_room(kRoom)->subject, "fenced");
  EXPECT_FALSE(store_->load_room(kRoom)->fence);

  ASSERT_TRUE(store_->set_affiliation(
      {current, std::string(kRoom), "alice@example.com", Affiliation::Owner, "", ""}));
  EXPECT_EQ(store_->load_affiliations(kRoom)->size(), 1u);

  // Every message fenced, the same fence twice, and one unfenced message in the batch.
  std::vector<NewMessage> batch = {message(kRoom, "f1", "a", 1), message(kRoom, "f2", "a", 2),
                                   message(kRoom, "f3", "a", 3)};
  batch[0].fence = current;
  batch[1].fence = current;
  auto seqs = store_->append_messages(batch);
  ASSERT_TRUE(seqs) << seqs.error().message();
  EXPECT_EQ(seqs->size(), 3u);
  EXPECT_EQ(*store_->count_messages(kRoom), 3u);

  // Expiry does not fence: only an epoch bump does.
  ASSERT_TRUE(store_->renew_lease(current, 1));
  wait_until_db_clock_passes(store_->read_lease("node-a")->expires_at);
  room.subject = "still mine";
  EXPECT_TRUE(store_->save_room(room));

  ASSERT_TRUE(store_->delete_room(kRoom, &current));
  EXPECT_EQ(store_->load_room(kRoom).error(), Errc::NotFound);
  EXPECT_EQ(*store_->count_messages(kRoom), 0u);
}

TEST_P(StoreTest, FencedWritesFailWithStaleEpochAfterATakeoverAndWriteNothing) {
  migrate();
  const LeaseRecord a = acquire("node-a", "node-a", 60'000);
  const Fence stale = fence(a);
  RoomRecord room;
  room.fence = stale;
  room.jid = std::string(kRoom);
  room.subject = "before";
  ASSERT_TRUE(store_->save_room(room));
  ASSERT_TRUE(store_->set_affiliation(
      {stale, std::string(kRoom), "alice@example.com", Affiliation::Owner, "", ""}));
  std::vector<NewMessage> first = {message(kRoom, "m1", "a", 1)};
  first[0].fence = stale;
  ASSERT_TRUE(store_->append_messages(first));

  // node-b takes over (admin failover): epoch + 1.
  auto taken = store_->transfer_lease(stale, "node-b", 60'000);
  ASSERT_TRUE(taken);
  const Fence current = fence(*taken);

  room.subject = "after";
  EXPECT_EQ(store_->save_room(room).error(), Errc::StaleEpoch);
  EXPECT_EQ(store_->load_room(kRoom)->subject, "before");

  EXPECT_EQ(store_
                ->set_affiliation(
                    {stale, std::string(kRoom), "bob@example.com", Affiliation::Member, "", ""})
                .error(),
            Errc::StaleEpoch);
  EXPECT_EQ(store_
                ->set_affiliation(
                    {stale, std::string(kRoom), "alice@example.com", Affiliation::None, "", ""})
                .error(),
            Errc::StaleEpoch);
  auto affiliations = store_->load_affiliations(kRoom);
  ASSERT_EQ(affiliations->size(), 1u);
  EXPECT_EQ((*affiliations)[0].user_jid, "alice@example.com");

  // A batch fails as a whole when any of its messages carries a stale fence, even after
  // messages with the current fence or none.
  std::vector<NewMessage> batch = {message(kRoom, "m2", "a", 2), message(kRoom, "m3", "a", 3),
                                   message(kRoom, "m4", "a", 4)};
  batch[1].fence = current;
  batch[2].fence = stale;
  EXPECT_EQ(store_->append_messages(batch).error(), Errc::StaleEpoch);
  EXPECT_EQ(*store_->count_messages(kRoom), 1u);

  EXPECT_EQ(store_->delete_room(kRoom, &stale).error(), Errc::StaleEpoch);
  EXPECT_TRUE(store_->load_room(kRoom));
  EXPECT_EQ(*store_->count_messages(kRoom), 1u);
  EXPECT_EQ(store_->load_affiliations(kRoom)->size(), 1u);

  // A fence for a partition nobody ever held is stale too.
  const Fence nowhere{"node-z", "node-a", 1};
  EXPECT_EQ(store_->delete_room(kRoom, &nowhere).error(), Errc::StaleEpoch);

  // The new holder writes; unfenced writes behave as before.
  room.fence = current;
  ASSERT_TRUE(store_->save_room(room));
  EXPECT_EQ(store_->load_room(kRoom)->subject, "after");
  batch[2].fence = current;
  ASSERT_TRUE(store_->append_messages(batch));
  EXPECT_EQ(*store_->count_messages(kRoom), 4u);
  room.fence.reset();
  room.subject = "unfenced";
  EXPECT_TRUE(store_->save_room(room));
  EXPECT_TRUE(store_->delete_room(kRoom, &current));
  EXPECT_EQ(store_->load_room(kRoom).error(), Errc::NotFound);
}

TEST_P(StoreTest, SettingsCrud) {
  migrate();
  EXPECT_TRUE(store_->list_settings()->empty());
  ASSERT_TRUE(store_->set_setting("ha.enabled", "true"));
  ASSERT_TRUE(store_->set_setting("assignment.mode", "auto"));
  ASSERT_TRUE(store_->set_setting("srm.heartbeat_ms", "1000"));
  ASSERT_TRUE(store_->set_setting("ha.enabled", "false"));
  auto settings = store_->list_settings();
  ASSERT_TRUE(settings);
  using Pair = std::pair<std::string, std::string>;
  EXPECT_THAT(*settings, ElementsAre(Pair{"assignment.mode", "auto"}, Pair{"ha.enabled", "false"},
                                     Pair{"srm.heartbeat_ms", "1000"}));
  ASSERT_TRUE(store_->delete_setting("assignment.mode"));
  EXPECT_EQ(store_->delete_setting("assignment.mode").error(), Errc::NotFound);
  ASSERT_TRUE(store_->set_setting("empty", ""));
  settings = store_->list_settings();
  EXPECT_THAT(*settings, ElementsAre(Pair{"empty", ""}, Pair{"ha.enabled", "false"},
                                     Pair{"srm.heartbeat_ms", "1000"}));
}

TEST_P(StoreTest, GroupsCrudAndANodeInAtMostOneGroup) {
  migrate();
  EXPECT_TRUE(store_->list_groups()->empty());
  ASSERT_TRUE(store_->save_group({"west", "West pair", true, {"node-d", "node-c"}}));
  ASSERT_TRUE(store_->save_group({"east", "", false, {"node-b", "node-a"}}));
  auto groups = store_->list_groups();
  ASSERT_TRUE(groups);
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ((*groups)[0].name, "east");
  EXPECT_FALSE((*groups)[0].ha_enabled);
  EXPECT_THAT((*groups)[0].nodes, ElementsAre("node-b", "node-a"));  // primary first
  EXPECT_EQ((*groups)[1].name, "west");
  EXPECT_EQ((*groups)[1].description, "West pair");
  EXPECT_TRUE((*groups)[1].ha_enabled);
  EXPECT_THAT((*groups)[1].nodes, ElementsAre("node-d", "node-c"));

  // Replace: new description, switch, and membership.
  ASSERT_TRUE(store_->save_group({"east", "East", true, {"node-a"}}));
  groups = store_->list_groups();
  EXPECT_EQ((*groups)[0].description, "East");
  EXPECT_TRUE((*groups)[0].ha_enabled);
  EXPECT_THAT((*groups)[0].nodes, ElementsAre("node-a"));

  // node-c is in west: a second group cannot have it, and nothing of that save remains.
  auto dup = store_->save_group({"north", "", false, {"node-e", "node-c"}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error(), Errc::AlreadyExists);
  // Neither can an existing group take it.
  EXPECT_EQ(store_->save_group({"east", "changed", false, {"node-a", "node-c"}}).error(),
            Errc::AlreadyExists);
  groups = store_->list_groups();
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ((*groups)[0].description, "East");
  EXPECT_THAT((*groups)[0].nodes, ElementsAre("node-a"));
  EXPECT_THAT((*groups)[1].nodes, ElementsAre("node-d", "node-c"));

  ASSERT_TRUE(store_->delete_group("west"));
  EXPECT_EQ(store_->delete_group("west").error(), Errc::NotFound);
  // Its nodes are free again.
  ASSERT_TRUE(store_->save_group({"north", "", false, {"node-e", "node-c"}}));
  groups = store_->list_groups();
  ASSERT_EQ(groups->size(), 2u);
  EXPECT_EQ((*groups)[1].name, "north");
  EXPECT_THAT((*groups)[1].nodes, ElementsAre("node-e", "node-c"));
}

TEST_P(StoreTest, TwoConnectionsRacingAcquireExactlyOneWins) {
  migrate();
  auto one = open();
  auto two = open();
  ASSERT_TRUE(one && two);
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    // Even rounds race on a missing row, odd rounds on a lapsed lease.
    const std::string partition = "p" + std::to_string(round);
    std::int64_t expected_epoch = 1;
    if (round % 2 == 1) {
      const LeaseRecord old = acquire(partition, "node-old", 50);
      wait_until_db_clock_passes(old.expires_at);
      expected_epoch = old.epoch + 1;
    }
    std::atomic<int> ready{0};
    Result<LeaseRecord> ra = make_error_code(Errc::Unsupported);
    Result<LeaseRecord> rb = make_error_code(Errc::Unsupported);
    const auto racer = [&](Store* s, const char* name, Result<LeaseRecord>* out) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
        std::this_thread::yield();
      }
      *out = s->acquire_lease(partition, name, 60'000);
    };
    std::thread ta(racer, one.get(), "node-a", &ra);
    std::thread tb(racer, two.get(), "node-b", &rb);
    ta.join();
    tb.join();
    ASSERT_NE(static_cast<bool>(ra), static_cast<bool>(rb))
        << "round " << round << ": a=" << (ra ? "won" : ra.error().message())
        << " b=" << (rb ? "won" : rb.error().message());
    const Result<LeaseRecord>& winner = ra ? ra : rb;
    const Result<LeaseRecord>& loser = ra ? rb : ra;
    EXPECT_EQ(loser.error(), Errc::AlreadyExists) << "round " << round;
    EXPECT_EQ(winner->epoch, expected_epoch) << "round " << round;
    auto read = store_->read_lease(partition);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->holder, winner->holder);
    EXPECT_EQ(read->epoch, expected_epoch);
  }
}

std::string param_name(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(backend_name(info.param));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::ValuesIn(all_backends()), param_name);

// ---- PostgreSQL only: the database goes away and comes back ----
#if defined(TC_TEST_PG)

TEST(PostgresqlOutage, FailsWithUnavailableThenRecoversWithoutReopening) {
  std::string why;
  tc::test::PgLauncher* pg = shared_postgresql(&why);
  if (pg == nullptr) {
    if (skip_postgresql_allowed()) {
      GTEST_SKIP() << why;
    }
    FAIL() << "PostgreSQL could not be started: " << why;
  }
  // This server, not TC_TEST_PG_URL's: the test stops and starts it.
  pg->create_database("outage");
  std::vector<std::string> urls = {pg->url("outage")};
#if defined(TC_TEST_ODBC)
  urls.push_back("odbc://DRIVER={PostgreSQL Unicode};Server=127.0.0.1;Port=" +
                 std::to_string(pg->port()) + ";Database=outage;Uid=postgres;Pwd=;");
#endif
  std::vector<std::unique_ptr<Store>> stores;
  for (const auto& url : urls) {
    auto opened = open_store(url);
    ASSERT_TRUE(opened) << url;
    stores.push_back(std::move(*opened));
  }
  ASSERT_TRUE(stores[0]->migrate());
  AccountRecord alice;
  alice.username = "alice";
  ASSERT_TRUE(stores[0]->create_account(alice));
  for (auto& store : stores) {
    ASSERT_TRUE(store->load_account("alice")) << store->backend();
  }
  NewMessage m;
  m.room_jid = "r@c";
  m.stanza_xml = "<message/>";

  pg->stop();
  for (auto& store : stores) {
    SCOPED_TRACE(store->backend());
    const auto t0 = std::chrono::steady_clock::now();
    auto down = store->load_account("alice");
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error(), Errc::Unavailable);
    EXPECT_EQ(store->ping().error(), Errc::Unavailable);  // a reconnect attempt, refused
    m.stanza_id = std::string(store->backend());
    EXPECT_EQ(store->append_messages(std::vector<NewMessage>{m}).error(), Errc::Unavailable);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  }

  pg->start();
  for (auto& store : stores) {
    SCOPED_TRACE(store->backend());
    // The same Store reconnects on its own.
    auto up = store->load_account("alice");
    ASSERT_TRUE(up) << up.error().message();
    EXPECT_EQ(up->username, "alice");
    m.stanza_id = std::string(store->backend());
    EXPECT_TRUE(store->append_messages(std::vector<NewMessage>{m}));
  }

  // A connection that broke while idle is replaced transparently.
  pg->stop();
  pg->start();
  for (auto& store : stores) {
    EXPECT_TRUE(store->ping()) << store->backend();
  }
}
#endif

}  // namespace
}  // namespace tc::storage::test
