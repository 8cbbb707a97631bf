// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "storage/records.h"

namespace tc::storage {

/// Everything the broker persists. Every method is blocking and may be slow: call only from
/// a store worker thread, never from an I/O thread. One Store is used by one thread at a time
/// (open one per worker). Each method returns an storage::Errc on failure; none throws.
class Store {
 public:
  virtual ~Store() = default;

  /// "postgresql" or "sqlite" (and so on); for messages and metrics.
  virtual std::string_view backend() const = 0;

  // ---- schema ----
  /// The newest schema version this build knows.
  static int latest_schema_version();
  /// Version recorded in the database, 0 when it holds no schema yet.
  virtual Result<int> schema_version() = 0;
  /// Applies every pending migration in order, each in its own transaction.
  /// Errc::SchemaTooNew when the database is newer than this build.
  virtual Result<void> migrate() = 0;
  /// Cheap round trip for health checks.
  virtual Result<void> ping() = 0;

  // ---- accounts ----
  virtual Result<void> create_account(const AccountRecord& account) = 0;      ///< AlreadyExists
  virtual Result<AccountRecord> load_account(std::string_view username) = 0;  ///< NotFound
  virtual Result<void> update_account(const AccountRecord& account) = 0;      ///< NotFound
  virtual Result<void> delete_account(std::string_view username) = 0;         ///< NotFound
  virtual Result<std::vector<std::string>> list_accounts() = 0;               ///< sorted

  // ---- rooms ----
  /// Inserts or replaces the room row (config, subject, host). Affiliations are separate.
  virtual Result<void> save_room(const RoomRecord& room) = 0;
  virtual Result<RoomRecord> load_room(std::string_view room_jid) = 0;  ///< NotFound
  /// Rooms hosted by `host_node`, or every room when it is empty.
  virtual Result<std::vector<RoomRecord>> list_rooms(std::string_view host_node = {}) = 0;
  /// Deletes the room, its affiliations and its archive. NotFound.
  virtual Result<void> delete_room(std::string_view room_jid) = 0;

  /// Sets one affiliation; Affiliation::None removes the row.
  virtual Result<void> set_affiliation(const AffiliationRecord& record) = 0;
  virtual Result<std::vector<AffiliationRecord>> load_affiliations(std::string_view room_jid) = 0;

  // ---- archive ----
  /// Appends a batch in one transaction (group commit); all or nothing. Returns the assigned
  /// seqs in input order. AlreadyExists if a stanza id is already in its room.
  virtual Result<std::vector<std::int64_t>> append_messages(std::span<const NewMessage> batch) = 0;
  virtual Result<ArchivePage> query_archive(const ArchiveQuery& query) = 0;
  /// The newest `max` messages of a room (oldest first), for discussion history on join.
  virtual Result<std::vector<ArchivedMessage>> recent_messages(std::string_view room_jid,
                                                               std::size_t max) = 0;
  /// Deletes messages older than `before` in `room_jid` (every room when empty).
  /// Returns how many were removed.
  virtual Result<std::uint64_t> purge_archive(std::string_view room_jid, UnixMillis before) = 0;
  virtual Result<std::uint64_t> count_messages(std::string_view room_jid) = 0;

  // ---- node registry ----
  /// Inserts or replaces this node's row.
  virtual Result<void> upsert_node(const NodeRecord& node) = 0;
  /// Every row, sorted by node name.
  virtual Result<std::vector<NodeRecord>> list_nodes() = 0;
};

/// Opens a store from a URL:
///   sqlite:///abs/path.db  sqlite://relative/path.db  sqlite::memory:
///   postgresql://user:pass@host:port/db?host=/socket/dir   ("postgres://" too)
///   odbc://<ODBC connection string>  (when built with ODBC)
/// Errc::BadUrl, Errc::Unsupported, Errc::Unavailable. Does not migrate.
Result<std::unique_ptr<Store>> open_store(std::string_view url);

/// A PostgreSQL URI with connect_timeout=10 and application_name=`application` added unless
/// already set: libpq otherwise waits forever on a black-holed host.
std::string postgres_uri_with_defaults(std::string uri, std::string_view application);

/// The URL with any password replaced by "***", for logs and job records.
std::string redact_url(std::string_view url);

}  // namespace tc::storage
