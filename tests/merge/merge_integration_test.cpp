// SPDX-License-Identifier: Apache-2.0
// tc-merge end to end: the real binary against throwaway PostgreSQL servers, SQLite files and
// unixODBC drivers. Each test checks the result independently of the tool (its own queries and
// checksums), so a bug shared by the copy and the tool's own verification still fails here.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <signal.h>
#include <sqlite3.h>

#include "merge_test_util.h"
#include "pg_launcher.h"

// AddressSanitizer (GCC defines __SANITIZE_ADDRESS__, clang answers __has_feature).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_MERGE_TEST_CLANG_ASAN 1
#endif
#endif
#ifndef TC_MERGE_TEST_CLANG_ASAN
#define TC_MERGE_TEST_CLANG_ASAN 0
#endif

namespace tc::merge::test {
namespace {

using std::chrono::seconds;

/// Runs `sql` on a SQLite file with the sqlite3 shell (sources written by other hands).
bool sqlite_exec(const std::string& path, const std::string& sql) {
  std::string quoted;
  for (char c : sql) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return std::system(("sqlite3 '" + path + "' '" + quoted + "' >/dev/null 2>&1").c_str()) == 0;
}

class MergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = std::make_unique<tc::test::PgLauncher>();
    dir_ = temp_dir("it");
  }
  void TearDown() override {
    if (!HasFailure()) {
      std::filesystem::remove_all(dir_);
    } else {
      std::fprintf(stderr, "files kept in %s\n", dir_.c_str());
    }
  }

  /// A new empty database on the test server.
  std::string database(const std::string& name) {
    pg_->create_database(name);
    return pg_->url(name);
  }
  std::string odbc_pg(const std::string& name) const {
    return "odbc://DRIVER={PostgreSQL Unicode};Server=127.0.0.1;Port=" +
           std::to_string(pg_->port()) + ";Database=" + name + ";Uid=postgres";
  }

  /// Runs tc-merge against `target`, asserting the exit status.
  RunResult tool(const std::string& target, std::vector<std::string> args, int expect,
                 const std::vector<std::pair<std::string, std::string>>& env = {}) {
    args.insert(args.begin(), {"--target", target});
    RunResult r = run_merge(args, env);
    EXPECT_EQ(r.status, expect) << "tc-merge";
    for (const auto& a : args) {
      std::fprintf(stderr, " %s", a.c_str());
    }
    std::fprintf(stderr, "\n%s\n", r.output.c_str());
    return r;
  }

  void testdata(const std::string& a, const std::string& b, std::vector<std::string> extra) {
    std::vector<std::string> args{"testdata", "--source-a", a, "--source-b", b};
    args.insert(args.end(), extra.begin(), extra.end());
    const RunResult r = run_merge(args);
    ASSERT_EQ(r.status, 0) << r.output;
  }

  /// The per-room digests of the target equal the union of the sources' (renames applied).
  static void expect_same_rooms(const RoomDigests& target, std::vector<RoomDigests> sources) {
    RoomDigests expected;
    for (const auto& s : sources) {
      for (const auto& [room, v] : s) {
        EXPECT_TRUE(expected.emplace(room, v).second) << "room in two sources: " << room;
      }
    }
    EXPECT_EQ(target.size(), expected.size());
    for (const auto& [room, v] : expected) {
      const auto it = target.find(room);
      ASSERT_NE(it, target.end()) << "room missing in the target: " << room;
      EXPECT_EQ(it->second.first, v.first) << "message count of " << room;
      EXPECT_EQ(it->second.second, v.second) << "checksum of " << room;
    }
  }

  std::unique_ptr<tc::test::PgLauncher> pg_;
  std::string dir_;
};

// 1. PostgreSQL to PostgreSQL, with colliding rooms renamed.
TEST_F(MergeTest, PostgresqlToPostgresqlWithRenamedCollisions) {
  const std::string a = database("src_a");
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata(a, b,
           {"--rooms", "120", "--messages", "6000", "--collisions", "3", "--large-every", "400"});
  const std::string before_a = pg_database_digest(a);
  const std::string before_b = pg_database_digest(b);
  tool(t,
       {"jobs", "add", "--source-a", a, "--source-b", b, "--node-a", "node-a", "--node-b", "node-b",
        "--collision-policy", "rename"},
       0);
  const RunResult v = tool(t, {"validate", "1"}, 0);
  EXPECT_NE(v.output.find("room-collision"), std::string::npos);
  EXPECT_NE(v.output.find("affiliation-conflict"), std::string::npos);
  EXPECT_NE(v.output.find("id-renumber"), std::string::npos);
  EXPECT_NE(v.output.find("estimate"), std::string::npos);
  const RunResult m = tool(t, {"merge", "1", "--progress", "lines"}, 0);
  EXPECT_NE(m.output.find("0 rooms failed verification"), std::string::npos);

  std::map<std::string, std::string> renames;
  for (int i = 0; i < 3; ++i) {
    const std::string room = "shared-000" + std::to_string(i) + "@conference.localhost";
    renames[room] = "shared-000" + std::to_string(i) + "-node-b@conference.localhost";
  }
  expect_same_rooms(pg_room_digests(t), {pg_room_digests(a), pg_room_digests(b, renames)});
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_rooms"), 240);
  // 50 accounts each, a third of them (16) in both: copied once.
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_accounts"), 84);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_room_affiliations"),
            pg_count(a, "SELECT count(*) FROM tc_room_affiliations") +
                pg_count(b, "SELECT count(*) FROM tc_room_affiliations"));
  // Stanza ids kept; each room's order kept (checked by the digests, which follow seq).
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_archive t WHERE stanza_xml NOT LIKE '%' || "
                     "stanza_id || '%' AND kind = 'groupchat'"),
            0);
  EXPECT_EQ(pg_database_digest(a), before_a) << "source A changed";
  EXPECT_EQ(pg_database_digest(b), before_b) << "source B changed";

  const RunResult show = tool(t, {"jobs", "show", "1", "--json"}, 0);
  EXPECT_NE(show.output.find("\"status\":\"merged\""), std::string::npos);
  EXPECT_NE(show.output.find("\"verified\":true"), std::string::npos);
  EXPECT_EQ(show.output.find("\"verified\":false"), std::string::npos);
  const RunResult list = tool(t, {"jobs", "list"}, 0);
  EXPECT_NE(list.output.find("merged"), std::string::npos);
  // Merging again is a no-op that reports the stored verification.
  const RunResult again = tool(t, {"merge", "1"}, 0);
  EXPECT_NE(again.output.find("already merged"), std::string::npos);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"), 12000);
}

