// SPDX-License-Identifier: Apache-2.0
// SOCI backend (see soci_store.h): the session, the schema, error handling and the factories.
//
// ODBC: open_store("odbc://<connection string>") passes the connection string to the driver
// manager unchanged except for one key of ours, TcDialect=postgresql|sqlite, which is removed
// first. Without it the dialect comes from the driver's SQL_DBMS_NAME (SOCI's
// get_database_product()); only PostgreSQL and SQLite databases are supported. Examples:
//   odbc://DRIVER=SQLite3;Database=/var/lib/tcbroker/tc.db
//   odbc://DRIVER={PostgreSQL Unicode};Server=db;Port=5432;Database=tc;Uid=tc;Pwd=secret
//   odbc://DSN=tcbroker;TcDialect=postgresql
#include "soci/soci_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <soci/sqlite3/soci-sqlite3.h>
#if defined(TC_WITH_ODBC)
#include <soci/odbc/soci-odbc.h>
#endif

#include "schema/postgresql_sql.h"

namespace tc::storage::soci_backend {
namespace {

constexpr int kSqliteBusy = 5;
constexpr int kSqliteLocked = 6;
constexpr int kSqliteIoErr = 10;
constexpr int kSqliteCantOpen = 14;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// Removes "TcDialect=..." from an ODBC connection string; returns the dialect it named.
Result<std::optional<Dialect>> take_dialect(std::string& connection_string) {
  std::optional<Dialect> dialect;
  std::string out;
  std::string_view rest = connection_string;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    const std::string_view part = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    std::string lower(part);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.starts_with("tcdialect=")) {
      const std::string value = lower.substr(10);
      if (value == "postgresql" || value == "postgres") {
        dialect = Dialect::Postgresql;
      } else if (value == "sqlite" || value == "sqlite3") {
        dialect = Dialect::Sqlite;
      } else {
        return make_error_code(Errc::BadUrl);
      }
      continue;
    }
    if (!part.empty()) {
      out.append(part).append(";");
    }
  }
  connection_string = std::move(out);
  return dialect;
}

}  // namespace

std::string short_message(const std::exception& e) {
  // SOCI appends the statement and its bound values; keep logs small and free of stanza bodies.
  std::string text = e.what();
  if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e)) {
    text = soci_error->get_error_message();
  }
  if (text.size() > 300) {
    text.resize(300);
    text += "...";
  }
  return text;
}

/// Opens the session now and, for ODBC without TcDialect, learns the dialect.
Result<void> SociStore::open(std::optional<Dialect> dialect) {
  dialect_ = dialect.value_or(Dialect::Sqlite);
  dialect_known_ = dialect.has_value();
  return guarded("open", [](soci::session&) -> Result<void> { return {}; });
}

std::string_view SociStore::backend() const {
  if (flavor_ == Flavor::Sqlite) {
    return "sqlite";
  }
  return dialect_ == Dialect::Sqlite ? "odbc-sqlite" : "odbc-postgresql";
}

Result<int> SociStore::schema_version() {
  return guarded("schema_version", [this](soci::session& sql) -> Result<int> {
    Transaction tx(sql, dialect_, Transaction::Mode::Read);
    return read_version(sql);
  });
}

Result<void> SociStore::ping() {
  return guarded("ping", [](soci::session& sql) -> Result<void> {
    int one = 0;
    sql << "SELECT 1", soci::into(one);
    return {};
  });
}

/// Whether the lease row still names `fence`'s holder at its epoch; run inside the write's
/// own transaction. PostgreSQL: FOR SHARE keeps the row until the write commits, so a
/// takeover (an UPDATE of the row) serialises after it. SQLite: the write transaction
/// (BEGIN IMMEDIATE) already excludes every other writer. Expiry is not checked: only an
/// epoch bump fences a writer.
bool SociStore::holds_fence(soci::session& sql, const Fence& fence) const {
  const long long epoch = fence.epoch;
  int one = 0;
  Query q(sql);
  q.into(one)
      .use(fence.partition)
      .use(fence.holder)
      .use(epoch)
      .start(std::string("SELECT 1 FROM tc_leases WHERE partition = :p AND holder = :h AND "
                         "epoch = :e") +
             (dialect_ == Dialect::Postgresql ? " FOR SHARE" : ""));
  return q.fetch();
}

