// SPDX-License-Identifier: Apache-2.0
// Reading one source database, of either kind: our schema (tc_accounts, tc_rooms,
// tc_room_affiliations, tc_archive) or the vendor's text-conference tables (TC_ROOMS, TC_USERS,
// TC_MSGARCHIVE, TC_MESSAGES; ANCHORS.md 1.2), converted to our records on the way. Sources are
// opened read-only and only ever SELECTed from. Every scan streams or pages, so memory does not
// grow with the size of a table.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "db.h"
#include "model.h"
#include "scan.h"
#include "transform.h"

namespace tc::merge {

/// Schema versions whose tc_ tables this tool knows how to copy. Version 2 adds tc_nodes (node
/// state, not copied). Version 3 adds columns to tc_nodes and the HA tables tc_leases,
/// tc_settings, tc_groups and tc_group_nodes: per-cluster state, not copied either; the copied
/// tables are unchanged. Version 4 adds tc_room_groups (which redundancy group hosts each room):
/// cluster state too, not copied; a merged target gets its placements from the broker's start-up
/// backfill. Version 5 adds tc_user_data (rosters, offline messages, PEP, vCards), which only
/// tcbroker itself writes and legacy per-node databases never hold: not copied (docs say so);
/// nor are the users' message archives beside it in tc_archive (kind 'chat', keyed by a user's
/// bare JID, not a room's), which a version 5 database may hold with no schema change. A
/// newer schema may have changed a copied table, so it is refused until the tool learns it.
inline constexpr int kKnownSchemaVersions[] = {1, 2, 3, 4, 5};
bool known_schema_version(int version);

/// A source row the merge cannot convert into what it writes: a number that is not one, a
/// stanza that cannot be scanned, a value the target refuses. Validation reports each of these
/// before a merge starts, so meeting one during a merge means the source changed since (or a
/// check is missing). Names the row by its table and key, for the operator to fix.
class DataError : public std::runtime_error {
 public:
  DataError(std::string table, std::string key, const std::string& why)
      : std::runtime_error(table + " row " + key + ": " + why),
        table_(std::move(table)),
        key_(std::move(key)) {}
  const std::string& table() const { return table_; }
  const std::string& key() const { return key_; }
  /// "source A" or "source B", once known.
  const std::string& where() const { return where_; }
  void set_where(std::string where) { where_ = std::move(where); }

 private:
  std::string table_;
  std::string key_;
  std::string where_;
};

struct SourceRoom {
  std::string source_jid;  ///< as stored in the source
  std::string jid;         ///< after alias rewriting
  std::string config_json = "{}";
  int persistent = 1;
  std::string subject;
  std::string subject_nick;
  long long subject_at = 0;
  std::string host_node;
  long long created_at = 0;
};

struct SourceAffiliation {
  std::string room_source_jid;
  std::string user_jid;
  std::string affiliation;  ///< owner, admin, member, outcast
  std::string reason;
  std::string nick;
};

struct SourceMessage {
  long long key = 0;  ///< source order within the room: tc seq or vendor MSG_ID
  std::string stanza_id;
  std::string sender_nick;
  std::string sender_jid;
  std::string kind = "groupchat";
  std::string stanza_xml;
  long long created_at = 0;
};

struct ArchiveStats {
  std::string source_jid;
  long long count = 0;
  long long bytes = 0;
  long long max_key = 0;
};

struct NodeState {
  std::string node;
  bool running = false;
  long long heartbeat_at = 0;
  std::string admin_url;
};

/// What inspect() learnt about the database.
struct Inspection {
  SourceKind kind = SourceKind::Auto;  ///< Auto when neither schema was found
  bool schema_present = false;
  int schema_version = 0;             ///< ours; 0 when absent
  std::vector<std::string> missing;   ///< vendor tables/columns that a merge needs but lack
  std::vector<std::string> aliases;   ///< vendor: domains of the room JIDs (chat-node aliases)
  long long vendor_history_rows = 0;  ///< TC_MESSAGES rows (not imported; see docs)
  long long vendor_adhoc_rooms = 0;   ///< ad-hoc rooms (not imported)
  long long vendor_undated_rows = 0;  ///< archive rows whose SENT_DATE cannot be read
};

class Source {
 public:
  Source(char label, std::unique_ptr<Db> db, SourceKind kind, std::size_t page_rows = 5000);

  char label() const { return label_; }
  Db& db() { return *db_; }
  SourceKind kind() const { return kind_; }

  /// Finds the schema; resolves SourceKind::Auto. Throws DbError only when the database
  /// cannot be read at all.
  Inspection inspect();
  /// Vendor sources: the alias -> conference domain rewriting applied to every JID and stanza.
  void set_rewriter(JidRewriter rewriter) { rewriter_ = std::move(rewriter); }
  const JidRewriter& rewriter() const { return rewriter_; }
  /// How to open a second read-only connection to this source (large stanzas are read over
  /// it while the first streams; see scan_archive).
  void set_reconnect(Reconnect reconnect) { reconnect_ = std::move(reconnect); }

  /// tc_nodes rows; nullopt when the table does not exist.
  std::optional<std::vector<NodeState>> nodes();

  /// Accounts as the tc_accounts columns (storage::columns::kAccountColumns order). Vendor: none.
  void each_account(const std::function<void(Row&)>& fn);
  void each_room(const std::function<void(SourceRoom&)>& fn);
  /// Ordered by room; the vendor's duplicate rows for one user are reduced to the highest
  /// affiliation.
  void each_affiliation(const std::function<void(SourceAffiliation&)>& fn);
  /// Per source room: messages, bytes and the highest key.
  std::vector<ArchiveStats> archive_stats();
  /// The messages of one room with key > `after`, in order; `fn` returns false to stop. `fn`
  /// must not keep a stanza of kLargeValue bytes or more past its return (memory is bounded in
  /// bytes: see scan_archive).
  void each_message(const std::string& source_jid, long long after,
                    const std::function<bool(SourceMessage&)>& fn);

 private:
  void scan(const std::string& columns, const std::string& from, const std::string& where,
            const std::vector<Param>& where_params, const std::vector<ScanKey>& keys,
            const RowSink& sink);

  void vendor_message(const Row& row, const std::string& room_jid, SourceMessage& out);
  /// A DataError naming this source.
  DataError data_error(std::string table, std::string key, const std::string& why) const;

  char label_;
  std::unique_ptr<Db> db_;
  SourceKind kind_;
  std::size_t page_rows_;
  JidRewriter rewriter_;
  Reconnect reconnect_;
  std::unique_ptr<Db> side_;  ///< the second connection, once a large stanza needed it
};

}  // namespace tc::merge
