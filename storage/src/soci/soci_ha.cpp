// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): HA state (schema v3) and the node registry: tc_nodes, the
// database clock, tc_leases, tc_settings, tc_groups and tc_group_nodes; and which group hosts
// each room (tc_room_groups, schema v4).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "soci/soci_store.h"

namespace tc::storage::soci_backend {
namespace {

const std::string kLeaseColumns = columns::list(columns::kLeaseColumns);

}  // namespace

Result<void> SociStore::upsert_node(const NodeRecord& n) {
  return guarded("upsert_node", [this, &n](soci::session& sql) -> Result<void> {
    const int running = n.text_conference_running ? 1 : 0;
    const long long at = n.heartbeat_at;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query(sql)
        .use(n.node)
        .use(running)
        .use(at)
        .use(n.admin_url)
        .use(n.client_endpoint)
        .use(n.srm_endpoint)
        .use(n.state)
        .use(n.reason)
        .use(n.version)
        .run(sql::upsert(columns::kNodes, kPlaceholders));
    tx.commit();
    return {};
  });
}

Result<std::vector<NodeRecord>> SociStore::list_nodes() {
  return guarded("list_nodes", [](soci::session& sql) -> Result<std::vector<NodeRecord>> {
    NodeRecord n;
    int running = 0;
    long long at = 0;
    Query q(sql);
    q.into(n.node)
        .into(running)
        .into(at)
        .into(n.admin_url)
        .into(n.client_endpoint)
        .into(n.srm_endpoint)
        .into(n.state)
        .into(n.reason)
        .into(n.version)
        .start(sql::select_from(columns::kNodes));
    std::vector<NodeRecord> out;
    while (q.fetch()) {
      n.text_conference_running = running != 0;
      n.heartbeat_at = at;
      out.push_back(n);
    }
    std::sort(out.begin(), out.end(),
              [](const NodeRecord& a, const NodeRecord& b) { return a.node < b.node; });
    return out;
  });
}

Result<UnixMillis> SociStore::db_now() {
  return guarded("db_now",
                 [this](soci::session& sql) -> Result<UnixMillis> { return read_now(sql); });
}

Result<LeaseRecord> SociStore::read_lease(std::string_view partition) {
  return guarded("read_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
    const std::string part(partition);
    LeaseRecord lease;
    long long epoch = 0, expires = 0, now = 0;
    Query q(sql);
    q.into(lease.partition)
        .into(lease.holder)
        .into(epoch)
        .into(expires)
        .into(now)
        .use(part)
        .start("SELECT " + kLeaseColumns + ", " + now_sql() +
               " FROM tc_leases WHERE partition = :p");
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    lease.epoch = epoch;
    lease.expires_at = expires;
    lease.db_now = now;
    return lease;
  });
}

Result<std::vector<LeaseRecord>> SociStore::list_leases() {
  return guarded("list_leases", [this](soci::session& sql) -> Result<std::vector<LeaseRecord>> {
    const UnixMillis now = read_now(sql);
    LeaseRecord lease;
    long long epoch = 0, expires = 0;
    Query q(sql);
    q.into(lease.partition)
        .into(lease.holder)
        .into(epoch)
        .into(expires)
        .start("SELECT " + kLeaseColumns + " FROM tc_leases");
    std::vector<LeaseRecord> out;
    while (q.fetch()) {
      lease.epoch = epoch;
      lease.expires_at = expires;
      lease.db_now = now;
      out.push_back(lease);
    }
    std::sort(out.begin(), out.end(),
              [](const LeaseRecord& a, const LeaseRecord& b) { return a.partition < b.partition; });
    return out;
  });
}

