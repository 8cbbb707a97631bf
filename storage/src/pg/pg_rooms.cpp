// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: rooms (tc_rooms) and affiliations (tc_room_affiliations).
#include <algorithm>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "codec.h"
#include "pg/pg_store.h"

namespace tc::storage::pg {
namespace {

const std::string kSelectRooms = sql::select_from(columns::kRooms);

/// A tc_rooms row in columns::kRoomColumns order.
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

/// A tc_room_affiliations row in columns::kAffiliationColumns order.
AffiliationRecord read_affiliation(const pqxx::row& row) {
  AffiliationRecord rec;
  rec.room_jid = row[0].as<std::string>();
  rec.user_jid = row[1].as<std::string>();
  const auto aff = codec::parse_affiliation(row[2].c_str());
  if (!aff) {
    throw std::runtime_error("unknown affiliation " + row[2].as<std::string>());
  }
  rec.affiliation = *aff;
  rec.reason = row[3].as<std::string>();
  rec.nick = row[4].as<std::string>();
  return rec;
}

}  // namespace

Result<void> PgStore::save_room(const RoomRecord& room) {
  return guarded("save_room", [&room](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    if (room.fence && !holds_fence(tx, *room.fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    tx.exec_params(sql::upsert(columns::kRooms, kPlaceholders), room.jid, room.config_json,
                   room.persistent ? 1 : 0, room.subject, room.subject_nick,
                   static_cast<long long>(room.subject_at), room.host_node,
                   static_cast<long long>(room.created_at));
    tx.commit();
    return {};
  });
}

Result<RoomRecord> PgStore::load_room(std::string_view room_jid) {
  return guarded("load_room", [&](pqxx::connection& c) -> Result<RoomRecord> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows =
        tx.exec_params(kSelectRooms + " WHERE jid = $1", std::string(room_jid));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    return read_room(rows[0]);
  });
}

Result<std::vector<RoomBundle>> PgStore::load_rooms(std::span<const std::string> room_jids,
                                                    std::size_t max_history) {
  if (room_jids.empty()) {
    return std::vector<RoomBundle>{};
  }
  return guarded("load_rooms", [&](pqxx::connection& c) -> Result<std::vector<RoomBundle>> {
    // One snapshot, three set queries, whatever the number of rooms.
    pqxx::read_transaction tx{c};
    const std::string jids = text_array(room_jids);
    const pqxx::result rooms = tx.exec_params(kSelectRooms + " WHERE jid = ANY($1::text[])", jids);
    std::map<std::string, RoomBundle> by_jid;
    for (const auto& row : rooms) {
      RoomRecord room = read_room(row);
      std::string key = room.jid;
      by_jid[std::move(key)].room = std::move(room);
    }
    const pqxx::result affiliations =
        tx.exec_params(sql::select_from(columns::kAffiliations) +
                           " WHERE room_jid = ANY($1::text[]) ORDER BY room_jid, user_jid",
                       jids);
    for (const auto& row : affiliations) {
      auto it = by_jid.find(row[0].as<std::string>());
      if (it == by_jid.end()) {
        continue;
      }
      it->second.affiliations.push_back(read_affiliation(row));
    }
    if (max_history > 0) {
      // Per room, the newest messages through the (room_jid, seq) index.
      const pqxx::result recent = tx.exec_params(
          std::string("SELECT m.* FROM unnest($1::text[]) AS r(jid) CROSS JOIN LATERAL "
                      "(SELECT ") +
              archive_columns() +
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

Result<std::vector<RoomRecord>> PgStore::list_rooms(std::string_view host_node) {
  return guarded("list_rooms", [&](pqxx::connection& c) -> Result<std::vector<RoomRecord>> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows =
        host_node.empty()
            ? tx.exec(kSelectRooms)
            : tx.exec_params(kSelectRooms + " WHERE host_node = $1", std::string(host_node));
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

Result<void> PgStore::delete_room(std::string_view room_jid, const Fence* fence) {
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

Result<void> PgStore::set_affiliation(const AffiliationRecord& r) {
  return guarded("set_affiliation", [&r](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    if (r.fence && !holds_fence(tx, *r.fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    if (r.affiliation == Affiliation::None) {
      tx.exec_params("DELETE FROM tc_room_affiliations WHERE room_jid = $1 AND user_jid = $2",
                     r.room_jid, r.user_jid);
    } else {
      tx.exec_params(sql::upsert(columns::kAffiliations, kPlaceholders), r.room_jid, r.user_jid,
                     std::string(codec::affiliation_text(r.affiliation)), r.reason, r.nick);
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<AffiliationRecord>> PgStore::load_affiliations(std::string_view room_jid) {
  return guarded(
      "load_affiliations", [&](pqxx::connection& c) -> Result<std::vector<AffiliationRecord>> {
        pqxx::read_transaction tx{c};
        const pqxx::result rows =
            tx.exec_params(sql::select_from(columns::kAffiliations) + " WHERE room_jid = $1",
                           std::string(room_jid));
        std::vector<AffiliationRecord> out;
        out.reserve(rows.size());
        for (const auto& row : rows) {
          out.push_back(read_affiliation(row));
        }
        std::sort(out.begin(), out.end(),
                  [](const auto& a, const auto& b) { return a.user_jid < b.user_jid; });
        return out;
      });
}

}  // namespace tc::storage::pg
