// SPDX-License-Identifier: Apache-2.0
// The Store contract (see store_fixture.h): schema and accounts; the suite's instantiation for
// every backend; PostgreSQL going away and coming back.
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

#include "schema/migrations.h"
#include "store_fixture.h"

namespace tc::storage::test {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

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
  for (const columns::Table& table :
       {columns::kAccounts, columns::kRooms, columns::kAffiliations, columns::kArchive,
        columns::kNodes, columns::kLeases, columns::kSettings, columns::kGroups,
        columns::kGroupNodes, columns::kRoomGroups}) {
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
