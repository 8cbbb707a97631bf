// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): rooms (tc_rooms) and affiliations (tc_room_affiliations).
#include <algorithm>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "soci/soci_store.h"

namespace tc::storage::soci_backend {
namespace {

const std::string kSelectRooms = sql::select_from(columns::kRooms);

struct RoomRow {
  std::string jid, config_json;
  int persistent = 1;
  std::string subject, subject_nick;
  long long subject_at = 0;
  std::string host_node;
  long long created_at = 0;

  static RoomRow from(const RoomRecord& room) {
    return {room.jid,          room.config_json, room.persistent ? 1 : 0, room.subject,
            room.subject_nick, room.subject_at,  room.host_node,          room.created_at};
  }

  template <class F>
  void each(F&& f) {
    f(jid), f(config_json), f(persistent), f(subject), f(subject_nick), f(subject_at);
    f(host_node), f(created_at);
  }

  RoomRecord to_record() const {
    return {std::nullopt, jid,        config_json, persistent != 0, subject,
            subject_nick, subject_at, host_node,   created_at};
  }
};

}  // namespace

Result<void> SociStore::save_room(const RoomRecord& room) {
  return guarded("save_room", [this, &room](soci::session& sql) -> Result<void> {
    RoomRow row = RoomRow::from(room);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (room.fence && !holds_fence(sql, *room.fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    Query q(sql);
    row.each([&q](auto& v) { q.use(v); });
    q.run(sql::upsert(columns::kRooms, kPlaceholders));
    tx.commit();
    return {};
  });
}

Result<RoomRecord> SociStore::load_room(std::string_view room_jid) {
  return guarded("load_room", [&](soci::session& sql) -> Result<RoomRecord> {
    const std::string jid(room_jid);
    RoomRow row;
    Query q(sql);
    q.into_row(row).use(jid).start(kSelectRooms + " WHERE jid = :jid");
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    return row.to_record();
  });
}

Result<std::vector<RoomRecord>> SociStore::list_rooms(std::string_view host_node) {
  return guarded("list_rooms", [&](soci::session& sql) -> Result<std::vector<RoomRecord>> {
    const std::string host(host_node);
    RoomRow row;
    Query q(sql);
    q.into_row(row);
    if (host.empty()) {
      q.start(kSelectRooms);
    } else {
      q.use(host).start(kSelectRooms + " WHERE host_node = :host");
    }
    std::vector<RoomRecord> rooms;
    while (q.fetch()) {
      rooms.push_back(row.to_record());
    }
    std::sort(rooms.begin(), rooms.end(),
              [](const RoomRecord& a, const RoomRecord& b) { return a.jid < b.jid; });
    return rooms;
  });
}

Result<void> SociStore::delete_room(std::string_view room_jid, const Fence* fence) {
  return guarded("delete_room", [&](soci::session& sql) -> Result<void> {
    const std::string jid(room_jid);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (fence != nullptr && !holds_fence(sql, *fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    if (Query(sql).use(jid).run("DELETE FROM tc_rooms WHERE jid = :jid") == 0) {
      return make_error_code(Errc::NotFound);  // rolled back: nothing else is touched
    }
    Query(sql).use(jid).run("DELETE FROM tc_room_affiliations WHERE room_jid = :jid");
    Query(sql).use(jid).run("DELETE FROM tc_archive WHERE room_jid = :jid");
    tx.commit();
    return {};
  });
}

Result<void> SociStore::set_affiliation(const AffiliationRecord& r) {
  return guarded("set_affiliation", [this, &r](soci::session& sql) -> Result<void> {
    const std::string affiliation(codec::affiliation_text(r.affiliation));
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (r.fence && !holds_fence(sql, *r.fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    if (r.affiliation == Affiliation::None) {
      Query(sql)
          .use(r.room_jid)
          .use(r.user_jid)
          .run("DELETE FROM tc_room_affiliations WHERE room_jid = :room AND user_jid = :user");
    } else {
      Query(sql)
          .use(r.room_jid)
          .use(r.user_jid)
          .use(affiliation)
          .use(r.reason)
          .use(r.nick)
          .run(sql::upsert(columns::kAffiliations, kPlaceholders));
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<AffiliationRecord>> SociStore::load_affiliations(std::string_view room_jid) {
  return guarded("load_affiliations",
                 [&](soci::session& sql) -> Result<std::vector<AffiliationRecord>> {
                   const std::string jid(room_jid);
                   std::string room, user, affiliation, reason, nick;
                   Query q(sql);
                   q.into(room)
                       .into(user)
                       .into(affiliation)
                       .into(reason)
                       .into(nick)
                       .use(jid)
                       .start(sql::select_from(columns::kAffiliations) + " WHERE room_jid = :room");
                   std::vector<AffiliationRecord> out;
                   while (q.fetch()) {
                     const auto aff = codec::parse_affiliation(affiliation);
                     if (!aff) {
                       throw std::runtime_error("unknown affiliation " + affiliation);
                     }
                     out.push_back({std::nullopt, jid, user, *aff, reason, nick});
                   }
                   std::sort(out.begin(), out.end(),
                             [](const auto& a, const auto& b) { return a.user_jid < b.user_jid; });
                   return out;
                 });
}

}  // namespace tc::storage::soci_backend