// 2. SQLite sources (the embedded default) into PostgreSQL.
TEST_F(MergeTest, SqliteToPostgresql) {
  const std::string a = dir_ + "/node-a.db";
  const std::string b = dir_ + "/node-b.db";
  const std::string t = database("target");
  testdata("sqlite://" + a, "sqlite://" + b, {"--rooms", "80", "--messages", "4000"});
  // Schema version 4: a source's room placements (tc_room_groups) are cluster state, not merged.
  ASSERT_TRUE(sqlite_exec(a,
                          "INSERT INTO tc_room_groups (room_jid, group_name) "
                          "VALUES ('placed@conference.localhost', 'east')"));
  const std::string before_a = file_digest(a);
  const std::string before_b = file_digest(b);
  tool(t, {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b}, 0);
  tool(t, {"validate", "1"}, 0);
  tool(t, {"merge", "1", "--page-size", "333"}, 0);
  expect_same_rooms(pg_room_digests(t), {sqlite_room_digests(a), sqlite_room_digests(b)});
  EXPECT_EQ(file_digest(a), before_a);
  EXPECT_EQ(file_digest(b), before_b);
  EXPECT_EQ(pg_count(t, "SELECT max(version) FROM tc_schema_version"), 5);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_room_groups"), 0);
}

// 2a'. Sources are opened truly read-only: SQLite sources in WAL mode inside a read-only
// directory get no -wal/-shm (or any other file) beside them, and their bytes do not change,
// through validation and merge. (Tests run as root, which chmod does not stop, so the check is
// the directory listing and the file hashes.)
TEST_F(MergeTest, SqliteSourcesInReadOnlyDirectoryStayUntouched) {
  const std::string dir = dir_ + "/ro";
  std::filesystem::create_directories(dir);
  const std::string a = dir + "/node-a.db";
  const std::string b = dir + "/node-b.db";
  const std::string t = database("target");
  testdata("sqlite://" + a, "sqlite://" + b, {"--rooms", "10", "--messages", "500"});
  ASSERT_TRUE(sqlite_exec(a, "PRAGMA journal_mode = WAL"));
  ASSERT_TRUE(sqlite_exec(b, "PRAGMA journal_mode = WAL"));
  const auto listing = [&] {
    std::map<std::string, std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      files[e.path().filename().string()] = file_digest(e.path().string());
    }
    return files;
  };
  std::filesystem::permissions(
      dir, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
               std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
               std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
  const auto before = listing();
  ASSERT_EQ(before.size(), 2u);
  tool(t, {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b}, 0);
  tool(t, {"validate", "1"}, 0);
  EXPECT_EQ(listing(), before) << "validation left files in the source directory";
  tool(t, {"merge", "1", "--progress", "none"}, 0);
  EXPECT_EQ(listing(), before) << "the merge left files in the source directory";
  expect_same_rooms(pg_room_digests(t), {sqlite_room_digests(a), sqlite_room_digests(b)});
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
}

// 2b. An embedded pair merged into a SQLite file (the target side of the SOCI path).
TEST_F(MergeTest, SqliteToSqlite) {
  const std::string a = dir_ + "/node-a.db";
  const std::string b = dir_ + "/node-b.db";
  const std::string t = dir_ + "/merged.db";
  testdata("sqlite://" + a, "sqlite://" + b,
           {"--rooms", "30", "--messages", "2000", "--collisions", "1"});
  tool("sqlite://" + t,
       {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b,
        "--collision-policy", "rename"},
       0);
  tool("sqlite://" + t, {"validate", "1"}, 0);
  tool("sqlite://" + t, {"merge", "1", "--batch-size", "300"}, 0);
  expect_same_rooms(
      sqlite_room_digests(t),
      {sqlite_room_digests(a), sqlite_room_digests(b, {{"shared-0000@conference.localhost",
                                                        "shared-0000-b@conference.localhost"}})});
}

// 2c. Users' message archives (tc_archive rows of kind 'chat' keyed by a user's bare JID, beside
// the rooms' in a version 5 database) are cluster state: neither validated nor copied, so the
// same user's archive in both sources is no room collision.
TEST_F(MergeTest, UsersArchivesAreNotCopied) {
  const std::string a = dir_ + "/node-a.db";
  const std::string b = dir_ + "/node-b.db";
  const std::string t = dir_ + "/merged.db";
  testdata("sqlite://" + a, "sqlite://" + b, {"--rooms", "4", "--messages", "40"});
  const RoomDigests rooms_a = sqlite_room_digests(a);
  const RoomDigests rooms_b = sqlite_room_digests(b);
  for (const std::string& db : {a, b}) {
    ASSERT_TRUE(sqlite_exec(
        db,
        "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, "
        "created_at) VALUES ('alice@localhost', 'u1', 'bob@localhost', 'bob@localhost/r', "
        "'chat', '<message><body>private</body></message>', 1)"));
  }
  tool("sqlite://" + t,
       {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b,
        "--collision-policy", "rename"},
       0);
  tool("sqlite://" + t, {"validate", "1"}, 0);
  tool("sqlite://" + t, {"merge", "1"}, 0);
  expect_same_rooms(sqlite_room_digests(t), {rooms_a, rooms_b});
}

