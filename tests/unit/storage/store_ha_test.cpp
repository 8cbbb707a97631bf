// SPDX-License-Identifier: Apache-2.0
// The Store contract (see store_fixture.h): HA (schema v3, leases, fencing, settings, groups)
// and the cluster's room placement (schema v4).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
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
using Placement = std::pair<std::string, std::string>;

// ---- HA: schema v3, leases, fencing, settings, groups ----

TEST_P(StoreTest, MigratesFromVersion2ToVersion3KeepingRows) {
  // A database left by a build that knew schema version 2.
  plant_schema(2);
  db_->exec_raw(
      "INSERT INTO tc_nodes (node, text_conference_running, heartbeat_at, admin_url) "
      "VALUES ('node-a', 1, 42, 'http://127.0.0.1:1')");
  db_->exec_raw(
      "INSERT INTO tc_rooms (jid, created_at) VALUES ('lobby@conference.example.com', 7)");
  ASSERT_EQ(*store_->schema_version(), 2);
  EXPECT_EQ(store_->acquire_lease("node-a", "node-a", 1000).error(), Errc::QueryFailed)
      << "no tc_leases before the migration";

  migrate();
  EXPECT_EQ(*store_->schema_version(), Store::latest_schema_version());
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

// ---- cluster: which group hosts each room (schema v4) ----

TEST_P(StoreTest, MigratesFromVersion3ToVersion4KeepingRows) {
  // A database left by a build that knew schema version 3, with HA state in it.
  plant_schema(3);
  db_->exec_raw("INSERT INTO tc_groups (name, description, ha_enabled) VALUES ('east', 'E', 1)");
  db_->exec_raw(
      "INSERT INTO tc_group_nodes (node, group_name, position) VALUES ('node-a', 'east', 0)");
  db_->exec_raw("INSERT INTO tc_settings (key, value) VALUES ('ha.enabled', 'true')");
  db_->exec_raw(
      "INSERT INTO tc_rooms (jid, created_at) VALUES ('lobby@conference.example.com', 7)");
  ASSERT_EQ(*store_->schema_version(), 3);
  EXPECT_EQ(store_->room_group(kRoom).error(), Errc::QueryFailed)
      << "no tc_room_groups before the migration";

  migrate();
  EXPECT_EQ(*store_->schema_version(), Store::latest_schema_version());
  auto groups = store_->list_groups();
  ASSERT_TRUE(groups);
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].name, "east");
  EXPECT_EQ((*groups)[0].description, "E");
  EXPECT_TRUE((*groups)[0].ha_enabled);
  EXPECT_THAT((*groups)[0].nodes, ElementsAre("node-a"));
  EXPECT_THAT(*store_->list_settings(), ElementsAre(Placement{"ha.enabled", "true"}));
  EXPECT_EQ(store_->load_room(kRoom)->created_at, 7);
  // Rooms already in the database get no placement from the migration: the broker's start-up
  // backfill records them.
  auto placements = store_->list_room_groups();
  ASSERT_TRUE(placements) << placements.error().message();
  EXPECT_TRUE(placements->empty());
  EXPECT_EQ(*store_->claim_room_group(kRoom, "east"), "east");
  // A second migrate has nothing to do.
  migrate();
  EXPECT_EQ(*store_->schema_version(), Store::latest_schema_version());
  EXPECT_EQ(*store_->room_group(kRoom), "east");
}

TEST_P(StoreTest, ClaimRoomGroupRecordsTheFirstGroupAndKeepsIt) {
  migrate();
  auto first = store_->claim_room_group(kRoom, "east");
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(*first, "east");
  // Another group claiming the same room is told where it lives; nothing changes.
  auto second = store_->claim_room_group(kRoom, "west");
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(*second, "east");
  EXPECT_EQ(*store_->claim_room_group(kRoom, "east"), "east");
  EXPECT_EQ(*store_->room_group(kRoom), "east");

  auto missing = store_->room_group(kOtherRoom);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), Errc::NotFound);
  EXPECT_EQ(*store_->claim_room_group(kOtherRoom, "west"), "west");
  EXPECT_EQ(*store_->room_group(kOtherRoom), "west");
  EXPECT_EQ(*store_->room_group(kRoom), "east");
  // Another connection sees the committed placements.
  auto other = open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(*other->room_group(kOtherRoom), "west");
}