Result<LeaseRecord> SociStore::acquire_lease(std::string_view partition, std::string_view node,
                                             std::int64_t ttl_ms) {
  return guarded("acquire_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
    const std::string part(partition);
    const std::string holder(node);
    const long long ttl = ttl_ms;
    // SQLite: BEGIN IMMEDIATE holds the write lock for the whole decision. PostgreSQL: the
    // insert waits for a concurrent inserter of the same partition, and FOR UPDATE locks
    // the row, so a second acquirer decides on the winner's committed row.
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    const long long inserted = Query(sql).use(part).use(holder).use(ttl).run(
        "INSERT INTO tc_leases (" + kLeaseColumns + ") VALUES (:p, :h, 1, " + now_sql() +
        " + :ttl) ON CONFLICT (partition) DO NOTHING");
    LeaseRecord lease;
    if (!lock_lease(sql, part, lease)) {
      throw std::runtime_error("tc_leases row vanished inside its transaction");
    }
    if (inserted != 0) {
      lease.db_now = lease.expires_at - ttl;  // the clock reading the insert used
    } else {
      lease.db_now = read_now(sql);
      if (lease.holder != holder && lease.expires_at > lease.db_now) {
        return make_error_code(Errc::AlreadyExists);
      }
      const long long epoch = lease.holder == holder ? lease.epoch : lease.epoch + 1;
      const long long expires = lease.db_now + ttl;
      const long long old_epoch = lease.epoch;
      const long long n = Query(sql)
                              .use(holder)
                              .use(epoch)
                              .use(expires)
                              .use(part)
                              .use(lease.holder)
                              .use(old_epoch)
                              .run(
                                  "UPDATE tc_leases SET holder = :h, epoch = :e, expires_at = "
                                  ":x WHERE partition = :p AND holder = :oh AND epoch = :oe");
      if (n != 1) {
        return make_error_code(Errc::AlreadyExists);  // cannot happen under the row lock
      }
      lease.holder = holder;
      lease.epoch = epoch;
      lease.expires_at = expires;
    }
    tx.commit();
    return lease;
  });
}

Result<LeaseRecord> SociStore::renew_lease(const Fence& fence, std::int64_t ttl_ms) {
  return guarded("renew_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
    const long long ttl = ttl_ms;
    const long long epoch = fence.epoch;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    const long long n = Query(sql)
                            .use(ttl)
                            .use(fence.partition)
                            .use(fence.holder)
                            .use(epoch)
                            .run("UPDATE tc_leases SET expires_at = " + now_sql() +
                                 " + :ttl WHERE partition = :p AND holder = :h AND epoch = :e");
    if (n == 0) {
      return make_error_code(Errc::StaleEpoch);
    }
    LeaseRecord lease;
    lock_lease(sql, fence.partition, lease);
    lease.db_now = lease.expires_at - ttl;
    tx.commit();
    return lease;
  });
}

Result<LeaseRecord> SociStore::transfer_lease(const Fence& fence, std::string_view to,
                                              std::int64_t ttl_ms) {
  return guarded("transfer_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
    const std::string holder(to);
    const long long ttl = ttl_ms;
    const long long epoch = fence.epoch;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    const long long n =
        Query(sql)
            .use(holder)
            .use(ttl)
            .use(fence.partition)
            .use(fence.holder)
            .use(epoch)
            .run("UPDATE tc_leases SET holder = :to, epoch = epoch + 1, expires_at = " + now_sql() +
                 " + :ttl WHERE partition = :p AND holder = :h AND epoch = :e");
    if (n == 0) {
      return make_error_code(Errc::StaleEpoch);
    }
    LeaseRecord lease;
    lock_lease(sql, fence.partition, lease);
    lease.db_now = lease.expires_at - ttl;
    tx.commit();
    return lease;
  });
}