// 2b'. Issue 17: renaming a colliding room changes its key and the addresses of its stored
// stanzas (envelope, MUC item, stanza-id), never what users wrote. The issue's body survives
// byte for byte, in the renamed room as in the one that kept its name.
TEST_F(MergeTest, RenameChangesAddressesNeverBodies) {
  const std::string a = database("src_a");
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata(a, b, {"--rooms", "5", "--messages", "200"});
  const std::string body =
      "please move to dev@conference.localhost, see xmpp:dev@conference.localhost?join "
      "(DEV@CONFERENCE.LOCALHOST/bob)";
  const auto stanza = [&](const std::string& id) {
    return "<message from=\"dev@conference.localhost/bob\" type=\"groupchat\" id=\"" + id +
           "\"><body>" + body +
           "</body><x xmlns=\"http://jabber.org/protocol/muc#user\"><item "
           "jid=\"dev@conference.localhost/bob\" reason=\"dev@conference.localhost\"/></x>"
           "<occupant-id xmlns=\"urn:xmpp:occupant-id:0\" id=\"dev@conference.localhost\"/>"
           "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"" +
           id + "\" by=\"dev@conference.localhost\"/></message>";
  };
  for (const auto& [url, id] :
       {std::pair{a, std::string("issue17-a")}, std::pair{b, std::string("issue17-b")}}) {
    pg_exec(url, "INSERT INTO tc_rooms (jid, created_at) VALUES ('dev@conference.localhost', 0)");
    pqxx::connection c{url};
    pqxx::nontransaction tx{c};
    tx.exec_params(
        "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, "
        "created_at) VALUES ('dev@conference.localhost', $1, 'bob', 'bob@localhost', "
        "'groupchat', $2, 1700000000000)",
        id, stanza(id));
  }
  const std::string before_b = pg_database_digest(b);
  tool(t,
       {"jobs", "add", "--source-a", a, "--source-b", b, "--node-b", "imp2", "--collision-policy",
        "rename"},
       0);
  tool(t, {"validate", "1"}, 0);
  const RunResult m = tool(t, {"merge", "1", "--progress", "none"}, 0);
  EXPECT_NE(m.output.find("0 rooms failed verification"), std::string::npos);

  const std::string kept =
      pg_text(t, "SELECT stanza_xml FROM tc_archive WHERE stanza_id = 'issue17-a'");
  const std::string renamed =
      pg_text(t, "SELECT stanza_xml FROM tc_archive WHERE stanza_id = 'issue17-b'");
  EXPECT_EQ(kept, stanza("issue17-a"));
  EXPECT_NE(renamed.find("<body>" + body + "</body>"), std::string::npos) << renamed;
  EXPECT_NE(renamed.find("from=\"dev-imp2@conference.localhost/bob\""), std::string::npos)
      << renamed;
  EXPECT_NE(renamed.find("jid=\"dev-imp2@conference.localhost/bob\""), std::string::npos);
  EXPECT_NE(renamed.find("by=\"dev-imp2@conference.localhost\""), std::string::npos);
  // Not addresses: an invitation's reason is text, an occupant id is opaque.
  EXPECT_NE(renamed.find("reason=\"dev@conference.localhost\""), std::string::npos);
  EXPECT_NE(renamed.find(
                "<occupant-id xmlns=\"urn:xmpp:occupant-id:0\" id=\"dev@conference.localhost\"/>"),
            std::string::npos);
  // The whole stanza is the source's with exactly those three addresses renamed.
  std::string expected = stanza("issue17-b");
  for (const std::string from : {"from=\"dev@", "jid=\"dev@", "by=\"dev@"}) {
    expected.replace(expected.find(from) + from.size() - 4, 3, "dev-imp2");  // the "dev" in it
  }
  EXPECT_EQ(renamed, expected);
  EXPECT_EQ(pg_text(t, "SELECT room_jid FROM tc_archive WHERE stanza_id = 'issue17-b'"),
            "dev-imp2@conference.localhost");
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_rooms WHERE jid LIKE 'dev%'"), 2);
  EXPECT_EQ(pg_database_digest(b), before_b);
  // Checked independently of the tool: every room, every message, addresses renamed only.
  expect_same_rooms(
      pg_room_digests(t),
      {pg_room_digests(a),
       pg_room_digests(b, {{"dev@conference.localhost", "dev-imp2@conference.localhost"}})});
}

// 2c. Validation reads the data as merge will: a source with invalid room names, a message
// whose created_at is not a number, a stanza that is not XML and an affiliation the target
// refuses is not "ready", and merge refuses it (before, validate said ready and merge died
// half-way with "expected a number").
TEST_F(MergeTest, ValidationReadsEveryValueMergeWillWrite) {
  const std::string a = dir_ + "/node-a.db";
  const std::string b = dir_ + "/node-b.db";
  const std::string t = dir_ + "/merged.db";
  testdata("sqlite://" + a, "sqlite://" + b, {"--rooms", "6", "--messages", "120"});
  const auto sqlite = [](const std::string& path, const std::string& sql) {
    ASSERT_TRUE(sqlite_exec(path, sql)) << sql;
  };
  tool("sqlite://" + t,
       {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b}, 0);
  tool("sqlite://" + t, {"validate", "1"}, 0);  // the generated data is clean

  sqlite(a,
         "INSERT INTO tc_rooms (jid, created_at) VALUES ('bad room@conference.localhost', 0), "
         "('@conference.localhost', 0), ('no-domain-at-all', 0)");
  sqlite(b,
         "UPDATE tc_archive SET created_at = 'yesterday-ish' WHERE seq = (SELECT MIN(seq) FROM "
         "tc_archive WHERE room_jid = (SELECT MIN(room_jid) FROM tc_archive)) AND room_jid = "
         "(SELECT MIN(room_jid) FROM tc_archive)");
  sqlite(b, "UPDATE tc_archive SET stanza_xml = '<message><body>cut' WHERE seq = 7");
  // Our schema has a CHECK on it; a source written by other hands may not.
  sqlite(a,
         "PRAGMA ignore_check_constraints = ON; INSERT INTO tc_room_affiliations (room_jid, "
         "user_jid, affiliation) SELECT jid, 'mallory@localhost', 'overlord' FROM tc_rooms "
         "LIMIT 1");
  const RunResult v = tool("sqlite://" + t, {"validate", "1"}, 1);
  for (const char* expected :
       {"room-jid-invalid", "bad room@conference.localhost", "'@conference.localhost'",
        "no room name before the '@'", "message-unreadable", "yesterday-ish", "message-xml-invalid",
        "affiliation-invalid", "overlord"}) {
    EXPECT_NE(v.output.find(expected), std::string::npos) << expected << "\n" << v.output;
  }
  const RunResult refused = tool("sqlite://" + t, {"merge", "1"}, 1);
  EXPECT_NE(refused.output.find("merge refused"), std::string::npos) << refused.output;
  EXPECT_TRUE(sqlite_room_digests(t).empty());  // the target stays as it was
}