int SociStore::read_version(soci::session& sql) const {
  long long tables = 0;
  if (dialect_ == Dialect::Sqlite) {
    sql << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
           "name = 'tc_schema_version'",
        soci::into(tables);
  } else {
    sql << "SELECT COUNT(*) FROM information_schema.tables WHERE "
           "table_schema = current_schema() AND table_name = 'tc_schema_version'",
        soci::into(tables);
  }
  if (tables == 0) {
    return 0;
  }
  int version = 0;
  sql << "SELECT COALESCE(MAX(version), 0) FROM tc_schema_version", soci::into(version);
  return version;
}

/// Opens the session if there is none (first use, or after a lost ODBC connection).
soci::session& SociStore::session() {
  if (!sql_) {
    auto sql = std::make_unique<soci::session>();
    if (flavor_ == Flavor::Sqlite) {
      // SOCI's sqlite3 backend reads "key=value" pairs; quotes allow spaces in the path.
      sql->open(soci::sqlite3, "db=\"" + sqlite_.path + "\"");
    } else {
#if defined(TC_WITH_ODBC)
      sql->open(soci::odbc, connect_string_);
      if (!dialect_known_) {
        dialect_ = detect_dialect(*sql);
        dialect_known_ = true;
      }
#else
      throw std::logic_error("ODBC backend not built in");
#endif
    }
    if (dialect_ == Dialect::Sqlite) {
      configure_sqlite(*sql);
    }
    sql_ = std::move(sql);
    if (reconnecting_) {
      spdlog::info("storage: reconnected to {}", redacted_);
      reconnecting_ = false;
    }
  }
  return *sql_;
}

#if defined(TC_WITH_ODBC)
Dialect SociStore::detect_dialect(soci::session& sql) const {
  // The session was opened with soci::odbc, so this is its backend. (static_cast: SOCI does
  // not export the class's typeinfo, so dynamic_cast would not link.)
  const auto product =
      static_cast<soci::odbc_session_backend*>(sql.get_backend())->get_database_product();
  if (product == soci::odbc_session_backend::prod_postgresql) {
    return Dialect::Postgresql;
  }
  if (product == soci::odbc_session_backend::prod_sqlite) {
    return Dialect::Sqlite;
  }
  throw UnsupportedDatabase(
      "the ODBC data source is neither PostgreSQL nor SQLite; add TcDialect=postgresql or "
      "TcDialect=sqlite if it speaks one of those");
}
#endif

