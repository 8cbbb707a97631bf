// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend on libpqxx 6.4. Every pqxx exception is caught in guarded() and converted to
// a storage::Errc; none leaves the backend. The class is defined by feature: the connection and
// the schema in pg_store.cpp, then pg_accounts.cpp, pg_rooms.cpp (rooms and affiliations),
// pg_archive.cpp and pg_ha.cpp (node registry, leases, settings, groups, room placement).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "storage/columns.h"
#include "storage/errc.h"
#include "storage/store.h"

#include "sql_text.h"

namespace tc::storage::pg {

constexpr sql::Placeholders kPlaceholders = sql::Placeholders::Numbered;

/// Every tc_archive column, for SELECT lists.
const std::string& archive_columns();

// Hot statement, prepared on every (re)connect.
constexpr const char* kAppendName = "tc_append";
/// INSERT INTO tc_archive ... RETURNING seq.
const std::string& append_sql();

/// A tc_archive row in columns::kArchiveColumns order.
ArchivedMessage read_message(const pqxx::row& row);

/// A text[] literal for `= ANY($1::text[])` and `unnest($1::text[])` (libpqxx 6 has no array
/// parameters).
std::string text_array(std::span<const std::string> items);

/// Whether the lease row still names `fence`'s holder at its epoch. FOR SHARE keeps the row
/// until the transaction ends, so a takeover (an UPDATE of the row) waits for this write to
/// commit, and a write that waited on a takeover sees the new epoch. Expiry is not checked:
/// only an epoch bump fences a writer.
bool holds_fence(pqxx::work& tx, const Fence& fence);

class PgStore final : public Store {
 public:
  explicit PgStore(std::string uri);

  std::string_view backend() const override { return "postgresql"; }

  /// Connects now, so open_store() reports an unreachable server.
  Result<void> connect() {
    return guarded("connect", [](pqxx::connection&) -> Result<void> { return {}; });
  }

  // Schema (pg_store.cpp).
  Result<int> schema_version() override;
  Result<void> migrate() override;
  Result<void> ping() override;

  // Accounts (pg_accounts.cpp).
  Result<void> create_account(const AccountRecord& a) override;
  Result<AccountRecord> load_account(std::string_view username) override;
  Result<void> update_account(const AccountRecord& a) override;
  Result<void> delete_account(std::string_view username) override;
  Result<std::vector<std::string>> list_accounts() override;

  // Rooms and affiliations (pg_rooms.cpp).
  Result<void> save_room(const RoomRecord& room) override;
  Result<RoomRecord> load_room(std::string_view room_jid) override;
  Result<std::vector<RoomBundle>> load_rooms(std::span<const std::string> room_jids,
                                             std::size_t max_history) override;
  Result<std::vector<RoomRecord>> list_rooms(std::string_view host_node) override;
  Result<void> delete_room(std::string_view room_jid, const Fence* fence) override;
  Result<void> set_affiliation(const AffiliationRecord& r) override;
  Result<std::vector<AffiliationRecord>> load_affiliations(std::string_view room_jid) override;

  // Archive (pg_archive.cpp).
  Result<std::vector<std::int64_t>> append_messages(std::span<const NewMessage> batch) override;
  Result<ArchivePage> query_archive(const ArchiveQuery& q) override;
  Result<std::vector<ArchivedMessage>> recent_messages(std::string_view room_jid,
                                                       std::size_t max) override;
  Result<std::uint64_t> purge_archive(std::string_view room_jid, UnixMillis before) override;
  Result<std::uint64_t> count_messages(std::string_view room_jid) override;
  Result<ArchivedMessage> archived_message(std::string_view room_jid,
                                           std::string_view stanza_id) override;
  Result<void> replace_archived_stanza(std::string_view room_jid, std::string_view stanza_id,
                                       std::string_view stanza_xml, const Fence* fence) override;