TEST_P(StoreTest, ClaimRoomGroupsCountsOnlyNewlyRecordedRooms) {
  migrate();
  ASSERT_EQ(*store_->claim_room_group(kRoom, "east"), "east");
  const std::vector<std::string> backfill = {"c@conference.example.com", std::string(kRoom),
                                             "a@conference.example.com",
                                             "c@conference.example.com"};  // listed twice
  auto added = store_->claim_room_groups(backfill, "west");
  ASSERT_TRUE(added) << added.error().message();
  EXPECT_EQ(*added, 2u) << "kRoom was east's already and c is counted once";
  EXPECT_EQ(*store_->room_group(kRoom), "east");
  EXPECT_EQ(*store_->room_group("a@conference.example.com"), "west");
  EXPECT_EQ(*store_->room_group("c@conference.example.com"), "west");

  // Again, and again for another group: nothing new.
  EXPECT_EQ(*store_->claim_room_groups(backfill, "west"), 0u);
  EXPECT_EQ(*store_->claim_room_groups(backfill, "north"), 0u);
  EXPECT_EQ(*store_->room_group("a@conference.example.com"), "west");
  EXPECT_EQ(*store_->claim_room_groups({}, "west"), 0u);
  const std::vector<std::string> more = {"b@conference.example.com", "a@conference.example.com"};
  EXPECT_EQ(*store_->claim_room_groups(more, "north"), 1u);
  EXPECT_THAT(*store_->list_room_groups(),
              ElementsAre(Placement{"a@conference.example.com", "west"},
                          Placement{"b@conference.example.com", "north"},
                          Placement{"c@conference.example.com", "west"},
                          Placement{std::string(kRoom), "east"}));
}

TEST_P(StoreTest, ListRoomGroupsIsSortedByRoomJid) {
  migrate();
  auto none = store_->list_room_groups();
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_TRUE(none->empty());
  // Claimed out of order; byte order puts upper case and digits first, whatever the collation.
  ASSERT_TRUE(store_->claim_room_group("zeta@conference.example.com", "g1"));
  ASSERT_TRUE(store_->claim_room_group("Alpha@conference.example.com", "g2"));
  ASSERT_TRUE(store_->claim_room_group("beta@conference.example.com", "g3"));
  ASSERT_TRUE(store_->claim_room_group("1st@conference.example.com", "g1"));
  ASSERT_TRUE(store_->claim_room_group("alpha@conference.example.com", "g1"));
  EXPECT_THAT(*store_->list_room_groups(),
              ElementsAre(Placement{"1st@conference.example.com", "g1"},
                          Placement{"Alpha@conference.example.com", "g2"},
                          Placement{"alpha@conference.example.com", "g1"},
                          Placement{"beta@conference.example.com", "g3"},
                          Placement{"zeta@conference.example.com", "g1"}));
}

TEST_P(StoreTest, TwoConnectionsClaimingOneNewRoomGetTheSameGroup) {
  migrate();
  auto one = open();
  auto two = open();
  ASSERT_TRUE(one && two);
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    const std::string room = "race" + std::to_string(round) + "@conference.example.com";
    std::atomic<int> ready{0};
    Result<std::string> ra = make_error_code(Errc::Unsupported);
    Result<std::string> rb = make_error_code(Errc::Unsupported);
    const auto racer = [&](Store* s, const char* group, Result<std::string>* out) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
        std::this_thread::yield();
      }
      *out = s->claim_room_group(room, group);
    };
    std::thread ta(racer, one.get(), "east", &ra);
    std::thread tb(racer, two.get(), "west", &rb);
    ta.join();
    tb.join();
    ASSERT_TRUE(ra) << "round " << round << ": " << ra.error().message();
    ASSERT_TRUE(rb) << "round " << round << ": " << rb.error().message();
    EXPECT_EQ(*ra, *rb) << "round " << round;
    EXPECT_TRUE(*ra == "east" || *ra == "west") << *ra;
    EXPECT_EQ(*store_->room_group(room), *ra) << "round " << round;
  }
}

TEST_P(StoreTest, TwoConnectionsBackfillingOverlappingRoomsInOppositeOrdersBothSucceed) {
  // Two groups' start-up backfills listing shared rooms in opposite orders must neither
  // deadlock (PostgreSQL would abort one) nor record a room twice.
  migrate();
  auto one = open();
  auto two = open();
  ASSERT_TRUE(one && two);
  std::vector<std::string> forward;
  for (int i = 0; i < 200; ++i) {
    forward.push_back("room" + std::to_string(1000 + i) + "@conference.example.com");
  }
  const std::vector<std::string> backward(forward.rbegin(), forward.rend());
  std::atomic<int> ready{0};
  Result<std::uint64_t> ra = make_error_code(Errc::Unsupported);
  Result<std::uint64_t> rb = make_error_code(Errc::Unsupported);
  const auto racer = [&](Store* s, const std::vector<std::string>* jids, const char* group,
                         Result<std::uint64_t>* out) {
    ready.fetch_add(1);
    while (ready.load() < 2) {
      std::this_thread::yield();
    }
    *out = s->claim_room_groups(*jids, group);
  };
  std::thread ta(racer, one.get(), &forward, "east", &ra);
  std::thread tb(racer, two.get(), &backward, "west", &rb);
  ta.join();
  tb.join();
  ASSERT_TRUE(ra) << ra.error().message();
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(*ra + *rb, forward.size());
  auto placements = store_->list_room_groups();
  ASSERT_TRUE(placements);
  ASSERT_EQ(placements->size(), forward.size());
  std::set<std::string> groups;
  for (const auto& [room, group] : *placements) {
    groups.insert(group);
  }
  // Both write in one key order, so whichever took the first room first waited for nobody and
  // recorded every room; the other found them all taken.
  EXPECT_EQ(groups.size(), 1u);
}

}  // namespace
}  // namespace tc::storage::test
