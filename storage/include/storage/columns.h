// SPDX-License-Identifier: Apache-2.0
// The column lists of the tc_ tables, in one place for the PostgreSQL and SOCI backends and for
// tc-merge. The order is the one rows are read and written in: a backend's row reader and
// tc-merge's row builders follow it. The tables themselves are created by the migrations
// (storage/src/schema/), which never change once released; a new column goes into a migration
// and here.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace tc::storage::columns {

/// One column: its name, and whether it holds an integer (BIGINT/INTEGER) rather than TEXT.
struct Column {
  std::string_view name;
  bool integer = false;
};

/// A table: its name, every column in order, and the key that identifies a row across
/// databases (the ON CONFLICT target). For tc_archive that is (room_jid, stanza_id): seq is local.
struct Table {
  std::string_view name;
  std::span<const Column> columns;
  std::string_view key;
};

inline constexpr Column kAccountColumns[] = {
    {"username"},
    {"scram_sha1_salt"},
    {"scram_sha1_iterations", true},
    {"scram_sha1_stored_key"},
    {"scram_sha1_server_key"},
    {"scram_sha256_salt"},
    {"scram_sha256_iterations", true},
    {"scram_sha256_stored_key"},
    {"scram_sha256_server_key"},
    {"created_at", true},
};
inline constexpr Table kAccounts{"tc_accounts", kAccountColumns, "username"};

inline constexpr Column kRoomColumns[] = {
    {"jid"},          {"config_json"},      {"persistent", true}, {"subject"},
    {"subject_nick"}, {"subject_at", true}, {"host_node"},        {"created_at", true},
};
inline constexpr Table kRooms{"tc_rooms", kRoomColumns, "jid"};

inline constexpr Column kAffiliationColumns[] = {
    {"room_jid"}, {"user_jid"}, {"affiliation"}, {"reason"}, {"nick"},
};
inline constexpr Table kAffiliations{"tc_room_affiliations", kAffiliationColumns,
                                     "room_jid, user_jid"};

/// seq first: the database assigns it, so an insert names the others (kArchiveInsertColumns).
inline constexpr Column kArchiveColumns[] = {
    {"seq", true},  {"room_jid"}, {"stanza_id"},  {"sender_nick"},
    {"sender_jid"}, {"kind"},     {"stanza_xml"}, {"created_at", true},
};
inline constexpr Table kArchive{"tc_archive", kArchiveColumns, "room_jid, stanza_id"};
inline constexpr std::span<const Column> kArchiveInsertColumns =
    std::span<const Column>(kArchiveColumns).subspan(1);

inline constexpr Column kNodeColumns[] = {
    {"node"},
    {"text_conference_running", true},
    {"heartbeat_at", true},
    {"admin_url"},
    // Schema version 3 (HA).
    {"client_endpoint"},
    {"srm_endpoint"},
    {"state"},
    {"reason"},
    {"version"},
};
inline constexpr Table kNodes{"tc_nodes", kNodeColumns, "node"};
/// The columns tc_nodes had in schema version 2; tc-merge reads databases that old.
inline constexpr std::span<const Column> kNodeColumnsV2 =
    std::span<const Column>(kNodeColumns).first(4);

inline constexpr Column kLeaseColumns[] = {
    {"partition"},
    {"holder"},
    {"epoch", true},
    {"expires_at", true},
};
inline constexpr Table kLeases{"tc_leases", kLeaseColumns, "partition"};

inline constexpr Column kSettingColumns[] = {{"key"}, {"value"}};
inline constexpr Table kSettings{"tc_settings", kSettingColumns, "key"};

inline constexpr Column kGroupColumns[] = {{"name"}, {"description"}, {"ha_enabled", true}};
inline constexpr Table kGroups{"tc_groups", kGroupColumns, "name"};

inline constexpr Column kGroupNodeColumns[] = {{"node"}, {"group_name"}, {"position", true}};
inline constexpr Table kGroupNodes{"tc_group_nodes", kGroupNodeColumns, "node"};

/// Schema version 4: which redundancy group hosts each room (the cluster database's table).
inline constexpr Column kRoomGroupColumns[] = {{"room_jid"}, {"group_name"}};
inline constexpr Table kRoomGroups{"tc_room_groups", kRoomGroupColumns, "room_jid"};

/// Schema version 5: users' own data (rosters, offline messages, PEP, private storage, vCards).
inline constexpr Column kUserDataColumns[] = {
    {"owner"}, {"kind"}, {"item_key"}, {"value"}, {"updated_at", true},
};
inline constexpr Table kUserData{"tc_user_data", kUserDataColumns, "owner, kind, item_key"};

/// "a, b, c": the names for a SELECT or INSERT list.
std::string list(std::span<const Column> columns);

}  // namespace tc::storage::columns