/// Two broker processes share one SQLite file: WAL lets readers run beside the single writer,
/// busy_timeout makes a writer wait for the other process instead of failing at once.
void SociStore::configure_sqlite(soci::session& sql) {
  if (flavor_ == Flavor::Sqlite) {
    // SQLite's own busy handler backs off to 100 ms sleeps, and a waiter that sleeps loses
    // the lock to whoever asks meanwhile: under a write burst of the other node (or of this
    // node's room store) a short transaction such as an SRM lease renewal could wait for
    // seconds. Polling every 0.5 ms keeps the wait close to the lock's real holding
    // time. Same limit as busy_timeout.
    auto* backend = static_cast<soci::sqlite3_session_backend*>(sql.get_backend());
    busy_.timeout = std::chrono::milliseconds(sqlite_.busy_timeout_ms);
    sqlite3_busy_handler(backend->conn_, &SociStore::on_busy, &busy_);
  } else {
    sql << "PRAGMA busy_timeout = " + std::to_string(sqlite_.busy_timeout_ms);
  }
  std::string mode;
  Query wal(sql);
  wal.into(mode).start("PRAGMA journal_mode = WAL");
  wal.fetch();
  std::transform(mode.begin(), mode.end(), mode.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (mode != "wal" && mode != "memory") {
    spdlog::warn(
        "storage: {} stays in journal_mode={}, not WAL; the two nodes will block each "
        "other",
        redacted_, mode);
  }
  // See SqliteOptions::synchronous_full for the durability trade-off.
  sql << (sqlite_.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  sql << "PRAGMA foreign_keys = ON";
}

/// The connection is gone (not just this statement failed). SOCI classifies SQLSTATE 08xxx;
/// psqlODBC reports the first failure on a dead socket as HY000 with libpq's message.
bool SociStore::is_connection_error(const std::exception& e) {
  const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e);
  if (soci_error == nullptr) {
    return false;
  }
  if (soci_error->get_error_category() == soci::soci_error::connection_error) {
    return true;
  }
  const std::string message = soci_error->get_error_message();
  for (const std::string_view phrase :
       {"server closed the connection", "connection lost", "no connection to the server",
        "terminating connection", "could not connect", "Connection refused", "could not send data",
        "could not receive data", "(SQL state 08", "(SQL state 57P0"}) {
    if (contains(message, phrase)) {
      return true;
    }
  }
  return false;
}

Errc SociStore::classify(const std::exception& e, std::string_view message) {
  if (contains(message, "UNIQUE constraint failed") || contains(message, "duplicate key") ||
      contains(message, "23505")) {
    return Errc::AlreadyExists;
  }
  if (const auto* lite = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
    switch (lite->result() & 0xff) {
      case kSqliteBusy:
      case kSqliteLocked:
      case kSqliteIoErr:
      case kSqliteCantOpen:
        return Errc::Unavailable;
      default:
        return Errc::QueryFailed;
    }
  }
  if (is_connection_error(e) || contains(message, "database is locked") ||
      contains(message, "Cannot establish connection")) {
    return Errc::Unavailable;
  }
  return Errc::QueryFailed;
}

/// sqlite3_busy_handler callback: `count` is 0 on the first retry of one lock wait.
int SociStore::on_busy(void* arg, int count) {
  auto* wait = static_cast<BusyWait*>(arg);
  const auto now = std::chrono::steady_clock::now();
  if (count == 0) {
    wait->since = now;
  } else if (now - wait->since >= wait->timeout) {
    return 0;  // SQLITE_BUSY to the caller: "database is locked"
  }
  std::this_thread::sleep_for(std::chrono::microseconds(500));
  return 1;
}

Result<void> SociStore::migrate() {
  // SQLite's BEGIN IMMEDIATE serialises migrators; with ODBC the driver may start the
  // transaction lazily, so a loser can still fail on the write lock. It then retries and finds
  // the work done (the version is re-read inside each transaction).
  Result<void> result;
  for (int attempt = 0; attempt < 5; ++attempt) {
    result = migrate_once();
    if (result || (result.error() != Errc::QueryFailed && result.error() != Errc::Unavailable)) {
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
  }
  return result;
}

Result<void> SociStore::migrate_once() {
  return guarded("migrate", [this](soci::session& sql) -> Result<void> {
    for (;;) {
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (dialect_ == Dialect::Postgresql) {
        sql << std::string(schema::postgresql::kMigrationLock);
      }
      schema::DbState state;
      state.version = read_version(sql);
      {
        std::string name;
        Query q(sql);
        q.into(name).start(std::string(schema::list_tables_query(dialect_)));
        while (q.fetch()) {
          state.tc_tables.push_back(name);
        }
      }
      if (auto ok = schema::check_state(state, redacted_); !ok) {
        return ok;
      }
      if (state.version >= schema::latest_version()) {
        tx.commit();
        return {};
      }
      const schema::Migration& m = schema::migrations(dialect_)[state.version];
      sql << std::string(schema::bootstrap_statement(dialect_));
      for (const std::string_view statement : m.statements) {
        sql << std::string(statement);
      }
      const int version = m.version;
      const long long applied_at = schema::now_millis();
      Query(sql)
          .use(version)
          .use(applied_at)
          .run("INSERT INTO tc_schema_version (version, applied_at) VALUES (:v, :t)");
      tx.commit();
      spdlog::info("storage: {} migrated to schema version {} ({})", redacted_, m.version,
                   m.summary);
    }
  });
}

}  // namespace tc::storage::soci_backend

namespace tc::storage {

using soci_backend::Dialect;
using soci_backend::Flavor;
using soci_backend::SociStore;
using soci_backend::take_dialect;

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options) {
  auto store =
      std::make_unique<SociStore>(Flavor::Sqlite, std::string{}, "sqlite:" + options.path, options);
  if (auto ok = store->open(Dialect::Sqlite); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> open_odbc_store(std::string_view connection_string) {
  std::string conn(connection_string);
  auto dialect = take_dialect(conn);
  if (!dialect) {
    spdlog::error("storage: TcDialect must be postgresql or sqlite in {}",
                  redact_url(connection_string));
    return dialect.error();
  }
  auto store = std::make_unique<SociStore>(
      Flavor::Odbc, conn, redact_url("odbc://" + std::string(connection_string)), SqliteOptions{});
  if (auto ok = store->open(*dialect); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tc::storage