// 2c'. A data error met during the merge anyway (the source changed after validation): the
// report names the table and the row; in the metadata phase the target stays as it was, in the
// archive phase the committed batches stay with their checkpoints and the next run resumes;
// the end result holds every message exactly once.
TEST_F(MergeTest, DataErrorDuringMergeNamesTheRowAndLeavesTheTargetResumable) {
  const std::string a = dir_ + "/node-a.db";
  const std::string b = dir_ + "/node-b.db";
  const std::string t = database("target");
  testdata("sqlite://" + a, "sqlite://" + b, {"--rooms", "4", "--messages", "800"});
  const auto sqlite = [](const std::string& path, const std::string& sql) {
    ASSERT_TRUE(sqlite_exec(path, sql)) << sql;
  };
  tool(t, {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b}, 0);
  tool(t, {"validate", "1"}, 0);

  // Metadata: a room row that no longer converts. Nothing of the run stays.
  sqlite(a, "UPDATE tc_rooms SET created_at = 'soon' WHERE rowid = 2");
  const std::string bad_room = [&] {
    sqlite3* db = nullptr;
    sqlite3_open_v2(a.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT jid FROM tc_rooms WHERE rowid = 2", -1, &st, nullptr);
    sqlite3_step(st);
    std::string jid = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return jid;
  }();
  const RunResult first = tool(t, {"merge", "1", "--progress", "none"}, 1);
  EXPECT_NE(first.output.find("merge stopped: source A: tc_rooms row jid '" + bad_room + "'"),
            std::string::npos)
      << first.output;
  EXPECT_NE(first.output.find("'soon'"), std::string::npos);
  EXPECT_NE(first.output.find("the target is as it was"), std::string::npos);
  for (const char* table :
       {"tc_accounts", "tc_rooms", "tc_room_affiliations", "tc_archive", "tc_merge_rooms"}) {
    EXPECT_EQ(pg_count(t, std::string("SELECT count(*) FROM ") + table), 0) << table;
  }
  EXPECT_NE(pg_text(t, "SELECT summary_json FROM tc_merge_jobs WHERE id = 1").find("tc_rooms"),
            std::string::npos);

  // Archive: a message in the middle of B's rooms; small batches so some commit before it.
  sqlite(a, "UPDATE tc_rooms SET created_at = 0 WHERE rowid = 2");
  tool(t, {"validate", "1"}, 0);
  sqlite(b, "UPDATE tc_archive SET created_at = 'yesterday-ish' WHERE seq = 600");
  const RunResult second = tool(t, {"merge", "1", "--progress", "none", "--batch-size", "25"}, 1);
  EXPECT_NE(second.output.find("merge stopped: source B: tc_archive row (room_jid '"),
            std::string::npos)
      << second.output;
  EXPECT_NE(second.output.find("', seq 600): expected a number, got 'yesterday-ish'"),
            std::string::npos)
      << second.output;
  const long long copied = pg_count(t, "SELECT count(*) FROM tc_archive");
  EXPECT_GT(copied, 0);
  EXPECT_LT(copied, 1600);
  EXPECT_EQ(pg_count(t, "SELECT coalesce(sum(copied), 0) FROM tc_merge_rooms"), copied);
  EXPECT_EQ(pg_text(t, "SELECT status FROM tc_merge_jobs WHERE id = 1"), "merging");

  // Fixed: validation says it resumes, and the merge finishes with every message once.
  sqlite(b, "UPDATE tc_archive SET created_at = 1700000000000 WHERE seq = 600");
  const RunResult v = tool(t, {"validate", "1"}, 0);
  EXPECT_NE(v.output.find("merge-resume"), std::string::npos);
  const RunResult last = tool(t, {"merge", "1", "--progress", "none"}, 0);
  EXPECT_NE(last.output.find("resuming job 1"), std::string::npos);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"), 1600);
  expect_same_rooms(pg_room_digests(t), {sqlite_room_digests(a), sqlite_room_digests(b)});
}

// 2d. The property behind 2c, on random damage: whatever a source holds, either validation
// reports an error or the merge succeeds. Never "ready to merge", then a merge that fails on
// the data. Each seed damages one or two values of a generated pair of SQLite sources.
TEST_F(MergeTest, ValidateCleanMeansMergeSucceedsWhateverTheSourcesHold) {
  const char* const kJids[] = {"bad room@conference.localhost",
                               "@conference.localhost",
                               "a@conference.localhost/res",
                               "",
                               "x@",
                               "no-at-all"};
  const char* const kNumbers[] = {"yesterday-ish", "", "12abc", "1e99", "-", "0x10"};
  const char* const kXml[] = {"<message><body>cut", "", "not xml", "<a></b>",
                              "<message/><message/>"};
  const char* const kWords[] = {"overlord", "", "Owner", "groupchat2"};
  const char* const kHarmless[] = {"<message><body>fine &amp; well</body></message>"};
  // One damage: `set` followed by a value from `values`, on an archive row (`seq`) or one of
  // the first rows of the other tables.
  struct Damage {
    const char* set;
    std::span<const char* const> values;
    bool archive;
  };
  const Damage kDamage[] = {
      {"UPDATE tc_rooms SET jid = ", kJids, false},
      {"UPDATE tc_archive SET created_at = ", kNumbers, true},
      {"UPDATE tc_archive SET stanza_xml = ", kXml, true},
      {"PRAGMA ignore_check_constraints = ON; UPDATE tc_room_affiliations SET affiliation = ",
       kWords, false},
      {"UPDATE tc_room_affiliations SET user_jid = ", kJids, false},
      {"UPDATE tc_archive SET kind = ", kWords, true},
      {"UPDATE tc_rooms SET created_at = ", kNumbers, false},
      {"PRAGMA ignore_check_constraints = ON; UPDATE tc_rooms SET persistent = ", kNumbers, false},
      {"UPDATE tc_accounts SET scram_sha1_iterations = ", kNumbers, false},
      {"UPDATE tc_rooms SET subject_at = ", kNumbers, false},
      {"UPDATE tc_archive SET sender_jid = ", kJids, true},
      {"UPDATE tc_archive SET stanza_xml = ", kHarmless, true},
  };
  std::mt19937 rng(20261207);
  const auto pick = [&rng](const auto& list) {
    return std::string(
        list[std::uniform_int_distribution<std::size_t>(0, std::size(list) - 1)(rng)]);
  };
  const auto q = [](const std::string& v) {
    std::string out = "'";
    for (char c : v) {
      out += c == '\'' ? std::string("''") : std::string(1, c);
    }
    return out + "'";
  };
  int refused = 0;
  int merged = 0;
  // TC_MERGE_PROPERTY_SEEDS=N runs more (16 by default).
  const char* more = std::getenv("TC_MERGE_PROPERTY_SEEDS");
  const int seeds = more != nullptr ? std::atoi(more) : 16;
  for (int seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::string dir = dir_ + "/p" + std::to_string(seed);
    std::filesystem::create_directories(dir);
    const std::string a = dir + "/a.db";
    const std::string b = dir + "/b.db";
    const std::string t = dir + "/t.db";
    testdata(
        "sqlite://" + a, "sqlite://" + b,
        {"--rooms", "4", "--messages", "40", "--accounts", "5", "--seed", std::to_string(seed)});
    std::string damage;
    const int n = 1 + static_cast<int>(rng() % 2);
    for (int i = 0; i < n; ++i) {
      const std::string src = rng() % 2 == 0 ? a : b;
      const std::string row = std::to_string(1 + rng() % 20);
      const std::string room_row = std::to_string(1 + rng() % 4);
      const Damage& d = kDamage[rng() % std::size(kDamage)];
      const std::string sql = std::string(d.set) + q(pick(d.values)) +
                              (d.archive ? " WHERE seq = " + row : " WHERE rowid = " + room_row);
      sqlite_exec(src, sql);  // some damage the schema refuses: that is no damage
      damage += (src == a ? "A: " : "B: ") + sql + "\n";
    }
    SCOPED_TRACE(damage);
    tool("sqlite://" + t,
         {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", "sqlite://" + b,
          "--collision-policy", "rename"},
         0);
    const RunResult v = run_merge({"--target", "sqlite://" + t, "validate", "1"});
    ASSERT_TRUE(v.status == 0 || v.status == 1) << v.output;
    if (v.status == 1) {
      ++refused;
      const auto at = v.output.find("\nerror ");
      std::printf("[ property ] seed %d refused: %s", seed,
                  at == std::string::npos
                      ? "?\n"
                      : v.output.substr(at + 1, v.output.find('\n', at + 1) - at).c_str());
      continue;
    }
    const RunResult m =
        run_merge({"--target", "sqlite://" + t, "merge", "1", "--progress", "none"});
    EXPECT_EQ(m.status, 0) << "validation said ready, the merge failed:\n" << v.output << m.output;
    ++merged;
  }
  std::printf("[ property ] %d damaged pairs: %d refused by validation, %d merged\n", seeds,
              refused, merged);
  EXPECT_GT(refused, 0);
  EXPECT_GT(merged, 0);
}

// 2e. A 16 MB message (larger than a whole batch's 8 MB), from SQLite and from PostgreSQL:
// validated, copied (in 256 kB COPY pieces) and verified. Issue 17 asks for a peak RSS of at
// most 64 MB; that is not reached yet (release build: about 82 MB validating, 99 MB merging
// with one worker, see docs/merge-tool.md "Memory"), so the bound is asserted only with
// TC_MERGE_ASSERT_RSS=1; the peaks are always printed.
TEST_F(MergeTest, SixteenMegabyteMessageIsMergedWhole) {
  constexpr long kLimitKb = 64 * 1024;
  // Issue 17, item 3: 64 MB whatever the input. Asserted in every build without AddressSanitizer.
  // Under ASan tc-merge itself needs about twice that (its allocator's and shadow memory's
  // overhead: ~127 MB validating, ~134 MB merging here), so there the bound is only asserted
  // on request (TC_MERGE_ASSERT_RSS=1) and the figures are printed.
#if defined(__SANITIZE_ADDRESS__) || TC_MERGE_TEST_CLANG_ASAN
  const bool assert_rss = std::getenv("TC_MERGE_ASSERT_RSS") != nullptr;
#else
  const bool assert_rss = true;
#endif
  // ASan's quarantine would keep every freed buffer resident; the bound is about our copies.
  const std::vector<std::pair<std::string, std::string>> env = {
      {"ASAN_OPTIONS", "quarantine_size_mb=0:thread_local_quarantine_size_kb=0:detect_leaks=0"}};
  const std::string big_body = "repeat(md5('x'), 524288)";  // 16 MiB of text
  const std::string stanza =
      "'<message from=\"' || room_jid || '/bob\" type=\"groupchat\" "
      "id=\"big\"><body>' || BODY || '</body></message>'";
  const auto with_body = [&](std::string body) {
    std::string s = stanza;
    s.replace(s.find("BODY"), 4, body);
    return s;
  };
  // SQLite source A, PostgreSQL source B, each with one 16 MB message.
  const std::string a = dir_ + "/node-a.db";
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata("sqlite://" + a, b, {"--rooms", "6", "--messages", "300"});
  ASSERT_TRUE(
      sqlite_exec(a,
                  "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, kind, "
                  "stanza_xml, created_at) SELECT room_jid, 'big-a', 'bob', '', 'groupchat', " +
                      with_body("hex(zeroblob(8388608))") +
                      ", 1700000000000 FROM tc_archive ORDER BY seq LIMIT 1"));
  pg_exec(b,
          "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, kind, "
          "stanza_xml, created_at) SELECT room_jid, 'big-b', 'bob', '', 'groupchat', " +
              with_body(big_body) + ", 1700000000000 FROM tc_archive ORDER BY seq LIMIT 1");
  tool(t, {"jobs", "add", "--source-a", "sqlite://" + a, "--source-b", b}, 0, env);
  const RunResult v = tool(t, {"validate", "1"}, 0, env);
  const RunResult m = tool(t, {"merge", "1", "--progress", "none"}, 0, env);
  std::printf("[ memory ] peak RSS with a 16 MB message: validate %ld kB, merge %ld kB\n",
              v.peak_rss_kb, m.peak_rss_kb);
  if (assert_rss) {
    EXPECT_LE(v.peak_rss_kb, kLimitKb);
    EXPECT_LE(m.peak_rss_kb, kLimitKb);
  }
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_archive WHERE octet_length(stanza_xml) > "
                     "16000000"),
            2);
  expect_same_rooms(pg_room_digests(t), {sqlite_room_digests(a), pg_room_digests(b)});
}