  // Node registry, database clock, leases, settings, groups (pg_ha.cpp).
  Result<void> upsert_node(const NodeRecord& n) override;
  Result<std::vector<NodeRecord>> list_nodes() override;
  Result<UnixMillis> db_now() override;
  Result<LeaseRecord> read_lease(std::string_view partition) override;
  Result<std::vector<LeaseRecord>> list_leases() override;
  Result<LeaseRecord> acquire_lease(std::string_view partition, std::string_view node,
                                    std::int64_t ttl_ms) override;
  Result<LeaseRecord> renew_lease(const Fence& fence, std::int64_t ttl_ms) override;
  Result<LeaseRecord> transfer_lease(const Fence& fence, std::string_view to,
                                     std::int64_t ttl_ms) override;
  Result<void> release_lease(const Fence& fence) override;
  Result<std::vector<std::pair<std::string, std::string>>> list_settings() override;
  Result<void> set_setting(std::string_view key, std::string_view value) override;
  Result<void> delete_setting(std::string_view key) override;
  Result<void> save_group(const GroupRecord& g) override;
  Result<std::vector<GroupRecord>> list_groups() override;
  Result<void> delete_group(std::string_view name) override;

  // Cluster: which group hosts each room (pg_ha.cpp).
  Result<std::string> claim_room_group(std::string_view room_jid, std::string_view group) override;
  Result<std::uint64_t> claim_room_groups(std::span<const std::string> room_jids,
                                          std::string_view group) override;
  Result<std::string> room_group(std::string_view room_jid) override;
  Result<std::vector<std::pair<std::string, std::string>>> list_room_groups() override;

  // Users' own data (pg_user_data.cpp).
  Result<void> apply_user_data(std::span<const UserDataChange> changes) override;
  Result<std::string> get_user_datum(std::string_view owner, std::string_view kind,
                                     std::string_view key) override;
  Result<std::vector<UserDatum>> list_user_data(std::string_view owner, std::string_view kind,
                                                std::string_view key_prefix,
                                                std::size_t limit) override;
  Result<std::uint64_t> count_user_data(std::string_view owner, std::string_view kind) override;
  Result<std::uint64_t> delete_user_data_of(std::string_view owner) override;

 private:
  /// Connection state that make a driver error mean "the database went away".
  static bool is_connection_state(const std::string& sqlstate) {
    return sqlstate.starts_with("08") || sqlstate.starts_with("57P");
  }

  /// The open connection, (re)connecting when there is none. Throws what pqxx throws.
  pqxx::connection& connection();

  void drop_connection(std::string_view op, const std::exception& e);

  /// Runs `body` on the connection and converts every exception. A connection that broke while
  /// idle (the server restarted since the last call) is replaced and the body retried once; that
  /// is safe because nothing was committed on it.
  template <class F>
  auto guarded(std::string_view op, F&& body) -> decltype(body(std::declval<pqxx::connection&>())) {
    using R = decltype(body(std::declval<pqxx::connection&>()));
    for (int attempt = 0;; ++attempt) {
      const bool reused = conn_ != nullptr;
      try {
        return body(connection());
      } catch (const pqxx::in_doubt_error& e) {
        // The commit may or may not have happened; never retried.
        drop_connection(op, e);
        return R(make_error_code(Errc::Unavailable));
      } catch (const pqxx::broken_connection& e) {
        drop_connection(op, e);
        if (reused && attempt == 0) {
          continue;
        }
        return R(make_error_code(Errc::Unavailable));
      } catch (const pqxx::unique_violation& e) {
        spdlog::debug("storage: {}: {}", op, e.what());
        return R(make_error_code(Errc::AlreadyExists));
      } catch (const pqxx::sql_error& e) {
        if (is_connection_state(e.sqlstate()) || (conn_ && !conn_->is_open())) {
          drop_connection(op, e);
          if (reused && attempt == 0) {
            continue;
          }
          return R(make_error_code(Errc::Unavailable));
        }
        spdlog::warn("storage: {} on {} failed (SQLSTATE {}): {}", op, redacted_, e.sqlstate(),
                     e.what());
        return R(make_error_code(Errc::QueryFailed));
      } catch (const std::exception& e) {
        if (conn_ && !conn_->is_open()) {
          drop_connection(op, e);
          return R(make_error_code(Errc::Unavailable));
        }
        spdlog::warn("storage: {} on {} failed: {}", op, redacted_, e.what());
        return R(make_error_code(Errc::QueryFailed));
      }
    }
  }

  std::string uri_;
  std::string redacted_;
  std::unique_ptr<pqxx::connection> conn_;
  bool reconnecting_ = false;  // a loss was logged; log the recovery once
};

}  // namespace tc::storage::pg
