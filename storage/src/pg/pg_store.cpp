// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend on libpqxx 6.4. Every pqxx exception is caught in guarded() and converted to
// a storage::Errc; none leaves this file.
#include <algorithm>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "storage/errc.h"

#include "backends.h"
#include "codec.h"
#include "schema/migrations.h"
#include "schema/postgresql_sql.h"

namespace tc::storage {
namespace {

constexpr schema::Dialect kDialect = schema::Dialect::Postgresql;

constexpr const char* kAccountColumns =
    "username, scram_sha1_salt, scram_sha1_iterations, scram_sha1_stored_key, "
    "scram_sha1_server_key, scram_sha256_salt, scram_sha256_iterations, scram_sha256_stored_key, "
    "scram_sha256_server_key, created_at";
constexpr const char* kRoomColumns =
    "jid, config_json, persistent, subject, subject_nick, subject_at, host_node, created_at";
constexpr const char* kArchiveColumns =
    "seq, room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at";

// Hot statement, prepared on every (re)connect.
constexpr const char* kAppendName = "tc_append";
constexpr const char* kAppendSql =
    "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, "
    "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq";

// The filter of query_archive's page and count: $1 room, $2/$3 created_at range, $4 nick
// ('' = any), $5 include presence, $6/$7 exclusive seq range. Parameters are bound per
// execution (unnamed statements), so the planner folds the neutral values away. The row
// comparisons can only be served by (room_jid, seq), so the planner walks that one room's range
// instead of the primary key's range of every room.
constexpr const char* kArchiveFilter =
    " WHERE room_jid = $1 AND (room_jid, seq) > ($1, $6) AND (room_jid, seq) < ($1, $7)"
    " AND created_at >= $2 AND created_at <= $3"
    " AND ($4::text = '' OR sender_nick = $4)"
    " AND ($5::boolean OR kind NOT IN ('join', 'leave'))";

/// Connection state that make a driver error mean "the database went away".
bool is_connection_state(const std::string& sqlstate) {
  return sqlstate.starts_with("08") || sqlstate.starts_with("57P");
}

std::string decode_or_throw(const pqxx::field& field) {
  auto bytes = codec::base64_decode(field.c_str());
  if (!bytes) {
    throw std::runtime_error(std::string("column ") + field.name() + " is not base64");
  }
  return std::move(*bytes);
}

ScramSecret read_secret(const pqxx::row& row, int first) {
  ScramSecret secret;
  secret.salt = decode_or_throw(row[first]);
  secret.iterations = static_cast<std::uint32_t>(row[first + 1].as<long long>());
  secret.stored_key = decode_or_throw(row[first + 2]);
  secret.server_key = decode_or_throw(row[first + 3]);
  return secret;
}

AccountRecord read_account(const pqxx::row& row) {
  AccountRecord account;
  account.username = row[0].as<std::string>();
  account.scram_sha1 = read_secret(row, 1);
  account.scram_sha256 = read_secret(row, 5);
  account.created_at = row[9].as<long long>();
  return account;
}

RoomRecord read_room(const pqxx::row& row) {
  RoomRecord room;
  room.jid = row[0].as<std::string>();
  room.config_json = row[1].as<std::string>();
  room.persistent = row[2].as<int>() != 0;
  room.subject = row[3].as<std::string>();
  room.subject_nick = row[4].as<std::string>();
  room.subject_at = row[5].as<long long>();
  room.host_node = row[6].as<std::string>();
  room.created_at = row[7].as<long long>();
  return room;
}

/// A text[] literal for `= ANY($1::text[])` (libpqxx 6 has no array parameters).
std::string text_array(std::span<const std::string> items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"';
    for (const char ch : item) {
      if (ch == '"' || ch == '\\') {
        out += '\\';
      }
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}

/// user_jid, affiliation, reason, nick from column `first` on.
AffiliationRecord read_affiliation(const pqxx::row& row, int first, std::string room_jid) {
  AffiliationRecord rec;
  rec.room_jid = std::move(room_jid);
  rec.user_jid = row[first].as<std::string>();
  const auto aff = codec::parse_affiliation(row[first + 1].c_str());
  if (!aff) {
    throw std::runtime_error("unknown affiliation " + row[first + 1].as<std::string>());
  }
  rec.affiliation = *aff;
  rec.reason = row[first + 2].as<std::string>();
  rec.nick = row[first + 3].as<std::string>();
  return rec;
}

ArchivedMessage read_message(const pqxx::row& row) {
  ArchivedMessage m;
  m.seq = row[0].as<long long>();
  m.room_jid = row[1].as<std::string>();
  m.stanza_id = row[2].as<std::string>();
  m.sender_nick = row[3].as<std::string>();
  m.sender_jid = row[4].as<std::string>();
  m.kind = row[5].as<std::string>();
  m.stanza_xml = row[6].as<std::string>();
  m.created_at = row[7].as<long long>();
  return m;
}

/// The database clock in Unix milliseconds, as SQL.
const std::string kNow(schema::postgresql::kNowMillis);

constexpr const char* kLeaseColumns = "partition, holder, epoch, expires_at";

/// A lease row (kLeaseColumns); db_now is filled in by the caller.
LeaseRecord read_lease_row(const pqxx::row& row) {
  LeaseRecord lease;
  lease.partition = row[0].as<std::string>();
  lease.holder = row[1].as<std::string>();
  lease.epoch = row[2].as<long long>();
  lease.expires_at = row[3].as<long long>();
  return lease;
}

/// Whether the lease row still names `fence`'s holder at its epoch. FOR SHARE keeps the row
/// until the transaction ends, so a takeover (an UPDATE of the row) waits for this write to
/// commit, and a write that waited on a takeover sees the new epoch. Expiry is not checked:
/// only an epoch bump fences a writer.
bool holds_fence(pqxx::work& tx, const Fence& fence) {
  return !tx.exec_params(
                "SELECT 1 FROM tc_leases WHERE partition = $1 AND holder = $2 AND epoch = $3 "
                "FOR SHARE",
                fence.partition, fence.holder, static_cast<long long>(fence.epoch))
              .empty();
}

bool same_fence(const Fence& a, const Fence& b) {
  return a.partition == b.partition && a.holder == b.holder && a.epoch == b.epoch;
}

class PgStore final : public Store {
 public:
  explicit PgStore(std::string uri)
      : uri_(postgres_uri_with_defaults(std::move(uri), "tcbroker")), redacted_(redact_url(uri_)) {}

  std::string_view backend() const override { return "postgresql"; }

  /// Connects now, so open_store() reports an unreachable server.
  Result<void> connect() {
    return guarded("connect", [](pqxx::connection&) -> Result<void> { return {}; });
  }

  Result<int> schema_version() override {
    return guarded("schema_version", [](pqxx::connection& c) -> Result<int> {
      pqxx::read_transaction tx{c};
      return read_version(tx);
    });
  }

  Result<void> migrate() override;

  Result<void> ping() override {
    return guarded("ping", [](pqxx::connection& c) -> Result<void> {
      pqxx::nontransaction tx{c};
      tx.exec("SELECT 1");
      return {};
    });
  }

  Result<void> create_account(const AccountRecord& a) override {
    return guarded("create_account", [&a](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      tx.exec_params(
          std::string("INSERT INTO tc_accounts (") + kAccountColumns +
              ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
          a.username, codec::base64_encode(a.scram_sha1.salt),
          static_cast<long long>(a.scram_sha1.iterations),
          codec::base64_encode(a.scram_sha1.stored_key),
          codec::base64_encode(a.scram_sha1.server_key), codec::base64_encode(a.scram_sha256.salt),
          static_cast<long long>(a.scram_sha256.iterations),
          codec::base64_encode(a.scram_sha256.stored_key),
          codec::base64_encode(a.scram_sha256.server_key), static_cast<long long>(a.created_at));
      tx.commit();
      return {};
    });
  }

  Result<AccountRecord> load_account(std::string_view username) override {
    return guarded("load_account", [&](pqxx::connection& c) -> Result<AccountRecord> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows = tx.exec_params(
          std::string("SELECT ") + kAccountColumns + " FROM tc_accounts WHERE username = $1",
          std::string(username));
      if (rows.empty()) {
        return make_error_code(Errc::NotFound);
      }
      return read_account(rows[0]);
    });
  }

  Result<void> update_account(const AccountRecord& a) override {
    return guarded("update_account", [&a](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      const pqxx::result r = tx.exec_params(
          "UPDATE tc_accounts SET scram_sha1_salt = $2, scram_sha1_iterations = $3, "
          "scram_sha1_stored_key = $4, scram_sha1_server_key = $5, scram_sha256_salt = $6, "
          "scram_sha256_iterations = $7, scram_sha256_stored_key = $8, "
          "scram_sha256_server_key = $9, created_at = $10 WHERE username = $1",
          a.username, codec::base64_encode(a.scram_sha1.salt),
          static_cast<long long>(a.scram_sha1.iterations),
          codec::base64_encode(a.scram_sha1.stored_key),
          codec::base64_encode(a.scram_sha1.server_key), codec::base64_encode(a.scram_sha256.salt),
          static_cast<long long>(a.scram_sha256.iterations),
          codec::base64_encode(a.scram_sha256.stored_key),
          codec::base64_encode(a.scram_sha256.server_key), static_cast<long long>(a.created_at));
      if (r.affected_rows() == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<void> delete_account(std::string_view username) override {
    return guarded("delete_account", [&](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      const pqxx::result r =
          tx.exec_params("DELETE FROM tc_accounts WHERE username = $1", std::string(username));
      if (r.affected_rows() == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<std::string>> list_accounts() override {
    return guarded("list_accounts", [](pqxx::connection& c) -> Result<std::vector<std::string>> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows = tx.exec("SELECT username FROM tc_accounts");
      std::vector<std::string> names;
      names.reserve(rows.size());
      for (const auto& row : rows) {
        names.push_back(row[0].as<std::string>());
      }
      // Byte order, whatever the database's collation.
      std::sort(names.begin(), names.end());
      return names;
    });
  }

  Result<void> upsert_node(const NodeRecord& n) override {
    return guarded("upsert_node", [&n](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      tx.exec_params(
          "INSERT INTO tc_nodes (node, text_conference_running, heartbeat_at, admin_url, "
          "client_endpoint, srm_endpoint, state, reason, version) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (node) DO UPDATE SET "
          "text_conference_running = excluded.text_conference_running, "
          "heartbeat_at = excluded.heartbeat_at, admin_url = excluded.admin_url, "
          "client_endpoint = excluded.client_endpoint, srm_endpoint = excluded.srm_endpoint, "
          "state = excluded.state, reason = excluded.reason, version = excluded.version",
          n.node, n.text_conference_running ? 1 : 0, static_cast<long long>(n.heartbeat_at),
          n.admin_url, n.client_endpoint, n.srm_endpoint, n.state, n.reason, n.version);
      tx.commit();
      return {};
    });
  }

  Result<std::vector<NodeRecord>> list_nodes() override {
    return guarded("list_nodes", [](pqxx::connection& c) -> Result<std::vector<NodeRecord>> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows = tx.exec(
          "SELECT node, text_conference_running, heartbeat_at, admin_url, client_endpoint, "
          "srm_endpoint, state, reason, version FROM tc_nodes");
      std::vector<NodeRecord> out;
      out.reserve(rows.size());
      for (const auto& row : rows) {
        NodeRecord n;
        n.node = row[0].as<std::string>();
        n.text_conference_running = row[1].as<int>() != 0;
        n.heartbeat_at = row[2].as<long long>();
        n.admin_url = row[3].as<std::string>();
        n.client_endpoint = row[4].as<std::string>();
        n.srm_endpoint = row[5].as<std::string>();
        n.state = row[6].as<std::string>();
        n.reason = row[7].as<std::string>();
        n.version = row[8].as<std::string>();
        out.push_back(std::move(n));
      }
      // Byte order, whatever the database's collation.
      std::sort(out.begin(), out.end(),
                [](const NodeRecord& a, const NodeRecord& b) { return a.node < b.node; });
      return out;
    });
  }

  Result<void> save_room(const RoomRecord& room) override {
    return guarded("save_room", [&room](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      if (room.fence && !holds_fence(tx, *room.fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      tx.exec_params(
          std::string("INSERT INTO tc_rooms (") + kRoomColumns +
              ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (jid) DO UPDATE SET "
              "config_json = excluded.config_json, persistent = excluded.persistent, "
              "subject = excluded.subject, subject_nick = excluded.subject_nick, "
              "subject_at = excluded.subject_at, host_node = excluded.host_node, "
              "created_at = excluded.created_at",
          room.jid, room.config_json, room.persistent ? 1 : 0, room.subject, room.subject_nick,
          static_cast<long long>(room.subject_at), room.host_node,
          static_cast<long long>(room.created_at));
      tx.commit();
      return {};
    });
  }

  Result<RoomRecord> load_room(std::string_view room_jid) override {
    return guarded("load_room", [&](pqxx::connection& c) -> Result<RoomRecord> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows =
          tx.exec_params(std::string("SELECT ") + kRoomColumns + " FROM tc_rooms WHERE jid = $1",
                         std::string(room_jid));
      if (rows.empty()) {
        return make_error_code(Errc::NotFound);
      }
      return read_room(rows[0]);
    });
  }

  Result<std::vector<RoomBundle>> load_rooms(std::span<const std::string> room_jids,
                                             std::size_t max_history) override {
    if (room_jids.empty()) {
      return std::vector<RoomBundle>{};
    }
    return guarded("load_rooms", [&](pqxx::connection& c) -> Result<std::vector<RoomBundle>> {
      // One snapshot, three set queries, whatever the number of rooms.
      pqxx::read_transaction tx{c};
      const std::string jids = text_array(room_jids);
      const pqxx::result rooms = tx.exec_params(
          std::string("SELECT ") + kRoomColumns + " FROM tc_rooms WHERE jid = ANY($1::text[])",
          jids);
      std::map<std::string, RoomBundle> by_jid;
      for (const auto& row : rooms) {
        RoomRecord room = read_room(row);
        std::string key = room.jid;
        by_jid[std::move(key)].room = std::move(room);
      }
      const pqxx::result affiliations = tx.exec_params(
          "SELECT room_jid, user_jid, affiliation, reason, nick FROM tc_room_affiliations "
          "WHERE room_jid = ANY($1::text[]) ORDER BY room_jid, user_jid",
          jids);
      for (const auto& row : affiliations) {
        auto it = by_jid.find(row[0].as<std::string>());
        if (it == by_jid.end()) {
          continue;
        }
        it->second.affiliations.push_back(read_affiliation(row, 1, it->first));
      }
      if (max_history > 0) {
        // Per room, the newest messages through the (room_jid, seq) index.
        const pqxx::result recent = tx.exec_params(
            std::string("SELECT m.* FROM unnest($1::text[]) AS r(jid) CROSS JOIN LATERAL "
                        "(SELECT ") +
                kArchiveColumns +
                " FROM tc_archive WHERE room_jid = r.jid AND kind NOT IN ('join', 'leave') "
                "ORDER BY seq DESC LIMIT $2) m ORDER BY m.room_jid, m.seq",
            jids, static_cast<long long>(max_history));
        for (const auto& row : recent) {
          ArchivedMessage m = read_message(row);
          if (auto it = by_jid.find(m.room_jid); it != by_jid.end()) {
            it->second.recent.push_back(std::move(m));
          }
        }
      }
      tx.commit();
      std::vector<RoomBundle> out;
      out.reserve(by_jid.size());
      for (const std::string& jid : room_jids) {
        if (auto it = by_jid.find(jid); it != by_jid.end()) {
          out.push_back(std::move(it->second));
          by_jid.erase(it);
        }
      }
      return out;
    });
  }

  Result<std::vector<RoomRecord>> list_rooms(std::string_view host_node) override {
    return guarded("list_rooms", [&](pqxx::connection& c) -> Result<std::vector<RoomRecord>> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows =
          host_node.empty() ? tx.exec(std::string("SELECT ") + kRoomColumns + " FROM tc_rooms")
                            : tx.exec_params(std::string("SELECT ") + kRoomColumns +
                                                 " FROM tc_rooms WHERE host_node = $1",
                                             std::string(host_node));
      std::vector<RoomRecord> rooms;
      rooms.reserve(rows.size());
      for (const auto& row : rows) {
        rooms.push_back(read_room(row));
      }
      std::sort(rooms.begin(), rooms.end(),
                [](const RoomRecord& a, const RoomRecord& b) { return a.jid < b.jid; });
      return rooms;
    });
  }

  Result<void> delete_room(std::string_view room_jid, const Fence* fence) override {
    return guarded("delete_room", [&](pqxx::connection& c) -> Result<void> {
      const std::string jid(room_jid);
      pqxx::work tx{c};
      if (fence != nullptr && !holds_fence(tx, *fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      if (tx.exec_params("DELETE FROM tc_rooms WHERE jid = $1", jid).affected_rows() == 0) {
        return make_error_code(Errc::NotFound);  // tx aborts: nothing else is touched
      }
      tx.exec_params("DELETE FROM tc_room_affiliations WHERE room_jid = $1", jid);
      tx.exec_params("DELETE FROM tc_archive WHERE room_jid = $1", jid);
      tx.commit();
      return {};
    });
  }

  Result<void> set_affiliation(const AffiliationRecord& r) override {
    return guarded("set_affiliation", [&r](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      if (r.fence && !holds_fence(tx, *r.fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      if (r.affiliation == Affiliation::None) {
        tx.exec_params("DELETE FROM tc_room_affiliations WHERE room_jid = $1 AND user_jid = $2",
                       r.room_jid, r.user_jid);
      } else {
        tx.exec_params(
            "INSERT INTO tc_room_affiliations (room_jid, user_jid, affiliation, reason, nick) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_jid, user_jid) DO UPDATE SET "
            "affiliation = excluded.affiliation, reason = excluded.reason, nick = excluded.nick",
            r.room_jid, r.user_jid, std::string(codec::affiliation_text(r.affiliation)), r.reason,
            r.nick);
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<AffiliationRecord>> load_affiliations(std::string_view room_jid) override {
    return guarded(
        "load_affiliations", [&](pqxx::connection& c) -> Result<std::vector<AffiliationRecord>> {
          pqxx::read_transaction tx{c};
          const pqxx::result rows = tx.exec_params(
              "SELECT user_jid, affiliation, reason, nick FROM tc_room_affiliations "
              "WHERE room_jid = $1",
              std::string(room_jid));
          std::vector<AffiliationRecord> out;
          out.reserve(rows.size());
          for (const auto& row : rows) {
            out.push_back(read_affiliation(row, 0, std::string(room_jid)));
          }
          std::sort(out.begin(), out.end(),
                    [](const auto& a, const auto& b) { return a.user_jid < b.user_jid; });
          return out;
        });
  }

  Result<std::vector<std::int64_t>> append_messages(std::span<const NewMessage> batch) override {
    if (batch.empty()) {
      return std::vector<std::int64_t>{};
    }
    return guarded(
        "append_messages", [batch](pqxx::connection& c) -> Result<std::vector<std::int64_t>> {
          std::vector<std::int64_t> seqs;
          seqs.reserve(batch.size());
          // Group commit: one transaction (one WAL flush) for the whole batch; a
          // duplicate stanza id aborts all of it.
          pqxx::work tx{c};
          // Each distinct fence of the batch once, before anything is written.
          std::vector<const Fence*> checked;
          for (const NewMessage& m : batch) {
            if (!m.fence || std::any_of(checked.begin(), checked.end(), [&m](const Fence* f) {
                  return same_fence(*f, *m.fence);
                })) {
              continue;
            }
            if (!holds_fence(tx, *m.fence)) {
              return make_error_code(Errc::StaleEpoch);
            }
            checked.push_back(&*m.fence);
          }
          for (const NewMessage& m : batch) {
            const pqxx::result r =
                tx.exec_prepared(kAppendName, m.room_jid, m.stanza_id, m.sender_nick, m.sender_jid,
                                 m.kind, m.stanza_xml, static_cast<long long>(m.created_at));
            seqs.push_back(r.at(0)[0].as<long long>());
          }
          tx.commit();
          return seqs;
        });
  }

  Result<ArchivePage> query_archive(const ArchiveQuery& q) override;

  Result<std::vector<ArchivedMessage>> recent_messages(std::string_view room_jid,
                                                       std::size_t max) override {
    return guarded(
        "recent_messages", [&](pqxx::connection& c) -> Result<std::vector<ArchivedMessage>> {
          pqxx::read_transaction tx{c};
          const pqxx::result rows =
              tx.exec_params(std::string("SELECT ") + kArchiveColumns +
                                 " FROM tc_archive WHERE room_jid = $1 AND kind NOT IN ('join', "
                                 "'leave') ORDER BY seq DESC LIMIT $2",
                             std::string(room_jid), static_cast<long long>(max));
          std::vector<ArchivedMessage> out;
          out.reserve(rows.size());
          for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
            out.push_back(read_message(*it));
          }
          return out;
        });
  }

  Result<std::uint64_t> purge_archive(std::string_view room_jid, UnixMillis before) override {
    return guarded("purge_archive", [&](pqxx::connection& c) -> Result<std::uint64_t> {
      pqxx::work tx{c};
      const pqxx::result r = tx.exec_params(
          "DELETE FROM tc_archive WHERE created_at < $2 AND "
          "($1::text = '' OR room_jid = $1)",
          std::string(room_jid), static_cast<long long>(before));
      tx.commit();
      return static_cast<std::uint64_t>(r.affected_rows());
    });
  }

  Result<std::uint64_t> count_messages(std::string_view room_jid) override {
    return guarded("count_messages", [&](pqxx::connection& c) -> Result<std::uint64_t> {
      pqxx::read_transaction tx{c};
      const pqxx::result r =
          tx.exec_params("SELECT COUNT(*) FROM tc_archive WHERE ($1::text = '' OR room_jid = $1)",
                         std::string(room_jid));
      return static_cast<std::uint64_t>(r[0][0].as<long long>());
    });
  }

  // ---- HA ----

  Result<UnixMillis> db_now() override {
    return guarded("db_now", [](pqxx::connection& c) -> Result<UnixMillis> {
      pqxx::nontransaction tx{c};
      return tx.exec("SELECT " + kNow)[0][0].as<long long>();
    });
  }

  Result<LeaseRecord> read_lease(std::string_view partition) override {
    return guarded("read_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
      pqxx::read_transaction tx{c};
      const pqxx::result rows = tx.exec_params(std::string("SELECT ") + kLeaseColumns + ", " +
                                                   kNow + " FROM tc_leases WHERE partition = $1",
                                               std::string(partition));
      if (rows.empty()) {
        return make_error_code(Errc::NotFound);
      }
      LeaseRecord lease = read_lease_row(rows[0]);
      lease.db_now = rows[0][4].as<long long>();
      return lease;
    });
  }

  Result<std::vector<LeaseRecord>> list_leases() override {
    return guarded("list_leases", [](pqxx::connection& c) -> Result<std::vector<LeaseRecord>> {
      pqxx::read_transaction tx{c};
      const UnixMillis now = tx.exec("SELECT " + kNow)[0][0].as<long long>();
      const pqxx::result rows = tx.exec(std::string("SELECT ") + kLeaseColumns + " FROM tc_leases");
      std::vector<LeaseRecord> out;
      out.reserve(rows.size());
      for (const auto& row : rows) {
        out.push_back(read_lease_row(row));
        out.back().db_now = now;
      }
      std::sort(out.begin(), out.end(), [](const LeaseRecord& a, const LeaseRecord& b) {
        return a.partition < b.partition;
      });
      return out;
    });
  }

  Result<LeaseRecord> acquire_lease(std::string_view partition, std::string_view node,
                                    std::int64_t ttl_ms) override {
    return guarded("acquire_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
      pqxx::work tx{c};
      // One statement: a missing row is inserted at epoch 1; an existing one is taken only
      // when `node` holds it already (epoch kept) or it lapsed (epoch + 1). The row lock of
      // ON CONFLICT DO UPDATE makes a concurrent acquirer re-check the WHERE against the
      // winner's row, so of two racers exactly one gets a row back. excluded.expires_at is
      // now + ttl, so "lapsed" is expires_at <= excluded.expires_at - ttl.
      const pqxx::result rows = tx.exec_params(
          "WITH clock AS (SELECT " + kNow +
              " AS now) INSERT INTO tc_leases (partition, holder, epoch, expires_at) "
              "SELECT $1, $2, 1, clock.now + $3 FROM clock ON CONFLICT (partition) DO UPDATE "
              "SET holder = excluded.holder, epoch = CASE WHEN tc_leases.holder = "
              "excluded.holder THEN tc_leases.epoch ELSE tc_leases.epoch + 1 END, "
              "expires_at = excluded.expires_at WHERE tc_leases.holder = excluded.holder OR "
              "tc_leases.expires_at <= excluded.expires_at - $3 RETURNING " +
              kLeaseColumns,
          std::string(partition), std::string(node), static_cast<long long>(ttl_ms));
      if (rows.empty()) {
        return make_error_code(Errc::AlreadyExists);
      }
      LeaseRecord lease = read_lease_row(rows[0]);
      lease.db_now = lease.expires_at - ttl_ms;
      tx.commit();
      return lease;
    });
  }

  Result<LeaseRecord> renew_lease(const Fence& fence, std::int64_t ttl_ms) override {
    return guarded("renew_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
      pqxx::work tx{c};
      const pqxx::result rows = tx.exec_params(
          "UPDATE tc_leases SET expires_at = " + kNow +
              " + $4 WHERE partition = $1 AND holder = $2 AND epoch = $3 RETURNING " +
              kLeaseColumns,
          fence.partition, fence.holder, static_cast<long long>(fence.epoch),
          static_cast<long long>(ttl_ms));
      if (rows.empty()) {
        return make_error_code(Errc::StaleEpoch);
      }
      LeaseRecord lease = read_lease_row(rows[0]);
      lease.db_now = lease.expires_at - ttl_ms;
      tx.commit();
      return lease;
    });
  }

  Result<LeaseRecord> transfer_lease(const Fence& fence, std::string_view to,
                                     std::int64_t ttl_ms) override {
    return guarded("transfer_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
      pqxx::work tx{c};
      const pqxx::result rows = tx.exec_params(
          "UPDATE tc_leases SET holder = $4, epoch = epoch + 1, expires_at = " + kNow +
              " + $5 WHERE partition = $1 AND holder = $2 AND epoch = $3 RETURNING " +
              kLeaseColumns,
          fence.partition, fence.holder, static_cast<long long>(fence.epoch), std::string(to),
          static_cast<long long>(ttl_ms));
      if (rows.empty()) {
        return make_error_code(Errc::StaleEpoch);
      }
      LeaseRecord lease = read_lease_row(rows[0]);
      lease.db_now = lease.expires_at - ttl_ms;
      tx.commit();
      return lease;
    });
  }

  Result<void> release_lease(const Fence& fence) override {
    return guarded("release_lease", [&](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      const pqxx::result r =
          tx.exec_params("UPDATE tc_leases SET expires_at = " + kNow +
                             " WHERE partition = $1 AND holder = $2 AND epoch = $3",
                         fence.partition, fence.holder, static_cast<long long>(fence.epoch));
      if (r.affected_rows() == 0) {
        return make_error_code(Errc::StaleEpoch);
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> list_settings() override {
    using Settings = std::vector<std::pair<std::string, std::string>>;
    return guarded("list_settings", [](pqxx::connection& c) -> Result<Settings> {
      pqxx::read_transaction tx{c};
      Settings out;
      for (const auto& row : tx.exec("SELECT key, value FROM tc_settings")) {
        out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
      }
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  Result<void> set_setting(std::string_view key, std::string_view value) override {
    return guarded("set_setting", [&](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      tx.exec_params(
          "INSERT INTO tc_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
          "SET value = excluded.value",
          std::string(key), std::string(value));
      tx.commit();
      return {};
    });
  }

  Result<void> delete_setting(std::string_view key) override {
    return guarded("delete_setting", [&](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      if (tx.exec_params("DELETE FROM tc_settings WHERE key = $1", std::string(key))
              .affected_rows() == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<void> save_group(const GroupRecord& g) override {
    return guarded("save_group", [&g](pqxx::connection& c) -> Result<void> {
      pqxx::work tx{c};
      tx.exec_params(
          "INSERT INTO tc_groups (name, description, ha_enabled) VALUES ($1, $2, $3) "
          "ON CONFLICT (name) DO UPDATE SET description = excluded.description, "
          "ha_enabled = excluded.ha_enabled",
          g.name, g.description, g.ha_enabled ? 1 : 0);
      tx.exec_params("DELETE FROM tc_group_nodes WHERE group_name = $1", g.name);
      // A node of another group violates tc_group_nodes' key: AlreadyExists, all rolled back.
      for (std::size_t i = 0; i < g.nodes.size(); ++i) {
        tx.exec_params(
            "INSERT INTO tc_group_nodes (node, group_name, position) VALUES ($1, $2, $3)",
            g.nodes[i], g.name, static_cast<int>(i));
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<GroupRecord>> list_groups() override {
    return guarded("list_groups", [](pqxx::connection& c) -> Result<std::vector<GroupRecord>> {
      pqxx::read_transaction tx{c};
      std::vector<GroupRecord> out;
      for (const auto& row : tx.exec("SELECT name, description, ha_enabled FROM tc_groups")) {
        GroupRecord g;
        g.name = row[0].as<std::string>();
        g.description = row[1].as<std::string>();
        g.ha_enabled = row[2].as<int>() != 0;
        out.push_back(std::move(g));
      }
      std::sort(out.begin(), out.end(),
                [](const GroupRecord& a, const GroupRecord& b) { return a.name < b.name; });
      for (const auto& row :
           tx.exec("SELECT group_name, node FROM tc_group_nodes ORDER BY group_name, position")) {
        const std::string name = row[0].as<std::string>();
        const auto it =
            std::lower_bound(out.begin(), out.end(), name,
                             [](const GroupRecord& g, const std::string& n) { return g.name < n; });
        if (it != out.end() && it->name == name) {
          it->nodes.push_back(row[1].as<std::string>());
        }
      }
      return out;
    });
  }

  Result<void> delete_group(std::string_view name) override {
    return guarded("delete_group", [&](pqxx::connection& c) -> Result<void> {
      const std::string group(name);
      pqxx::work tx{c};
      if (tx.exec_params("DELETE FROM tc_groups WHERE name = $1", group).affected_rows() == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.exec_params("DELETE FROM tc_group_nodes WHERE group_name = $1", group);
      tx.commit();
      return {};
    });
  }

 private:
  template <class Tx>
  static int read_version(Tx& tx) {
    if (tx.exec("SELECT to_regclass('tc_schema_version') IS NULL")[0][0].template as<bool>()) {
      return 0;
    }
    return tx.exec("SELECT COALESCE(MAX(version), 0) FROM tc_schema_version")[0][0]
        .template as<int>();
  }

  /// The open connection, (re)connecting when there is none. Throws what pqxx throws.
  pqxx::connection& connection() {
    if (!conn_) {
      auto conn = std::make_unique<pqxx::connection>(uri_);
      // CREATE TABLE IF NOT EXISTS and friends emit NOTICEs that pqxx would print on stderr.
      pqxx::nontransaction{*conn}.exec("SET client_min_messages TO warning");
      conn->prepare(kAppendName, kAppendSql);
      conn_ = std::move(conn);
      if (reconnecting_) {
        spdlog::info("storage: reconnected to {}", redacted_);
        reconnecting_ = false;
      }
    }
    return *conn_;
  }

  void drop_connection(std::string_view op, const std::exception& e) {
    if (!reconnecting_) {
      spdlog::warn("storage: {} on {}: connection lost: {}", op, redacted_, e.what());
    }
    reconnecting_ = true;
    conn_.reset();
  }

  /// Runs `body` on the connection and converts every exception. A connection that broke while
  /// idle (the server restarted since the last call) is replaced and the body retried once; that
  /// is safe because nothing was committed on it.
  template <class F>
  auto guarded(std::string_view op, F&& body) -> decltype(body(std::declval<pqxx::connection&>())) {
    using R = decltype(body(std::declval<pqxx::connection&>()));
    for (int attempt = 0;; ++attempt) {
      const bool reused = conn_ != nullptr;
      try {
        return body(connection());
      } catch (const pqxx::in_doubt_error& e) {
        // The commit may or may not have happened; never retried.
        drop_connection(op, e);
        return R(make_error_code(Errc::Unavailable));
      } catch (const pqxx::broken_connection& e) {
        drop_connection(op, e);
        if (reused && attempt == 0) {
          continue;
        }
        return R(make_error_code(Errc::Unavailable));
      } catch (const pqxx::unique_violation& e) {
        spdlog::debug("storage: {}: {}", op, e.what());
        return R(make_error_code(Errc::AlreadyExists));
      } catch (const pqxx::sql_error& e) {
        if (is_connection_state(e.sqlstate()) || (conn_ && !conn_->is_open())) {
          drop_connection(op, e);
          if (reused && attempt == 0) {
            continue;
          }
          return R(make_error_code(Errc::Unavailable));
        }
        spdlog::warn("storage: {} on {} failed (SQLSTATE {}): {}", op, redacted_, e.sqlstate(),
                     e.what());
        return R(make_error_code(Errc::QueryFailed));
      } catch (const std::exception& e) {
        if (conn_ && !conn_->is_open()) {
          drop_connection(op, e);
          return R(make_error_code(Errc::Unavailable));
        }
        spdlog::warn("storage: {} on {} failed: {}", op, redacted_, e.what());
        return R(make_error_code(Errc::QueryFailed));
      }
    }
  }

  std::string uri_;
  std::string redacted_;
  std::unique_ptr<pqxx::connection> conn_;
  bool reconnecting_ = false;  // a loss was logged; log the recovery once
};

Result<ArchivePage> PgStore::query_archive(const ArchiveQuery& q) {
  return guarded("query_archive", [&q](pqxx::connection& c) -> Result<ArchivePage> {
    codec::ArchiveBounds b = codec::archive_bounds(q);
    // One snapshot for the cursor lookups, the page and the count.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx{c};
    const auto seq_of = [&](const std::string& sql, const auto& value) {
      const pqxx::result r = tx.exec_params(sql, q.room_jid, value);
      return r.empty() ? std::optional<std::int64_t>{}
                       : std::optional<std::int64_t>{r[0][0].as<long long>()};
    };
    constexpr const char* kById =
        "SELECT seq FROM tc_archive WHERE room_jid = $1 AND stanza_id = $2";
    if (q.after_id) {
      const auto seq = seq_of(kById, *q.after_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.after_seq = *seq;
    }
    if (q.before_id && !q.before_id->empty()) {
      const auto seq = seq_of(kById, *q.before_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.before_seq = *seq;
    }
    // A time window becomes a seq range with one index probe per end, so paging from `start`
    // never walks the room's older messages. Exact as long as created_at does not go backwards
    // within a room (the broker stamps a room's messages on the one node that hosts it).
    ArchivePage page;
    codec::ArchiveBounds window = codec::archive_bounds(q);  // no cursors: for the count
    if (q.start) {
      const auto first = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = $1 AND created_at >= $2 "
          "ORDER BY created_at, seq LIMIT 1",
          static_cast<long long>(*q.start));
      if (!first) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.after_seq = *first - 1;
      b.after_seq = std::max(b.after_seq, window.after_seq);
    }
    if (q.end) {
      const auto last = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = $1 AND created_at <= $2 "
          "ORDER BY created_at DESC, seq DESC LIMIT 1",
          static_cast<long long>(*q.end));
      if (!last) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.before_seq = *last + 1;
      b.before_seq = std::min(b.before_seq, window.before_seq);
    }
    // Fetch one more than asked for to learn whether the page is the last one.
    const pqxx::result rows = tx.exec_params(
        std::string("SELECT ") + kArchiveColumns + " FROM tc_archive" + kArchiveFilter +
            " ORDER BY seq " + (b.backward ? "DESC" : "ASC") + " LIMIT $8",
        q.room_jid, static_cast<long long>(b.start), static_cast<long long>(b.end), q.with_nick,
        q.include_presence, static_cast<long long>(b.after_seq),
        static_cast<long long>(b.before_seq), static_cast<long long>(q.max + 1));
    page.complete = rows.size() <= q.max;
    const std::size_t n = std::min<std::size_t>(rows.size(), q.max);
    page.messages.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      page.messages.push_back(read_message(rows[static_cast<pqxx::result::size_type>(i)]));
    }
    if (b.backward) {
      std::reverse(page.messages.begin(), page.messages.end());
    }
    // The count ignores the cursors: it is the size of the whole result set (XEP-0059).
    const pqxx::result count = tx.exec_params(
        std::string("SELECT COUNT(*) FROM (SELECT 1 FROM tc_archive") + kArchiveFilter +
            " LIMIT $8) AS window_rows",
        q.room_jid, static_cast<long long>(window.start), static_cast<long long>(window.end),
        q.with_nick, q.include_presence, static_cast<long long>(window.after_seq),
        static_cast<long long>(window.before_seq), static_cast<long long>(codec::kMaxCount + 1));
    if (const auto matching = static_cast<std::size_t>(count[0][0].as<long long>());
        matching <= codec::kMaxCount) {
      page.count = matching;
    }
    return page;
  });
}

Result<void> PgStore::migrate() {
  return guarded("migrate", [this](pqxx::connection& c) -> Result<void> {
    // One transaction per migration, each under the advisory lock, re-reading the version
    // inside it: a second process waits on the lock and then finds nothing left to do.
    for (;;) {
      pqxx::work tx{c};
      tx.exec(std::string(schema::postgresql::kMigrationLock));
      schema::DbState state;
      state.version = read_version(tx);
      for (const auto& row : tx.exec(std::string(schema::list_tables_query(kDialect)))) {
        state.tc_tables.push_back(row[0].as<std::string>());
      }
      if (auto ok = schema::check_state(state, redacted_); !ok) {
        return ok;
      }
      if (state.version >= schema::latest_version()) {
        tx.commit();
        return {};
      }
      const schema::Migration& m = schema::migrations(kDialect)[state.version];
      tx.exec(std::string(schema::bootstrap_statement(kDialect)));
      for (const std::string_view statement : m.statements) {
        tx.exec(std::string(statement));
      }
      tx.exec_params("INSERT INTO tc_schema_version (version, applied_at) VALUES ($1, $2)",
                     m.version, static_cast<long long>(schema::now_millis()));
      tx.commit();
      spdlog::info("storage: {} migrated to schema version {} ({})", redacted_, m.version,
                   m.summary);
    }
  });
}

}  // namespace

Result<std::unique_ptr<Store>> open_postgresql_store(std::string uri) {
  auto store = std::make_unique<PgStore>(std::move(uri));
  if (auto ok = store->connect(); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tc::storage