// 3. Through ODBC: a PostgreSQL source over the psqlODBC driver, a SQLite source over the
// SQLite3 ODBC driver, and the target over psqlODBC too (no libpqxx anywhere in the merge).
TEST_F(MergeTest, ThroughOdbc) {
  database("src_a");
  database("target");
  const std::string a = pg_->url("src_a");
  const std::string b = dir_ + "/node-b.db";
  const std::string b_native = dir_ + "/unused.db";
  testdata(a, "sqlite://" + b, {"--rooms", "40", "--messages", "3000", "--collisions", "2"});
  const std::string before_a = pg_database_digest(a);
  const std::string before_b = file_digest(b);
  const std::string t = odbc_pg("target");
  tool(t,
       {"jobs", "add", "--source-a", odbc_pg("src_a"), "--source-b",
        "odbc://DRIVER=SQLite3;Database=" + b, "--collision-policy", "keep-b"},
       0);
  const RunResult v = tool(t, {"validate", "1"}, 0);
  EXPECT_NE(v.output.find("soci-odbc, postgresql"), std::string::npos);
  EXPECT_NE(v.output.find("soci-odbc, sqlite"), std::string::npos);
  tool(t, {"merge", "1", "--page-size", "500", "--batch-size", "700"}, 0);
  RoomDigests source_a = pg_room_digests(a);
  // keep-b: A's colliding rooms are not copied.
  source_a.erase("shared-0000@conference.localhost");
  source_a.erase("shared-0001@conference.localhost");
  expect_same_rooms(pg_room_digests(pg_->url("target")), {source_a, sqlite_room_digests(b)});
  EXPECT_EQ(pg_database_digest(a), before_a);
  EXPECT_EQ(file_digest(b), before_b);
}

