// SPDX-License-Identifier: Apache-2.0
// SQLite: SOCI's sqlite3 backend opens the database; statements run on its native handle, so
// every column arrives as exactly the text or NULL SQLite holds, rows stream one step at a time,
// and the INSERT of a bulk load is prepared once.
#include <filesystem>
#include <map>

#include <sqlite3.h>

#include "budget.h"
#include "db_backends.h"
#include "soci_sessions.h"

namespace tc::merge {
namespace {

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
        SQLITE_OK) {
      throw error(sqlite3_errcode(db));
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  void bind(std::span<const Param> params) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int at = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      if (std::holds_alternative<long long>(params[i])) {
        rc = sqlite3_bind_int64(stmt_, at, std::get<long long>(params[i]));
      } else if (std::holds_alternative<std::string>(params[i])) {
        const std::string& text = std::get<std::string>(params[i]);
        rc =
            sqlite3_bind_text64(stmt_, at, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else {
        rc = sqlite3_bind_null(stmt_, at);
      }
      if (rc != SQLITE_OK) {
        throw error(rc);
      }
    }
  }

  sqlite3_stmt* get() const { return stmt_; }

  /// Releases the statement's read snapshot (and locks) until it runs again.
  void reset() { sqlite3_reset(stmt_); }

  /// One step; true when a row is ready.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc == SQLITE_DONE) {
      return false;
    }
    throw error(rc);
  }

  void read(Row& row) const {
    const int n = sqlite3_column_count(stmt_);
    row.resize(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      Value& v = row[static_cast<std::size_t>(i)];
      if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) {
        v.reset();
        continue;
      }
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
      v.emplace(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)));
    }
  }

  DbError error(int rc) const {
    const std::string message = std::string("SQLite: ") + sqlite3_errmsg(db_);
    switch (rc & 0xff) {
      case SQLITE_READONLY:
      case SQLITE_PERM:
      case SQLITE_AUTH:
        return DbError(DbFailure::Permission, message);
      case SQLITE_CANTOPEN:
      case SQLITE_NOTADB:
        return DbError(DbFailure::Connect, message);
      default:
        if (message.find("no such table") != std::string::npos ||
            message.find("no such column") != std::string::npos) {
          return DbError(DbFailure::Missing, message);
        }
        return DbError(DbFailure::Other, message);
    }
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteDb final : public Db {
 public:
  SqliteDb(const std::string& path, std::string redacted, bool read_only) {
    redacted_url_ = std::move(redacted);
    if (read_only && !std::filesystem::exists(path)) {
      throw DbError(DbFailure::Connect, "SQLite: no such file " + path);
    }
    if (read_only) {
      open_read_only(path);
    } else {
      try {
        session_ = open_soci_sqlite(path, false);
      } catch (const std::exception& e) {
        throw DbError(DbFailure::Connect, std::string("SQLite: ") + e.what());
      }
      db_ = static_cast<sqlite3*>(native_sqlite_handle(*session_));
    }
    sqlite3_busy_timeout(db_, 30000);
    if (read_only) {
      exec("PRAGMA query_only = ON", {});
    }
  }
  ~SqliteDb() override {
    cache_.clear();
    rollback();
    if (!session_) {
      sqlite3_close(db_);
    }
  }

  Dialect dialect() const override { return Dialect::Sqlite; }
  std::string_view driver() const override { return "soci-sqlite3"; }

  long long exec(std::string_view sql, std::span<const Param> params) override {
    Statement& st = prepare(sql);
    st.bind(params);
    while (st.step()) {
    }
    st.reset();
    return sqlite3_changes(db_);
  }

  void query(std::string_view sql, std::span<const Param> params, const RowSink& sink) override {
    Statement st(db_, sql);  // not cached: a query may run while another is still stepping
    st.bind(params);
    Row row;
    while (st.step()) {
      // A large value is held by SQLite (read whole by the step) and by the row: both count
      // against the budget before the row's copy is made, so while this waits for another
      // worker's large value only SQLite's copy exists.
      std::size_t large = 0;
      for (int i = 0; i < sqlite3_column_count(st.get()); ++i) {
        const auto bytes = static_cast<std::size_t>(sqlite3_column_bytes(st.get(), i));
        large += bytes >= kLargeValue ? 2 * bytes : 0;
      }
      BudgetHold hold;
      if (large > 0) {
        hold.take(large);
      }
      st.read(row);
      const bool more = sink(row);
      if (large > 0) {
        row.clear();  // before the budget is given back
      }
      if (!more) {
        break;
      }
    }
  }

  void begin() override {
    // IMMEDIATE takes the write lock now (waiting up to the busy timeout) instead of failing
    // with SQLITE_BUSY at the first write.
    exec("BEGIN IMMEDIATE", {});
    in_tx_ = true;
  }
  void commit() override {
    exec("COMMIT", {});
    in_tx_ = false;
  }
  void rollback() noexcept override {
    if (!in_tx_) {
      return;
    }
    in_tx_ = false;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool in_transaction() const override { return in_tx_; }

 private:
  /// A source: opened through a URI with mode=ro, so SQLite never creates the file or writes
  /// to it. With immutable=1 too unless a -wal file holds content (a node that crashed, or
  /// runs): immutable takes no locks and creates no -shm/-wal beside the source, which may sit
  /// in a read-only directory, but it would not see what the WAL holds. Validation refuses a
  /// source whose node runs, so no writer can appear while the merge reads.
  void open_read_only(const std::string& path) {
    std::error_code ec;
    const auto wal = std::filesystem::file_size(path + "-wal", ec);
    const bool wal_holds_data = !ec && wal > 0;
    std::string uri = "file:";
    for (const char c : path) {
      // RFC 3986 escapes for what SQLite's URI parser would read as syntax.
      if (c == '%' || c == '?' || c == '#' || c == ' ') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        uri += '%';
        uri += kHex[static_cast<unsigned char>(c) >> 4];
        uri += kHex[static_cast<unsigned char>(c) & 15];
      } else {
        uri += c;
      }
    }
    uri += wal_holds_data ? "?mode=ro" : "?mode=ro&immutable=1";
    if (sqlite3_open_v2(uri.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) !=
        SQLITE_OK) {
      const std::string message = std::string("SQLite: ") + sqlite3_errmsg(db_);
      sqlite3_close(db_);
      db_ = nullptr;
      throw DbError(DbFailure::Connect, message);
    }
  }

  Statement& prepare(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      it = cache_.emplace(std::string(sql), std::make_unique<Statement>(db_, sql)).first;
    }
    return *it->second;
  }

  std::unique_ptr<soci::session> session_;
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
  bool in_tx_ = false;
};

}  // namespace

std::unique_ptr<Db> open_sqlite(const std::string& path, const std::string& url, bool read_only) {
  return std::make_unique<SqliteDb>(path, redact(url), read_only);
}

}  // namespace tc::merge