Result<void> SociStore::release_lease(const Fence& fence) {
  return guarded("release_lease", [&](soci::session& sql) -> Result<void> {
    const long long epoch = fence.epoch;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    const long long n = Query(sql)
                            .use(fence.partition)
                            .use(fence.holder)
                            .use(epoch)
                            .run("UPDATE tc_leases SET expires_at = " + now_sql() +
                                 " WHERE partition = :p AND holder = :h AND epoch = :e");
    if (n == 0) {
      return make_error_code(Errc::StaleEpoch);
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<std::pair<std::string, std::string>>> SociStore::list_settings() {
  using Settings = std::vector<std::pair<std::string, std::string>>;
  return guarded("list_settings", [](soci::session& sql) -> Result<Settings> {
    std::string key, value;
    Query q(sql);
    q.into(key).into(value).start(sql::select_from(columns::kSettings));
    Settings out;
    while (q.fetch()) {
      out.emplace_back(key, value);
    }
    std::sort(out.begin(), out.end());
    return out;
  });
}

Result<void> SociStore::set_setting(std::string_view key, std::string_view value) {
  return guarded("set_setting", [&](soci::session& sql) -> Result<void> {
    const std::string k(key), v(value);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query(sql).use(k).use(v).run(sql::upsert(columns::kSettings, kPlaceholders));
    tx.commit();
    return {};
  });
}

Result<void> SociStore::delete_setting(std::string_view key) {
  return guarded("delete_setting", [&](soci::session& sql) -> Result<void> {
    const std::string k(key);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (Query(sql).use(k).run("DELETE FROM tc_settings WHERE key = :k") == 0) {
      return make_error_code(Errc::NotFound);
    }
    tx.commit();
    return {};
  });
}

Result<void> SociStore::save_group(const GroupRecord& g) {
  return guarded("save_group", [this, &g](soci::session& sql) -> Result<void> {
    const int ha = g.ha_enabled ? 1 : 0;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query(sql)
        .use(g.name)
        .use(g.description)
        .use(ha)
        .run(sql::upsert(columns::kGroups, kPlaceholders));
    Query(sql).use(g.name).run("DELETE FROM tc_group_nodes WHERE group_name = :n");
    // A node of another group violates tc_group_nodes' key: AlreadyExists, all rolled back.
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
      const int position = static_cast<int>(i);
      Query(sql)
          .use(g.nodes[i])
          .use(g.name)
          .use(position)
          .run(sql::insert("tc_group_nodes", columns::kGroupNodeColumns, kPlaceholders));
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<GroupRecord>> SociStore::list_groups() {
  return guarded("list_groups", [](soci::session& sql) -> Result<std::vector<GroupRecord>> {
    std::vector<GroupRecord> out;
    {
      GroupRecord g;
      int ha = 0;
      Query q(sql);
      q.into(g.name).into(g.description).into(ha).start(sql::select_from(columns::kGroups));
      while (q.fetch()) {
        g.ha_enabled = ha != 0;
        out.push_back(g);
      }
    }
    std::sort(out.begin(), out.end(),
              [](const GroupRecord& a, const GroupRecord& b) { return a.name < b.name; });
    std::string name, node;
    Query q(sql);
    q.into(name).into(node).start(
        "SELECT group_name, node FROM tc_group_nodes ORDER BY group_name, position");
    while (q.fetch()) {
      const auto it =
          std::lower_bound(out.begin(), out.end(), name,
                           [](const GroupRecord& g, const std::string& n) { return g.name < n; });
      if (it != out.end() && it->name == name) {
        it->nodes.push_back(node);
      }
    }
    return out;
  });
}

Result<void> SociStore::delete_group(std::string_view name) {
  return guarded("delete_group", [&](soci::session& sql) -> Result<void> {
    const std::string group(name);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (Query(sql).use(group).run("DELETE FROM tc_groups WHERE name = :n") == 0) {
      return make_error_code(Errc::NotFound);
    }
    Query(sql).use(group).run("DELETE FROM tc_group_nodes WHERE group_name = :n");
    tx.commit();
    return {};
  });
}

// Claims are an insert that leaves a taken key alone, then a read, in one write transaction.
// SQLite: BEGIN IMMEDIATE holds the write lock across both, so no other claim comes between.
// PostgreSQL (ODBC, READ COMMITTED): the second claimant's insert waits on the first's
// uncommitted row and then does nothing; its read is a new statement that sees the winner's row.
Result<std::string> SociStore::claim_room_group(std::string_view room_jid, std::string_view group) {
  return guarded("claim_room_group", [&](soci::session& sql) -> Result<std::string> {
    const std::string jid(room_jid), name(group);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query(sql).use(jid).use(name).run(sql::insert_new(columns::kRoomGroups, kPlaceholders));
    std::string recorded;
    Query q(sql);
    q.into(recorded).use(jid).start(
        "SELECT group_name FROM tc_room_groups WHERE room_jid = :room_jid");
    if (!q.fetch()) {
      throw std::runtime_error("tc_room_groups row missing right after its insert");
    }
    tx.commit();
    return recorded;
  });
}

Result<std::uint64_t> SociStore::claim_room_groups(std::span<const std::string> room_jids,
                                                   std::string_view group) {
  if (room_jids.empty()) {
    return std::uint64_t{0};
  }
  return guarded("claim_room_groups", [&](soci::session& sql) -> Result<std::uint64_t> {
    // PostgreSQL: one key order for every claimant, so overlapping backfills cannot deadlock.
    const std::vector<std::string> jids = sql::lock_order(room_jids);
    std::string jid;
    const std::string name(group);
    const std::string text = sql::insert_new(columns::kRoomGroups, kPlaceholders);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query insert(sql);
    insert.use(jid).use(name);
    std::uint64_t inserted = 0;
    for (std::size_t i = 0; i < jids.size(); ++i) {
      jid = jids[i];
      // Prepared once, executed per room; a taken key changes no row.
      const long long n = i == 0 ? insert.run(text) : insert.rerun();
      inserted += n > 0 ? 1 : 0;
    }
    tx.commit();
    return inserted;
  });
}

Result<std::string> SociStore::room_group(std::string_view room_jid) {
  return guarded("room_group", [&](soci::session& sql) -> Result<std::string> {
    const std::string jid(room_jid);
    std::string recorded;
    Query q(sql);
    q.into(recorded).use(jid).start(
        "SELECT group_name FROM tc_room_groups WHERE room_jid = :room_jid");
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    return recorded;
  });
}

Result<std::vector<std::pair<std::string, std::string>>> SociStore::list_room_groups() {
  using Placements = std::vector<std::pair<std::string, std::string>>;
  return guarded("list_room_groups", [](soci::session& sql) -> Result<Placements> {
    std::string jid, name;
    Query q(sql);
    q.into(jid).into(name).start(sql::select_from(columns::kRoomGroups));
    Placements out;
    while (q.fetch()) {
      out.emplace_back(jid, name);
    }
    std::sort(out.begin(), out.end());
    return out;
  });
}

/// The database clock in Unix milliseconds, as SQL of this dialect.
std::string SociStore::now_sql() const {
  return std::string(schema::now_millis_expression(dialect_));
}

long long SociStore::read_now(soci::session& sql) const {
  long long now = 0;
  Query q(sql);
  q.into(now).start("SELECT " + now_sql());
  if (!q.fetch()) {
    throw std::runtime_error("the database clock query returned no row");
  }
  return now;
}

/// Reads the lease row of `partition` into `lease` (db_now untouched), locking it for the
/// transaction on PostgreSQL (SQLite's write transaction holds the whole database). False
/// when there is no row.
bool SociStore::lock_lease(soci::session& sql, const std::string& partition,
                           LeaseRecord& lease) const {
  long long epoch = 0, expires = 0;
  Query q(sql);
  q.into(lease.partition)
      .into(lease.holder)
      .into(epoch)
      .into(expires)
      .use(partition)
      .start("SELECT " + kLeaseColumns + " FROM tc_leases WHERE partition = :p" +
             (dialect_ == Dialect::Postgresql ? " FOR UPDATE" : ""));
  if (!q.fetch()) {
    return false;
  }
  lease.epoch = epoch;
  lease.expires_at = expires;
  return true;
}

}  // namespace tc::storage::soci_backend