// 4. One validation run reports a running service, a collision, an unknown schema version and
// missing rights; merge refuses while any of them is unresolved, and works once all are.
TEST_F(MergeTest, ValidationReportsEveryProblemAndMergeWaitsForAll) {
  const std::string a = database("src_a");
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata(a, b, {"--rooms", "20", "--messages", "500", "--collisions", "2"});
  // The node of source A is running its text-conference service (fresh heartbeat).
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  pg_exec(a,
          "INSERT INTO tc_nodes (node, text_conference_running, heartbeat_at, admin_url) "
          "VALUES ('node-a', 1, " +
              std::to_string(now_ms + 3600000) + ", 'http://127.0.0.1:20075')");
  // A node that stopped long ago but never cleared its flag: stale, only a warning.
  pg_exec(b, "INSERT INTO tc_nodes VALUES ('node-b', 1, 1000, '')");
  // Source B was written by a newer release.
  pg_exec(b, "INSERT INTO tc_schema_version VALUES (99, 0)");
  // The merge user may record jobs but not write the tc_ tables.
  tool(t, {"jobs", "add", "--source-a", a, "--source-b", b}, 0);  // as postgres: schema + job 1
  pg_exec(t, "CREATE ROLE merger LOGIN");
  pg_exec(t,
          "GRANT SELECT, INSERT, UPDATE ON tc_merge_jobs, tc_merge_findings, tc_merge_rooms "
          "TO merger");
  const std::string as_merger =
      "postgresql://merger@127.0.0.1:" + std::to_string(pg_->port()) + "/target";
  tool(as_merger, {"jobs", "add", "--source-a", a, "--source-b", b}, 0);  // job 2

  const RunResult v = tool(as_merger, {"validate", "2"}, 1);
  EXPECT_NE(v.output.find("service-running"), std::string::npos);
  EXPECT_NE(v.output.find("node-a"), std::string::npos);
  EXPECT_NE(v.output.find("service-stale"), std::string::npos);
  EXPECT_NE(v.output.find("schema-unknown"), std::string::npos);
  EXPECT_NE(v.output.find("room-collision"), std::string::npos);
  EXPECT_NE(v.output.find("target-rights"), std::string::npos);
  EXPECT_NE(v.output.find("INSERT on tc_archive"), std::string::npos);
  const RunResult refused = tool(as_merger, {"merge", "2"}, 1);
  EXPECT_NE(refused.output.find("merge refused"), std::string::npos);

  // Resolve all but one problem at a time: each time the merge still refuses.
  const auto resolve_and_check = [&](const std::string& what, const std::function<void()>& fix,
                                     bool last) {
    SCOPED_TRACE(what);
    fix();
    tool(as_merger, {"validate", "2"}, last ? 0 : 1);
    const RunResult r = tool(as_merger, {"merge", "2", "--progress", "none"}, last ? 0 : 1);
    EXPECT_EQ(r.output.find("merge refused") == std::string::npos, last);
  };
  resolve_and_check(
      "stop the service", [&] { pg_exec(a, "UPDATE tc_nodes SET text_conference_running = 0"); },
      false);
  resolve_and_check(
      "choose a collision policy",
      [&] {
        tool(as_merger, {"jobs", "set", "2", "--collision-policy", "keep-a"}, 0);
      },
      false);
  resolve_and_check(
      "restore the known schema",
      [&] { pg_exec(b, "DELETE FROM tc_schema_version WHERE version = 99"); }, false);
  resolve_and_check(
      "grant the rights",
      [&] {
        pg_exec(t,
                "GRANT SELECT, INSERT ON tc_accounts, tc_rooms, tc_room_affiliations, tc_archive "
                "TO merger");
        pg_exec(t, "GRANT SELECT ON tc_schema_version, tc_nodes TO merger");
      },
      true);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"),
            pg_count(a, "SELECT count(*) FROM tc_archive") +
                pg_count(b, "SELECT count(*) FROM tc_archive WHERE room_jid NOT LIKE 'shared-%'"));
  // Every finding of every run is kept in the job.
  EXPECT_GE(pg_count(t, "SELECT count(DISTINCT run) FROM tc_merge_findings WHERE job_id = 2"), 5);
  // Job 1 targets the same database: validating it now reports the earlier merge.
  const RunResult other = tool(t, {"validate", "1"}, 1);
  EXPECT_NE(other.output.find("target-earlier-merge"), std::string::npos);
  EXPECT_NE(other.output.find("target-not-empty"), std::string::npos);
}

