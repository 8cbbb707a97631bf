// SPDX-License-Identifier: Apache-2.0
// SQLite (SOCI sqlite3 backend) and ODBC (SOCI odbc backend) in one class with a dialect switch.
// Every SOCI exception is caught in guarded() and converted to a storage::Errc. The class is
// defined by feature: the session, the schema and error handling in soci_store.cpp (which also
// describes the ODBC connection string), then soci_accounts.cpp, soci_rooms.cpp (rooms and
// affiliations), soci_archive.cpp and soci_ha.cpp (node registry, leases, settings, groups, room
// placement).
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include "storage/columns.h"
#include "storage/errc.h"
#include "storage/store.h"

#include "backends.h"
#include "codec.h"
#include "schema/migrations.h"
#include "soci/soci_query.h"
#include "sql_text.h"

namespace tc::storage::soci_backend {

using schema::Dialect;

constexpr sql::Placeholders kPlaceholders = sql::Placeholders::Named;

/// The driver error's own message, without the statement and values SOCI appends; at most 300
/// characters.
std::string short_message(const std::exception& e);

enum class Flavor { Sqlite, Odbc };

/// The ODBC data source is a DBMS whose SQL we do not speak.
class UnsupportedDatabase : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SociStore final : public Store {
 public:
  SociStore(Flavor flavor, std::string connect_string, std::string redacted, SqliteOptions options)
      : flavor_(flavor),
        connect_string_(std::move(connect_string)),
        redacted_(std::move(redacted)),
        sqlite_(std::move(options)) {}

  /// Opens the session now and, for ODBC without TcDialect, learns the dialect.
  Result<void> open(std::optional<Dialect> dialect);

  std::string_view backend() const override;

  // Schema (soci_store.cpp).
  Result<int> schema_version() override;
  Result<void> migrate() override;
  Result<void> ping() override;

  // Accounts (soci_accounts.cpp).
  Result<void> create_account(const AccountRecord& a) override;
  Result<AccountRecord> load_account(std::string_view username) override;
  Result<void> update_account(const AccountRecord& a) override;
  Result<void> delete_account(std::string_view username) override;
  Result<std::vector<std::string>> list_accounts() override;

  // Rooms and affiliations (soci_rooms.cpp).
  Result<void> save_room(const RoomRecord& room) override;
  Result<RoomRecord> load_room(std::string_view room_jid) override;
  Result<std::vector<RoomRecord>> list_rooms(std::string_view host_node) override;
  Result<void> delete_room(std::string_view room_jid, const Fence* fence) override;
  Result<void> set_affiliation(const AffiliationRecord& r) override;
  Result<std::vector<AffiliationRecord>> load_affiliations(std::string_view room_jid) override;

  // Archive (soci_archive.cpp).
  Result<std::vector<std::int64_t>> append_messages(std::span<const NewMessage> batch) override;
  Result<ArchivePage> query_archive(const ArchiveQuery& query) override;
  Result<std::vector<ArchivedMessage>> recent_messages(std::string_view room_jid,
                                                       std::size_t max) override;
  Result<std::uint64_t> purge_archive(std::string_view room_jid, UnixMillis before) override;
  Result<std::uint64_t> count_messages(std::string_view room_jid) override;
  Result<ArchivedMessage> archived_message(std::string_view room_jid,
                                           std::string_view stanza_id) override;
  Result<void> replace_archived_stanza(std::string_view room_jid, std::string_view stanza_id,
                                       std::string_view stanza_xml, const Fence* fence) override;

  // Node registry, database clock, leases, settings, groups (soci_ha.cpp).
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

  // Cluster: which group hosts each room (soci_ha.cpp).
  Result<std::string> claim_room_group(std::string_view room_jid, std::string_view group) override;
  Result<std::uint64_t> claim_room_groups(std::span<const std::string> room_jids,
                                          std::string_view group) override;
  Result<std::string> room_group(std::string_view room_jid) override;
  Result<std::vector<std::pair<std::string, std::string>>> list_room_groups() override;

  // Users' own data (soci_user_data.cpp).
  Result<void> apply_user_data(std::span<const UserDataChange> changes) override;
  Result<std::string> get_user_datum(std::string_view owner, std::string_view kind,
                                     std::string_view key) override;
  Result<std::vector<UserDatum>> list_user_data(std::string_view owner, std::string_view kind,
                                                std::string_view key_prefix,
                                                std::size_t limit) override;
  Result<std::uint64_t> count_user_data(std::string_view owner, std::string_view kind) override;
  Result<std::uint64_t> delete_user_data_of(std::string_view owner) override;

 private:
  // soci_ha.cpp
  std::string now_sql() const;
  long long read_now(soci::session& sql) const;
  bool lock_lease(soci::session& sql, const std::string& partition, LeaseRecord& lease) const;

  // soci_store.cpp
  bool holds_fence(soci::session& sql, const Fence& fence) const;

  // soci_archive.cpp
  bool holds_fences(soci::session& sql, std::span<const NewMessage> batch) const;

  // soci_store.cpp
  int read_version(soci::session& sql) const;
  Result<void> migrate_once();
  /// Opens the session if there is none (first use, or after a lost ODBC connection).
  soci::session& session();
#if defined(TC_WITH_ODBC)
  Dialect detect_dialect(soci::session& sql) const;
#endif
  void configure_sqlite(soci::session& sql);

  /// Runs `body` on the session and converts every exception. A lost ODBC connection is
  /// replaced; a connection that broke while idle is retried once (nothing was committed on it).
  template <class F>
  auto guarded(std::string_view op, F&& body) -> decltype(body(std::declval<soci::session&>())) {
    using R = decltype(body(std::declval<soci::session&>()));
    for (int attempt = 0;; ++attempt) {
      const bool reused = sql_ != nullptr;
      try {
        return body(session());
      } catch (const UnsupportedDatabase& e) {
        spdlog::error("storage: {}: {}", redacted_, e.what());
        return R(make_error_code(Errc::Unsupported));
      } catch (const std::exception& e) {
        const std::string message = short_message(e);
        const Errc errc = classify(e, message);
        if (errc == Errc::Unavailable && flavor_ == Flavor::Odbc && is_connection_error(e)) {
          if (!reconnecting_) {
            spdlog::warn("storage: {} on {}: connection lost: {}", op, redacted_, message);
          }
          reconnecting_ = true;
          sql_.reset();
          if (reused && attempt == 0) {
            continue;
          }
        } else if (errc == Errc::AlreadyExists) {
          spdlog::debug("storage: {}: {}", op, message);
        } else {
          spdlog::warn("storage: {} on {} failed: {}", op, redacted_, message);
        }
        if (!sql_ && errc != Errc::Unavailable) {
          return R(make_error_code(Errc::Unavailable));  // could not even open
        }
        return R(make_error_code(errc));
      }
    }
  }

  static bool is_connection_error(const std::exception& e);
  static Errc classify(const std::exception& e, std::string_view message);

  struct BusyWait {
    std::chrono::milliseconds timeout{0};
    std::chrono::steady_clock::time_point since{};
  };
  static int on_busy(void* arg, int count);

  Flavor flavor_;
  std::string connect_string_;  // ODBC only
  std::string redacted_;
  SqliteOptions sqlite_;
  BusyWait busy_;
  Dialect dialect_ = Dialect::Sqlite;
  bool dialect_known_ = true;
  std::unique_ptr<soci::session> sql_;
  bool reconnecting_ = false;
};

}  // namespace tc::storage::soci_backend
