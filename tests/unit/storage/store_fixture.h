// SPDX-License-Identifier: Apache-2.0
// The fixture of the Store contract tests (store_*test.cpp), run against every backend this build
// has (see backend_fixture.h). The tests of one suite, StoreTest, are spread by feature over
// store_test.cpp (schema, accounts; it instantiates the suite for every backend),
// store_rooms_test.cpp, store_archive_test.cpp and store_ha_test.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "storage/store.h"

#include "backend_fixture.h"
#include "schema/migrations.h"

namespace tc::storage::test {

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

  /// Plants the schema an older build left, migrations 1..`version` statement by statement
  /// through the driver, each with its version row.
  void plant_schema(int version) {
    const schema::Dialect dialect =
        uses_postgresql(GetParam()) ? schema::Dialect::Postgresql : schema::Dialect::Sqlite;
    db_->exec_raw(std::string(schema::bootstrap_statement(dialect)));
    for (const schema::Migration& m :
         schema::migrations(dialect).first(static_cast<std::size_t>(version))) {
      for (const std::string_view statement : m.statements) {
        db_->exec_raw(std::string(statement));
      }
      db_->exec_raw("INSERT INTO tc_schema_version (version, applied_at) VALUES (" +
                    std::to_string(m.version) + ", 0)");
    }
  }

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

}  // namespace tc::storage::test