// 5. SIGKILL in the middle of the copy, then run again: every message exactly once.
TEST_F(MergeTest, KilledMidCopyResumesExactlyOnce) {
  const std::string a = database("src_a");
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata(a, b, {"--rooms", "60", "--messages", "15000", "--large-every", "1000"});
  const std::string before_a = pg_database_digest(a);
  const std::string before_b = pg_database_digest(b);
  tool(t, {"jobs", "add", "--source-a", a, "--source-b", b}, 0);
  tool(t, {"validate", "1"}, 0);
  const std::vector<std::string> merge_args{"--target",     t,      "merge",         "1",
                                            "--batch-size", "150",  "--throttle-ms", "15",
                                            "--progress",   "lines"};
  // Two kills at different points, then a run to the end.
  long long last = 0;
  for (const long long kill_after : {3000LL, 14000LL}) {
    const pid_t pid = spawn_merge(merge_args, dir_ + "/merge.log");
    const auto deadline = std::chrono::steady_clock::now() + seconds(180);
    long long copied = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      copied = pg_count(t, "SELECT count(*) FROM tc_archive");
      if (copied >= kill_after) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_EQ(wait_for(pid, seconds(10)), -1);
    copied = pg_count(t, "SELECT count(*) FROM tc_archive");
    std::fprintf(stderr, "killed with %lld of 30000 messages copied\n", copied);
    EXPECT_GE(copied, kill_after);
    EXPECT_LT(copied, 30000);
    EXPECT_GT(copied, last);
    last = copied;
    // What is there is there once, and matches a checkpoint.
    EXPECT_EQ(pg_count(t,
                       "SELECT count(*) - count(DISTINCT (room_jid, stanza_id)) FROM "
                       "tc_archive"),
              0);
    EXPECT_EQ(pg_count(t, "SELECT coalesce(sum(copied), 0) FROM tc_merge_rooms"), copied);
    EXPECT_EQ(pg_text(t, "SELECT status FROM tc_merge_jobs WHERE id = 1"), "merging");
  }
  const RunResult resumed = tool(t, {"merge", "1", "--progress", "lines"}, 0);
  EXPECT_NE(resumed.output.find("resuming job 1"), std::string::npos);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"), 30000);
  expect_same_rooms(pg_room_digests(t), {pg_room_digests(a), pg_room_digests(b)});
  EXPECT_EQ(pg_database_digest(a), before_a);
  EXPECT_EQ(pg_database_digest(b), before_b);
  EXPECT_EQ(pg_text(t, "SELECT status FROM tc_merge_jobs WHERE id = 1"), "merged");
}

