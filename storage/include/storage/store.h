// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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
  /// Deletes the room, its affiliations and its archive. NotFound. Fenced when `fence` is set.
  virtual Result<void> delete_room(std::string_view room_jid, const Fence* fence = nullptr) = 0;

  /// Many rooms at once, each with its affiliations and its newest `max_history` messages
  /// (not joins/leaves), in the order of `room_jids`; rooms that do not exist are left out.
  /// A takeover loads the peer's rooms with it. The default calls load_room,
  /// load_affiliations and recent_messages per room; backends answer in a few set queries.
  virtual Result<std::vector<RoomBundle>> load_rooms(std::span<const std::string> room_jids,
                                                     std::size_t max_history);

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
  /// One archived message of a room by its stanza id (any kind). NotFound.
  virtual Result<ArchivedMessage> archived_message(std::string_view room_jid,
                                                   std::string_view stanza_id) = 0;
  /// Replaces the stored stanza of one archived message, keeping its seq, sender, kind and
  /// time: a retracted or moderated message becomes its tombstone (XEP-0424, XEP-0425).
  /// NotFound when the room has no message with that id. Fenced when `fence` is set
  /// (StaleEpoch, nothing written).
  virtual Result<void> replace_archived_stanza(std::string_view room_jid,
                                               std::string_view stanza_id,
                                               std::string_view stanza_xml,
                                               const Fence* fence = nullptr) = 0;

  // ---- node registry ----
  /// Inserts or replaces this node's row.
  virtual Result<void> upsert_node(const NodeRecord& node) = 0;
  /// Every row, sorted by node name.
  virtual Result<std::vector<NodeRecord>> list_nodes() = 0;

  // ---- HA: database clock, leases, cluster settings, redundancy groups (schema v3) ----
  // Default implementations return Errc::Unsupported so that a backend can be built before
  // it has them; the PostgreSQL and SOCI backends override every one.

  /// The database server's clock, in Unix milliseconds. Leases are timed on it only.
  virtual Result<UnixMillis> db_now() { return unsupported(); }

  /// The lease of `partition`. NotFound when no node ever held it.
  virtual Result<LeaseRecord> read_lease(std::string_view partition) {
    (void)partition;
    return unsupported();
  }
  /// Every lease row, sorted by partition.
  virtual Result<std::vector<LeaseRecord>> list_leases() { return unsupported(); }
  /// Takes `partition` for `node` for `ttl_ms` when nobody holds it (no row: epoch 1), when
  /// `node` already holds it (renewed; epoch unchanged), or when the holder's lease has
  /// lapsed on the database clock (holder changes, epoch + 1). Otherwise Errc::AlreadyExists
  /// (held by someone else and still valid). One atomic statement or transaction.
  virtual Result<LeaseRecord> acquire_lease(std::string_view partition, std::string_view node,
                                            std::int64_t ttl_ms) {
    (void)partition, (void)node, (void)ttl_ms;
    return unsupported();
  }
  /// Extends the lease to db_now + ttl_ms if `fence` still holds it; StaleEpoch otherwise.
  virtual Result<LeaseRecord> renew_lease(const Fence& fence, std::int64_t ttl_ms) {
    (void)fence, (void)ttl_ms;
    return unsupported();
  }
  /// Hands the lease from `fence.holder` to `to` (admin failover/fallback, clean shutdown):
  /// holder = to, epoch + 1, expires = db_now + ttl_ms. StaleEpoch unless `fence` holds it.
  virtual Result<LeaseRecord> transfer_lease(const Fence& fence, std::string_view to,
                                             std::int64_t ttl_ms) {
    (void)fence, (void)to, (void)ttl_ms;
    return unsupported();
  }
  /// Ends the lease now (expires_at = db_now) without changing holder or epoch, so that the
  /// peer may acquire it at once. StaleEpoch unless `fence` holds it.
  virtual Result<void> release_lease(const Fence& fence) {
    (void)fence;
    return unsupported();
  }

  /// Cluster-wide settings (HA switch, assignment mode, SRM parameters) as text.
  virtual Result<std::vector<std::pair<std::string, std::string>>> list_settings() {
    return unsupported();
  }
  virtual Result<void> set_setting(std::string_view key, std::string_view value) {
    (void)key, (void)value;
    return unsupported();
  }
  virtual Result<void> delete_setting(std::string_view key) {  ///< NotFound
    (void)key;
    return unsupported();
  }

  /// Redundancy groups. save_group inserts or replaces; AlreadyExists when one of its nodes
  /// already belongs to another group.
  virtual Result<void> save_group(const GroupRecord& group) {
    (void)group;
    return unsupported();
  }
  virtual Result<std::vector<GroupRecord>> list_groups() { return unsupported(); }  ///< by name
  virtual Result<void> delete_group(std::string_view name) {                        ///< NotFound
    (void)name;
    return unsupported();
  }

  // ---- cluster: which group hosts each room (schema version 4) ----
  // Up to three redundancy groups serve one domain; each room lives in exactly one group's
  // database, and the cluster database (a Store like any other) records which. Defaults return
  // Errc::Unsupported, as for the HA methods; the PostgreSQL and SOCI backends override them.

  /// Records that `room_jid` lives in `group` unless a group is already recorded for it, and
  /// returns the group it lives in (the recorded one, or `group`). Atomic: two nodes claiming
  /// the same new room for different groups get the same answer.
  virtual Result<std::string> claim_room_group(std::string_view room_jid, std::string_view group) {
    (void)room_jid, (void)group;
    return unsupported();
  }
  /// The same for many rooms at once (start-up backfill of a group's existing rooms); returns
  /// how many were newly recorded. One transaction.
  virtual Result<std::uint64_t> claim_room_groups(std::span<const std::string> room_jids,
                                                  std::string_view group) {
    (void)room_jids, (void)group;
    return unsupported();
  }
  /// The group recorded for a room; Errc::NotFound when none.
  virtual Result<std::string> room_group(std::string_view room_jid) {
    (void)room_jid;
    return unsupported();
  }
  /// Every (room_jid, group) pair, sorted by room_jid.
  virtual Result<std::vector<std::pair<std::string, std::string>>> list_room_groups() {
    return unsupported();
  }

  // ---- users' own data (schema version 5) ----
  // Rosters, offline messages, PEP nodes, private storage and vCards, as (owner, kind, key) ->
  // value rows of tc_user_data (records.h, UserDatum). They live in the cluster database, beside
  // the accounts, because a user may log in on any node. Defaults return Errc::Unsupported.

  /// Applies every change in one transaction, in order: all or nothing. Deleting a row that is
  /// not there is not an error.
  virtual Result<void> apply_user_data(std::span<const UserDataChange> changes) {
    (void)changes;
    return unsupported();
  }
  /// One datum's value; Errc::NotFound when none.
  virtual Result<std::string> get_user_datum(std::string_view owner, std::string_view kind,
                                             std::string_view key) {
    (void)owner, (void)kind, (void)key;
    return unsupported();
  }
  /// The data of one kind of one owner whose keys start with `key_prefix`, sorted by key (bytes);
  /// at most `limit` of them when `limit` is not 0.
  virtual Result<std::vector<UserDatum>> list_user_data(std::string_view owner,
                                                        std::string_view kind,
                                                        std::string_view key_prefix = {},
                                                        std::size_t limit = 0) {
    (void)owner, (void)kind, (void)key_prefix, (void)limit;
    return unsupported();
  }
  /// Removes everything `owner` (a user's bare JID) keeps: its tc_user_data rows and its
  /// message archive (tc_archive rows of kind 'chat' under its JID). One transaction; returns
  /// how many rows went. For an account's deletion.
  virtual Result<std::uint64_t> delete_user_data_of(std::string_view owner) {
    (void)owner;
    return unsupported();
  }
  /// How many data of one kind an owner has.
  virtual Result<std::uint64_t> count_user_data(std::string_view owner, std::string_view kind) {
    (void)owner, (void)kind;
    return unsupported();
  }

 protected:
  static boost::system::error_code unsupported();
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
