// SPDX-License-Identifier: Apache-2.0
#include "source.h"

#include <algorithm>
#include <map>
#include <set>

#include "storage/columns.h"

#include "budget.h"

namespace tc::merge {
namespace {

constexpr std::string_view kVendorColumns[][2] = {
    {"tc_rooms", "room_jid"},
    {"tc_rooms", "creator_jid"},
    {"tc_rooms", "subject"},
    {"tc_rooms", "type"},
    {"tc_rooms", "config"},
    {"tc_rooms", "spacket"},
    {"tc_users", "room_jid"},
    {"tc_users", "real_jid"},
    {"tc_users", "role"},
    {"tc_users", "affiliation"},
    {"tc_users", "nick_jid"},
    {"tc_users", "reason"},
    {"tc_msgarchive", "msg_id"},
    {"tc_msgarchive", "to_jid"},
    {"tc_msgarchive", "from_jid"},
    {"tc_msgarchive", "nick_jid"},
    {"tc_msgarchive", "sent_date"},
    {"tc_msgarchive", "msg_type"},
    {"tc_msgarchive", "body_string"},
    {"tc_msgarchive", "body_text"},
    {"tc_msgarchive", "message_string"},
    {"tc_msgarchive", "message_text"},
};

int affiliation_rank(std::string_view a) {
  if (a == "owner") {
    return 4;
  }
  if (a == "admin") {
    return 3;
  }
  if (a == "member") {
    return 2;
  }
  if (a == "outcast") {
    return 1;
  }
  return 0;
}

std::string text(const Value& v) {
  return v ? *v : std::string();
}

}  // namespace

bool known_schema_version(int version) {
  return std::find(std::begin(kKnownSchemaVersions), std::end(kKnownSchemaVersions), version) !=
         std::end(kKnownSchemaVersions);
}

Source::Source(char label, std::unique_ptr<Db> db, SourceKind kind, std::size_t page_rows)
    : label_(label), db_(std::move(db)), kind_(kind), page_rows_(page_rows) {}

DataError Source::data_error(std::string table, std::string key, const std::string& why) const {
  DataError e(std::move(table), std::move(key), why);
  e.set_where(std::string("source ") + static_cast<char>(label_ - 32));
  return e;
}

Inspection Source::inspect() {
  Inspection out;
  const bool has_ours = db_->table_exists("tc_schema_version");
  const bool has_vendor = db_->table_exists("tc_msgarchive");
  if (kind_ == SourceKind::Auto) {
    kind_ = has_ours ? SourceKind::Tc : has_vendor ? SourceKind::Vendor : SourceKind::Auto;
  }
  out.kind = kind_;
  if (kind_ == SourceKind::Tc) {
    out.schema_present = has_ours;
    if (has_ours) {
      out.schema_version =
          static_cast<int>(db_->scalar_int("SELECT MAX(version) FROM tc_schema_version"));
      for (const char* table : {"tc_accounts", "tc_rooms", "tc_room_affiliations", "tc_archive"}) {
        if (!db_->table_exists(table)) {
          out.missing.emplace_back(table);
        }
      }
    }
    return out;
  }
  if (kind_ != SourceKind::Vendor) {
    return out;
  }
  out.schema_present = has_vendor || db_->table_exists("tc_rooms");
  std::map<std::string, std::vector<std::string>> columns;
  for (const auto& [table, column] : kVendorColumns) {
    auto [it, fresh] = columns.try_emplace(std::string(table));
    if (fresh) {
      it->second = db_->columns(table);
      if (it->second.empty()) {
        out.missing.push_back(std::string(table));
      }
    }
    if (!it->second.empty() &&
        std::find(it->second.begin(), it->second.end(), column) == it->second.end()) {
      out.missing.push_back(std::string(table) + "." + std::string(column));
    }
  }
  if (!out.missing.empty()) {
    return out;
  }
  std::set<std::string> aliases;
  db_->query("SELECT room_jid, type FROM tc_rooms", {}, [&](const Row& row) {
    aliases.insert(to_lower(jid_domain(text(row[0]))));
    if (text(row[1]) == "ad-hoc") {
      ++out.vendor_adhoc_rooms;
    }
    return true;
  });
  out.aliases.assign(aliases.begin(), aliases.end());
  if (db_->table_exists("tc_messages")) {
    out.vendor_history_rows = db_->scalar_int("SELECT COUNT(*) FROM tc_messages");
  }
  out.vendor_undated_rows = db_->scalar_int(
      "SELECT COUNT(*) FROM tc_msgarchive WHERE msg_type = 'g' AND sent_date IS NULL");
  return out;
}

std::optional<std::vector<NodeState>> Source::nodes() {
  if (!db_->table_exists("tc_nodes")) {
    return std::nullopt;
  }
  std::vector<NodeState> out;
  // Schema version 2's columns: a source may be that old.
  db_->query(
      "SELECT " + storage::columns::list(storage::columns::kNodeColumnsV2) + " FROM tc_nodes", {},
      [&](const Row& row) {
        NodeState n;
        n.node = text(row[0]);
        n.running = row[1] && to_int(row[1]) != 0;
        n.heartbeat_at = row[2] ? to_int(row[2]) : 0;
        n.admin_url = text(row[3]);
        out.push_back(std::move(n));
        return true;
      });
  return out;
}

void Source::scan(const std::string& columns, const std::string& from, const std::string& where,
                  const std::vector<Param>& where_params, const std::vector<ScanKey>& keys,
                  const RowSink& sink) {
  scan_rows(*db_, page_rows_, columns, from, where, where_params, keys, sink);
}

void Source::each_account(const std::function<void(Row&)>& fn) {
  if (kind_ != SourceKind::Tc) {
    return;  // the vendor's accounts live in the IM product's directory, not in these tables
  }
  scan(storage::columns::list(storage::columns::kAccountColumns), "tc_accounts", "", {},
       {{"username", 0, false}}, [&](const Row& row) {
         Row copy = row;
         fn(copy);
         return true;
       });
}

void Source::each_room(const std::function<void(SourceRoom&)>& fn) {
  if (kind_ == SourceKind::Tc) {
    scan(storage::columns::list(storage::columns::kRoomColumns), "tc_rooms", "", {},
         {{"jid", 0, false}}, [&](const Row& row) {
           SourceRoom r;
           r.source_jid = text(row[0]);
           r.jid = r.source_jid;
           r.config_json = text(row[1]);
           try {
             r.persistent = static_cast<int>(to_int(row[2]));
             r.subject_at = to_int(row[5]);
             r.created_at = to_int(row[7]);
           } catch (const DbError& e) {
             throw data_error("tc_rooms", "jid '" + r.source_jid + "'", e.what());
           }
           r.subject = text(row[3]);
           r.subject_nick = text(row[4]);
           r.host_node = text(row[6]);
           fn(r);
           return true;
         });
    return;
  }
  scan("room_jid, creator_jid, subject, type, config, spacket", "tc_rooms", "type <> 'ad-hoc'", {},
       {{"room_jid", 0, false}}, [&](const Row& row) {
         SourceRoom r;
         r.source_jid = text(row[0]);
         r.jid = rewriter_.apply_jid(r.source_jid);
         r.persistent = text(row[3]) == "persistent" ? 1 : 0;
         r.config_json = vendor_config_to_json(rewriter_.apply(text(row[4])), r.persistent != 0);
         r.subject = text(row[2]);
         // SPACKET is the last subject <message/>: its sender's nick and, if stamped, its time.
         const std::string spacket = text(row[5]);
         if (const auto from = find_attr(spacket, "<message", "from")) {
           r.subject_nick = std::string(jid_resource(*from));
         }
         if (const auto stamp = find_attr(spacket, "<delay", "stamp")) {
           r.subject_at = parse_timestamp_ms(*stamp).value_or(0);
         }
         fn(r);
         return true;
       });
}

void Source::each_affiliation(const std::function<void(SourceAffiliation&)>& fn) {
  if (kind_ == SourceKind::Tc) {
    scan(
        storage::columns::list(storage::columns::kAffiliationColumns), "tc_room_affiliations", "",
        {}, {{"room_jid", 0, false}, {"user_jid", 1, false}}, [&](const Row& row) {
          SourceAffiliation a{text(row[0]), text(row[1]), text(row[2]), text(row[3]), text(row[4])};
          fn(a);
          return true;
        });
    return;
  }
  // TC_USERS holds a row per (room, real JID, role); the members list of a room is its rows
  // with an affiliation. Several rows of one bare JID keep the highest affiliation.
  std::string room;
  std::map<std::string, SourceAffiliation> best;
  const auto flush = [&] {
    for (auto& [user, a] : best) {
      fn(a);
    }
    best.clear();
  };
  scan("room_jid, real_jid, affiliation, reason, nick_jid", "tc_users",
       "affiliation IN ('owner', 'admin', 'member', 'outcast')", {},
       {{"room_jid", 0, false}, {"real_jid", 1, false}}, [&](const Row& row) {
         const std::string r = text(row[0]);
         if (r != room) {
           flush();
           room = r;
         }
         SourceAffiliation a{r, std::string(bare_jid(text(row[1]))), text(row[2]), text(row[3]),
                             std::string(jid_resource(text(row[4])))};
         auto [it, fresh] = best.try_emplace(to_lower(a.user_jid), a);
         if (!fresh && affiliation_rank(a.affiliation) > affiliation_rank(it->second.affiliation)) {
           it->second = std::move(a);
         }
         return true;
       });
  flush();
}

std::vector<ArchiveStats> Source::archive_stats() {
  std::vector<ArchiveStats> out;
  std::string sql;
  if (kind_ == SourceKind::Tc) {
    sql = "SELECT room_jid, COUNT(*), SUM(" + db_->byte_length("stanza_xml") + " + " +
          db_->byte_length("stanza_id") + " + " + db_->byte_length("sender_nick") + " + " +
          db_->byte_length("sender_jid") + " + " + db_->byte_length("kind") +
          "), MAX(seq) FROM tc_archive WHERE kind <> 'chat' GROUP BY room_jid";
  } else {
    sql = "SELECT to_jid, COUNT(*), SUM(COALESCE(" + db_->byte_length("message_text") +
          ", 0) + COALESCE(" + db_->byte_length("message_string") + ", 0) + COALESCE(" +
          db_->byte_length("from_jid") +
          ", 0)), MAX(msg_id) FROM tc_msgarchive WHERE msg_type = "
          "'g' GROUP BY to_jid";
  }
  db_->query(sql, {}, [&](const Row& row) {
    out.push_back(
        {text(row[0]), to_int(row[1]), row[2] ? to_int(row[2]) : 0, row[3] ? to_int(row[3]) : 0});
    return true;
  });
  return out;
}

void Source::vendor_message(const Row& row, const std::string& room_jid, SourceMessage& out) {
  // msg_id, from_jid, nick_jid, sent_date, body_string, body_text, message_string, message_text
  out.key = to_int(row[0]);
  const std::string from = text(row[1]);
  const std::string nick_jid = text(row[2]);
  out.sender_nick = std::string(jid_resource(nick_jid));
  // FROM_JID is the sender's real JID; when a deployment stored the occupant JID there instead,
  // it is no real JID and stays empty (as for semi-anonymous rooms in our schema).
  const std::string from_bare(bare_jid(from));
  out.sender_jid = to_lower(from_bare) == to_lower(bare_jid(nick_jid)) ? std::string()
                   : rewriter_.apply_jid(from_bare) != from_bare       ? std::string()
                                                                       : from_bare;
  out.kind = "groupchat";
  out.created_at = row[3] ? parse_timestamp_ms(*row[3]).value_or(0) : 0;
  std::string stanza = row[7] && !row[7]->empty() ? *row[7] : text(row[6]);
  const std::string body = row[5] && !row[5]->empty() ? *row[5] : text(row[4]);
  if (stanza.empty()) {
    out.stanza_id = "tc-import-" + std::to_string(out.key);
    out.stanza_xml = synthesize_stanza(room_jid, out.sender_nick, body, out.stanza_id);
    return;
  }
  stanza = rewriter_.apply(stanza);
  // Keep an id the room already stamped (clients may hold it); otherwise a stable one, so a
  // re-run produces the same id.
  const auto by = find_attr(stanza, "<stanza-id", "by");
  const auto id = find_attr(stanza, "<stanza-id", "id");
  if (by && id && !id->empty() && to_lower(*by) == to_lower(room_jid)) {
    out.stanza_id = *id;
  } else {
    out.stanza_id = "tc-import-" + std::to_string(out.key);
  }
  out.stanza_xml = normalize_vendor_stanza(stanza, room_jid, out.stanza_id);
}

void Source::each_message(const std::string& source_jid, long long after,
                          const std::function<bool(SourceMessage&)>& fn) {
  SourceMessage m;
  if (kind_ == SourceKind::Tc) {
    scan_archive(*db_, side_, reconnect_, page_rows_, source_jid, after, [&](Row& row) {
      try {
        m.key = to_int(row[0]);
        m.created_at = to_int(row[6]);
      } catch (const DbError& e) {
        throw data_error("tc_archive", "(room_jid '" + source_jid + "', seq " + text(row[0]) + ")",
                         e.what());
      }
      // Moved, not copied: a stanza may be megabytes (memory is bounded in bytes).
      m.stanza_id = std::move(row[1]).value_or("");
      m.sender_nick = std::move(row[2]).value_or("");
      m.sender_jid = std::move(row[3]).value_or("");
      m.kind = std::move(row[4]).value_or("");
      m.stanza_xml = std::move(row[5]).value_or("");
      const bool more = fn(m);
      if (m.stanza_xml.size() >= kLargeValue) {
        std::string().swap(m.stanza_xml);  // gone before its budget is given back
      }
      return more;
    });
    return;
  }
  const std::string room_jid = rewriter_.apply_jid(source_jid);
  scan(
      "msg_id, from_jid, nick_jid, sent_date, body_string, body_text, message_string, "
      "message_text",
      "tc_msgarchive", "to_jid = ? AND msg_type = 'g' AND msg_id > ?", {source_jid, after},
      {{"msg_id", 0, true}}, [&](const Row& row) {
        vendor_message(row, room_jid, m);
        return fn(m);
      });
}

}  // namespace tc::merge