// 6. Importing the vendor's text-conference tables (PostgreSQL and SQLite), rewriting the
// chat-node aliases to the conference domain in columns and inside stored XML.
TEST_F(MergeTest, VendorImportRewritesChatNodeAliases) {
  const std::string a = database("vendor_a");
  const std::string b = dir_ + "/vendor-b.db";
  const std::string t = database("target");
  testdata(a, "sqlite://" + b,
           {"--kind", "vendor", "--rooms", "30", "--messages", "3000", "--collisions", "2",
            "--large-every", "200"});
  const std::string before_a = pg_text(a,
                                       "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) "
                                       "FROM tc_msgarchive t");
  const std::string before_b = file_digest(b);
  // Without a conference domain the job cannot be validated.
  tool(t, {"jobs", "add", "--source-a", a, "--source-b", "sqlite://" + b}, 0);
  const RunResult no_domain = tool(t, {"validate", "1"}, 1);
  EXPECT_NE(no_domain.output.find("conference-domain-missing"), std::string::npos);
  tool(t,
       {"jobs", "set", "1", "--conference-domain", "conference.example.org", "--collision-policy",
        "rename", "--rename-suffix", "imported"},
       0);
  const RunResult v = tool(t, {"validate", "1"}, 0);
  EXPECT_NE(v.output.find("conference-1-clustera.example.com"), std::string::npos);
  EXPECT_NE(v.output.find("vendor-adhoc-rooms"), std::string::npos);
  tool(t, {"merge", "1"}, 0);

  // Every persistent room, renamed where both had it; no alias left anywhere.
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_rooms"), 60);
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_rooms WHERE jid LIKE "
                     "'shared-000_-imported@conference.example.org'"),
            2);
  for (const char* table_column :
       {"tc_rooms|jid", "tc_rooms|config_json", "tc_room_affiliations|room_jid",
        "tc_archive|room_jid", "tc_archive|stanza_xml"}) {
    const std::string tc(table_column);
    const std::string table = tc.substr(0, tc.find('|'));
    const std::string column = tc.substr(tc.find('|') + 1);
    EXPECT_EQ(pg_count(t, "SELECT count(*) FROM " + table + " WHERE " + column +
                              " LIKE '%clustera.example.com%'"),
              0)
        << table_column;
  }
  // Only groupchat rows of persistent rooms are imported: the counts per room match TC_MSGARCHIVE.
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive WHERE room_jid LIKE '%-a-%'"),
            pg_count(a,
                     "SELECT count(*) FROM tc_msgarchive WHERE msg_type = 'g' AND to_jid LIKE "
                     "'%-a-%'"));
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"), 6000);
  // Each stanza carries its stanza-id for the room, and no jabber:client declaration.
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_archive WHERE position('<stanza-id "
                     "xmlns=\"urn:xmpp:sid:0\" id=\"' || stanza_id || '\" by=\"' || room_jid "
                     "|| '\"/>' in stanza_xml) = 0"),
            0);
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_archive WHERE stanza_xml LIKE "
                     "'%jabber:client%'"),
            0);
  // Large bodies (MESSAGE_TEXT / BODY_TEXT) arrive whole.
  EXPECT_GT(pg_count(t, "SELECT count(*) FROM tc_archive WHERE octet_length(stanza_xml) > 60000"),
            0);
  // Affiliations: the highest of duplicate rows, occupants' role rows left out.
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_room_affiliations WHERE affiliation = 'owner'"),
            60);
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_room_affiliations WHERE user_jid LIKE "
                     "'user99@%'"),
            0);
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_rooms WHERE config_json LIKE "
                     "'%\"members_only\":true%'"),
            pg_count(t, "SELECT count(*) FROM tc_rooms WHERE jid ~ '-00(0[048]|1[26]|2[048])'"));
  EXPECT_EQ(pg_text(a,
                    "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM "
                    "tc_msgarchive t"),
            before_a);
  EXPECT_EQ(file_digest(b), before_b);
}

// 7. Passwords never reach the job tables; validate gets them from the environment.
TEST_F(MergeTest, PasswordsAreNotStored) {
  const std::string a = database("src_a");
  const std::string b = database("src_b");
  const std::string t = database("target");
  testdata(a, b, {"--rooms", "5", "--messages", "100"});
  pg_exec(a, "CREATE ROLE reader LOGIN PASSWORD 'S3cr3t;pw'");
  pg_exec(a, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader");
  pg_exec(b, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader");
  // Require the password for `reader` (the launcher trusts everyone else).
  const auto hba = pg_->directory() / "data" / "pg_hba.conf";
  std::string rules;
  {
    std::ifstream in(hba);
    rules.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(hba);
    out << "host all reader 127.0.0.1/32 scram-sha-256\n" << rules;
  }
  pg_exec(a, "SELECT pg_reload_conf()");
  const std::string port = std::to_string(pg_->port());
  const std::string with_pw_a = "postgresql://reader:S3cr3t%3Bpw@127.0.0.1:" + port + "/src_a";
  const std::string with_pw_b = "postgresql://reader:S3cr3t%3Bpw@127.0.0.1:" + port + "/src_b";
  tool(t, {"jobs", "add", "--source-a", with_pw_a, "--source-b", with_pw_b}, 0);
  EXPECT_EQ(pg_count(t,
                     "SELECT count(*) FROM tc_merge_jobs WHERE source_a_url || source_b_url "
                     "|| options_json LIKE '%S3cr3t%'"),
            0);
  EXPECT_EQ(pg_text(t, "SELECT source_a_url FROM tc_merge_jobs"),
            "postgresql://reader:***@127.0.0.1:" + port + "/src_a");
  // Without the passwords the sources cannot be reached; with them (env) all is well.
  const RunResult no_pw = tool(t, {"validate", "1"}, 1);
  EXPECT_NE(no_pw.output.find("source-unreachable"), std::string::npos);
  EXPECT_EQ(no_pw.output.find("S3cr3t"), std::string::npos);
  tool(t, {"validate", "1"}, 0,
       {{"TC_MERGE_PASSWORD_A", "S3cr3t;pw"}, {"TC_MERGE_PASSWORD_B", "S3cr3t;pw"}});
  tool(t, {"merge", "1", "--source-a-password", "S3cr3t;pw", "--source-b-password", "S3cr3t;pw"},
       0);
  EXPECT_EQ(pg_count(t, "SELECT count(*) FROM tc_archive"), 200);
}

}  // namespace
}  // namespace tc::merge::test
