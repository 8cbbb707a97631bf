// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: HA state (schema v3) and the node registry: tc_nodes, the database clock,
// tc_leases, tc_settings, tc_groups and tc_group_nodes; and which group hosts each room
// (tc_room_groups, schema v4).
#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pg/pg_store.h"
#include "schema/postgresql_sql.h"

namespace tc::storage::pg {
namespace {

/// The database clock in Unix milliseconds, as SQL.
const std::string kNow(schema::postgresql::kNowMillis);

const std::string kLeaseColumns = columns::list(columns::kLeaseColumns);

/// A tc_leases row in columns::kLeaseColumns order; db_now is filled in by the caller.
LeaseRecord read_lease_row(const pqxx::row& row) {
  LeaseRecord lease;
  lease.partition = row[0].as<std::string>();
  lease.holder = row[1].as<std::string>();
  lease.epoch = row[2].as<long long>();
  lease.expires_at = row[3].as<long long>();
  return lease;
}

}  // namespace

Result<void> PgStore::upsert_node(const NodeRecord& n) {
  return guarded("upsert_node", [&n](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    tx.exec_params(sql::upsert(columns::kNodes, kPlaceholders), n.node,
                   n.text_conference_running ? 1 : 0, static_cast<long long>(n.heartbeat_at),
                   n.admin_url, n.client_endpoint, n.srm_endpoint, n.state, n.reason, n.version);
    tx.commit();
    return {};
  });
}

Result<std::vector<NodeRecord>> PgStore::list_nodes() {
  return guarded("list_nodes", [](pqxx::connection& c) -> Result<std::vector<NodeRecord>> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec(sql::select_from(columns::kNodes));
    std::vector<NodeRecord> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {  // columns::kNodeColumns order
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

Result<UnixMillis> PgStore::db_now() {
  return guarded("db_now", [](pqxx::connection& c) -> Result<UnixMillis> {
    pqxx::nontransaction tx{c};
    return tx.exec("SELECT " + kNow)[0][0].as<long long>();
  });
}

Result<LeaseRecord> PgStore::read_lease(std::string_view partition) {
  return guarded("read_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec_params(
        "SELECT " + kLeaseColumns + ", " + kNow + " FROM tc_leases WHERE partition = $1",
        std::string(partition));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    LeaseRecord lease = read_lease_row(rows[0]);
    lease.db_now = rows[0][4].as<long long>();
    return lease;
  });
}

Result<std::vector<LeaseRecord>> PgStore::list_leases() {
  return guarded("list_leases", [](pqxx::connection& c) -> Result<std::vector<LeaseRecord>> {
    pqxx::read_transaction tx{c};
    const UnixMillis now = tx.exec("SELECT " + kNow)[0][0].as<long long>();
    const pqxx::result rows = tx.exec("SELECT " + kLeaseColumns + " FROM tc_leases");
    std::vector<LeaseRecord> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      out.push_back(read_lease_row(row));
      out.back().db_now = now;
    }
    std::sort(out.begin(), out.end(),
              [](const LeaseRecord& a, const LeaseRecord& b) { return a.partition < b.partition; });
    return out;
  });
}

Result<LeaseRecord> PgStore::acquire_lease(std::string_view partition, std::string_view node,
                                           std::int64_t ttl_ms) {
  return guarded("acquire_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
    pqxx::work tx{c};
    // One statement: a missing row is inserted at epoch 1; an existing one is taken only
    // when `node` holds it already (epoch kept) or it lapsed (epoch + 1). The row lock of
    // ON CONFLICT DO UPDATE makes a concurrent acquirer re-check the WHERE against the
    // winner's row, so of two racers exactly one gets a row back. excluded.expires_at is
    // now + ttl, so "lapsed" is expires_at <= excluded.expires_at - ttl.
    const pqxx::result rows = tx.exec_params(
        "WITH clock AS (SELECT " + kNow + " AS now) INSERT INTO tc_leases (" + kLeaseColumns +
            ") SELECT $1, $2, 1, clock.now + $3 FROM clock ON CONFLICT (partition) DO UPDATE "
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

Result<LeaseRecord> PgStore::renew_lease(const Fence& fence, std::int64_t ttl_ms) {
  return guarded("renew_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
    pqxx::work tx{c};
    const pqxx::result rows = tx.exec_params(
        "UPDATE tc_leases SET expires_at = " + kNow +
            " + $4 WHERE partition = $1 AND holder = $2 AND epoch = $3 RETURNING " + kLeaseColumns,
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

Result<LeaseRecord> PgStore::transfer_lease(const Fence& fence, std::string_view to,
                                            std::int64_t ttl_ms) {
  return guarded("transfer_lease", [&](pqxx::connection& c) -> Result<LeaseRecord> {
    pqxx::work tx{c};
    const pqxx::result rows = tx.exec_params(
        "UPDATE tc_leases SET holder = $4, epoch = epoch + 1, expires_at = " + kNow +
            " + $5 WHERE partition = $1 AND holder = $2 AND epoch = $3 RETURNING " + kLeaseColumns,
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

Result<void> PgStore::release_lease(const Fence& fence) {
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

Result<std::vector<std::pair<std::string, std::string>>> PgStore::list_settings() {
  using Settings = std::vector<std::pair<std::string, std::string>>;
  return guarded("list_settings", [](pqxx::connection& c) -> Result<Settings> {
    pqxx::read_transaction tx{c};
    Settings out;
    for (const auto& row : tx.exec(sql::select_from(columns::kSettings))) {
      out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
    }
    std::sort(out.begin(), out.end());
    return out;
  });
}

Result<void> PgStore::set_setting(std::string_view key, std::string_view value) {
  return guarded("set_setting", [&](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    tx.exec_params(sql::upsert(columns::kSettings, kPlaceholders), std::string(key),
                   std::string(value));
    tx.commit();
    return {};
  });
}

Result<void> PgStore::delete_setting(std::string_view key) {
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

Result<void> PgStore::save_group(const GroupRecord& g) {
  return guarded("save_group", [&g](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    tx.exec_params(sql::upsert(columns::kGroups, kPlaceholders), g.name, g.description,
                   g.ha_enabled ? 1 : 0);
    tx.exec_params("DELETE FROM tc_group_nodes WHERE group_name = $1", g.name);
    // A node of another group violates tc_group_nodes' key: AlreadyExists, all rolled back.
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
      tx.exec_params(sql::insert("tc_group_nodes", columns::kGroupNodeColumns, kPlaceholders),
                     g.nodes[i], g.name, static_cast<int>(i));
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<GroupRecord>> PgStore::list_groups() {
  return guarded("list_groups", [](pqxx::connection& c) -> Result<std::vector<GroupRecord>> {
    pqxx::read_transaction tx{c};
    std::vector<GroupRecord> out;
    for (const auto& row : tx.exec(sql::select_from(columns::kGroups))) {
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

Result<void> PgStore::delete_group(std::string_view name) {
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

// Claims are an insert that leaves a taken key alone, then a read, in one READ COMMITTED
// transaction. Of two claimants of one new room, the second's insert waits on the first's
// uncommitted row and then does nothing; its read is a new statement with a new snapshot, so it
// sees the winner's row. Not one statement (a CTE reading the table after the insert): that
// read would use the statement's snapshot, from before the winner committed, and find nothing.
Result<std::string> PgStore::claim_room_group(std::string_view room_jid, std::string_view group) {
  return guarded("claim_room_group", [&](pqxx::connection& c) -> Result<std::string> {
    const std::string jid(room_jid);
    pqxx::work tx{c};
    tx.exec_params(sql::insert_new(columns::kRoomGroups, kPlaceholders), jid, std::string(group));
    const pqxx::result rows =
        tx.exec_params("SELECT group_name FROM tc_room_groups WHERE room_jid = $1", jid);
    if (rows.empty()) {
      throw std::runtime_error("tc_room_groups row missing right after its insert");
    }
    std::string recorded = rows[0][0].as<std::string>();
    tx.commit();
    return recorded;
  });
}

Result<std::uint64_t> PgStore::claim_room_groups(std::span<const std::string> room_jids,
                                                 std::string_view group) {
  if (room_jids.empty()) {
    return std::uint64_t{0};
  }
  return guarded("claim_room_groups", [&](pqxx::connection& c) -> Result<std::uint64_t> {
    pqxx::work tx{c};
    // One statement for the whole batch. Its rows are inserted in array order (unnest without
    // an ORDER BY), which sql::lock_order makes the same for every claimant: two nodes
    // backfilling overlapping rooms wait on each other's keys in one order, never in a cycle.
    const pqxx::result r =
        tx.exec_params("INSERT INTO tc_room_groups (" + columns::list(columns::kRoomGroupColumns) +
                           ") SELECT r.jid, $2 FROM unnest($1::text[]) AS r(jid) ON CONFLICT (" +
                           std::string(columns::kRoomGroups.key) + ") DO NOTHING",
                       text_array(sql::lock_order(room_jids)), std::string(group));
    tx.commit();
    return static_cast<std::uint64_t>(r.affected_rows());
  });
}

Result<std::string> PgStore::room_group(std::string_view room_jid) {
  return guarded("room_group", [&](pqxx::connection& c) -> Result<std::string> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec_params(
        "SELECT group_name FROM tc_room_groups WHERE room_jid = $1", std::string(room_jid));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    return rows[0][0].as<std::string>();
  });
}

Result<std::vector<std::pair<std::string, std::string>>> PgStore::list_room_groups() {
  using Placements = std::vector<std::pair<std::string, std::string>>;
  return guarded("list_room_groups", [](pqxx::connection& c) -> Result<Placements> {
    pqxx::read_transaction tx{c};
    Placements out;
    for (const auto& row : tx.exec(sql::select_from(columns::kRoomGroups))) {
      out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
    }
    // Byte order, whatever the database's collation (room_jid is the key: no ties).
    std::sort(out.begin(), out.end());
    return out;
  });
}

}  // namespace tc::storage::pg
