// SPDX-License-Identifier: Apache-2.0
// Schema text for SQLite (SOCI sqlite3, and ODBC with the SQLite3 driver). Included once, by
// migrations.cpp. A released migration is never edited: add a new kV<n> array instead.
#pragma once

#include <array>
#include <string_view>

namespace tc::storage::schema::sqlite {

inline constexpr std::string_view kBootstrap = R"sql(
CREATE TABLE IF NOT EXISTS tc_schema_version (
  version    INTEGER PRIMARY KEY,
  applied_at INTEGER NOT NULL
))sql";

// Same tables and columns as the PostgreSQL dialect; see postgresql_sql.h for the reasons.
inline constexpr std::array<std::string_view, 8> kV1 = {
    R"sql(
CREATE TABLE tc_accounts (
  username                TEXT    PRIMARY KEY NOT NULL,
  scram_sha1_salt         TEXT    NOT NULL,
  scram_sha1_iterations   INTEGER NOT NULL,
  scram_sha1_stored_key   TEXT    NOT NULL,
  scram_sha1_server_key   TEXT    NOT NULL,
  scram_sha256_salt       TEXT    NOT NULL,
  scram_sha256_iterations INTEGER NOT NULL,
  scram_sha256_stored_key TEXT    NOT NULL,
  scram_sha256_server_key TEXT    NOT NULL,
  created_at              INTEGER NOT NULL
))sql",
    R"sql(
CREATE TABLE tc_rooms (
  jid          TEXT    PRIMARY KEY NOT NULL,
  config_json  TEXT    NOT NULL DEFAULT '{}',
  persistent   INTEGER NOT NULL DEFAULT 1 CHECK (persistent IN (0, 1)),
  subject      TEXT    NOT NULL DEFAULT '',
  subject_nick TEXT    NOT NULL DEFAULT '',
  subject_at   INTEGER NOT NULL DEFAULT 0,
  host_node    TEXT    NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL
))sql",
    R"sql(CREATE INDEX tc_rooms_host_node ON tc_rooms (host_node))sql",
    R"sql(
CREATE TABLE tc_room_affiliations (
  room_jid    TEXT NOT NULL,
  user_jid    TEXT NOT NULL,
  affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
  reason      TEXT NOT NULL DEFAULT '',
  nick        TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (room_jid, user_jid)
))sql",
    // INTEGER PRIMARY KEY is the rowid; AUTOINCREMENT keeps seqs from being reused after a purge
    // of the newest rows, so a seq never names two different messages.
    R"sql(
CREATE TABLE tc_archive (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  room_jid    TEXT    NOT NULL,
  stanza_id   TEXT    NOT NULL,
  sender_nick TEXT    NOT NULL DEFAULT '',
  sender_jid  TEXT    NOT NULL DEFAULT '',
  kind        TEXT    NOT NULL DEFAULT 'groupchat',
  stanza_xml  TEXT    NOT NULL,
  created_at  INTEGER NOT NULL
))sql",
    R"sql(CREATE UNIQUE INDEX tc_archive_room_stanza ON tc_archive (room_jid, stanza_id))sql",
    R"sql(CREATE INDEX tc_archive_room_seq ON tc_archive (room_jid, seq))sql",
    // Every SQLite index ends with the rowid (seq), so this orders ties by seq as well.
    R"sql(CREATE INDEX tc_archive_room_created ON tc_archive (room_jid, created_at))sql",
};

/// Version 2: the node registry (which node runs which critical service).
inline constexpr std::string_view kV2[] = {
    R"sql(
CREATE TABLE tc_nodes (
  node                    TEXT    NOT NULL PRIMARY KEY,
  text_conference_running INTEGER NOT NULL DEFAULT 0,
  heartbeat_at            INTEGER NOT NULL DEFAULT 0,
  admin_url               TEXT    NOT NULL DEFAULT ''
))sql",
};

/// Version 3 (HA): see postgresql_sql.h.
inline constexpr std::string_view kV3[] = {
    R"sql(ALTER TABLE tc_nodes ADD COLUMN client_endpoint TEXT NOT NULL DEFAULT '')sql",
    R"sql(ALTER TABLE tc_nodes ADD COLUMN srm_endpoint TEXT NOT NULL DEFAULT '')sql",
    R"sql(ALTER TABLE tc_nodes ADD COLUMN state TEXT NOT NULL DEFAULT '')sql",
    R"sql(ALTER TABLE tc_nodes ADD COLUMN reason TEXT NOT NULL DEFAULT '')sql",
    R"sql(ALTER TABLE tc_nodes ADD COLUMN version TEXT NOT NULL DEFAULT '')sql",
    R"sql(
CREATE TABLE tc_leases (
  partition  TEXT    PRIMARY KEY NOT NULL,
  holder     TEXT    NOT NULL,
  epoch      INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
))sql",
    R"sql(
CREATE TABLE tc_settings (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
))sql",
    R"sql(
CREATE TABLE tc_groups (
  name        TEXT    PRIMARY KEY NOT NULL,
  description TEXT    NOT NULL DEFAULT '',
  ha_enabled  INTEGER NOT NULL DEFAULT 0 CHECK (ha_enabled IN (0, 1))
))sql",
    R"sql(
CREATE TABLE tc_group_nodes (
  node       TEXT    PRIMARY KEY NOT NULL,
  group_name TEXT    NOT NULL,
  position   INTEGER NOT NULL,
  UNIQUE (group_name, position)
))sql",
};

/// Version 4 (cluster): see postgresql_sql.h.
inline constexpr std::string_view kV4[] = {
    R"sql(
CREATE TABLE tc_room_groups (
  room_jid   TEXT PRIMARY KEY NOT NULL,
  group_name TEXT NOT NULL
))sql",
};

/// Version 5: users' own data; see postgresql_sql.h.
inline constexpr std::string_view kV5[] = {
    R"sql(
CREATE TABLE tc_user_data (
  owner      TEXT   NOT NULL,
  kind       TEXT   NOT NULL,
  item_key   TEXT   NOT NULL,
  value      TEXT   NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (owner, kind, item_key)
))sql",
};

/// The database clock in Unix milliseconds (Store::db_now); 'now' is fixed within a statement.
inline constexpr std::string_view kNowMillis =
    "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

// sqlite_sequence is SQLite's own (created by AUTOINCREMENT) and does not match.
inline constexpr std::string_view kListTcTables = R"sql(
SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tc\_%' ESCAPE '\')sql";

}  // namespace tc::storage::schema::sqlite
