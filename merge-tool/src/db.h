// SPDX-License-Identifier: Apache-2.0
// A small, driver-neutral SQL connection for tc-merge. Every value crosses it as text (or NULL),
// which is what the merge needs: rows are copied, hashed and compared, never interpreted beyond
// a few integers. Drivers: libpqxx for postgresql:// (with COPY streaming both ways), SOCI for
// sqlite:// and odbc:// (statements run on the native handle SOCI opened; see db_soci.cpp), and
// SOCI's Oracle backend for oracle:// when built with TC_WITH_ORACLE.
//
// Errors: every driver exception is converted to DbError here. tc-merge is a tool edge
// (STYLE.md 3.5): a failed statement ends the check or the batch that ran it, and the command's
// top level reports it. Expected outcomes (findings, bad options) are values, not exceptions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "storage/columns.h"

namespace tc::merge {

/// The SQL a connection speaks. ODBC learns it from the driver (SQL_DBMS_NAME).
enum class Dialect { Postgresql, Sqlite, Oracle, Mssql };

std::string_view dialect_name(Dialect dialect);

/// A column value: text, or NULL.
using Value = std::optional<std::string>;
using Row = std::vector<Value>;

/// A bound parameter. Placeholders are written `?` in every statement text.
using Param = std::variant<std::monostate, long long, std::string>;

/// What went wrong, as far as callers care.
enum class DbFailure {
  Connect,     ///< cannot reach or log in to the database
  Permission,  ///< the user lacks a privilege (SQLSTATE 42501, SQLite read-only)
  Missing,     ///< a table or column does not exist
  Other,
};

class DbError : public std::runtime_error {
 public:
  DbError(DbFailure failure, const std::string& message)
      : std::runtime_error(message), failure_(failure) {}
  DbFailure failure() const { return failure_; }

 private:
  DbFailure failure_;
};

/// A column of a bulk load. Integer columns are bound as numbers where the driver cares (ODBC).
/// The tc_ tables' columns are storage's (storage/columns.h).
using Column = storage::columns::Column;

/// Called for each row of a query; return false to stop early. The sink may move values out
/// of the row (a stanza may be megabytes); the driver refills every field for the next row.
using RowSink = std::function<bool(Row& row)>;
/// Fills `row` with the next row to load and returns true, or returns false at the end.
using RowSource = std::function<bool(Row& row)>;

/// A COPY ... FROM STDIN in progress (PostgreSQL), inside the caller's transaction. Fields are
/// escaped into a small buffer that is sent whenever it fills, so a row costs its own bytes once
/// whatever its size: no row, batch or escaped copy of a large stanza is ever held. Destroying
/// it unfinished cancels the COPY (the transaction then fails and must roll back).
class CopyIn {
 public:
  virtual ~CopyIn() = default;
  virtual void field(std::string_view text) = 0;
  virtual void integer(long long value) = 0;
  virtual void end_row() = 0;
  /// Ends the COPY; throws DbError when the server refused a row (the message names it).
  virtual void finish() = 0;
};

/// One connection. Not thread-safe. Statements outside begin()/commit() autocommit.
class Db {
 public:
  virtual ~Db() = default;

  virtual Dialect dialect() const = 0;
  /// "libpqxx", "soci-sqlite3", "soci-odbc" or "soci-oracle".
  virtual std::string_view driver() const = 0;
  /// The connection URL with its password replaced by "***".
  const std::string& redacted_url() const { return redacted_url_; }

  /// Runs a statement that returns no rows; the number of rows it changed (-1 when unknown).
  virtual long long exec(std::string_view sql, std::span<const Param> params = {}) = 0;
  /// Runs a query, calling `sink` for each row in order. Rows are fetched as they come where
  /// the driver allows (SQLite, ODBC); libpqxx reads the whole result, so use stream() there
  /// for anything large.
  virtual void query(std::string_view sql, std::span<const Param> params, const RowSink& sink) = 0;
  /// Like query(), but for results of any size: PostgreSQL runs COPY (query) TO STDOUT and
  /// parses each line as it arrives, so memory stays flat. Elsewhere the same as query(); with
  /// ODBC callers page with limit_clause() because some drivers buffer whole results.
  virtual void stream(std::string_view sql, std::span<const Param> params, const RowSink& sink) {
    query(sql, params, sink);
  }

  virtual void begin() = 0;
  virtual void commit() = 0;
  /// Never throws: a lost connection rolls back by itself.
  virtual void rollback() noexcept = 0;
  virtual bool in_transaction() const = 0;

  /// Loads rows into `table` inside the current transaction. PostgreSQL uses COPY FROM STDIN;
  /// the others a prepared INSERT per row (all in the caller's transaction).
  virtual void bulk_insert(std::string_view table, std::span<const Column> columns,
                           const RowSource& next);
  /// Starts COPY `table` (`columns`) FROM STDIN inside the current transaction; nullptr when
  /// the driver has no COPY (then use bulk_insert()).
  virtual std::unique_ptr<CopyIn> copy_in(std::string_view table, std::span<const Column> columns) {
    (void)table;
    (void)columns;
    return nullptr;
  }

  /// Whether a table (or view) of that name exists, from the catalog: needs no privilege on it.
  bool table_exists(std::string_view table);
  /// Column names of `table`, lower-cased; empty when the table does not exist.
  std::vector<std::string> columns(std::string_view table);

  // ---- conveniences over query() ----
  std::optional<Row> query_one(std::string_view sql, std::span<const Param> params = {});
  /// The first column of the first row; nullopt for no row or NULL.
  std::optional<std::string> scalar(std::string_view sql, std::span<const Param> params = {});
  long long scalar_int(std::string_view sql, std::span<const Param> params = {});

  /// " LIMIT n" or the dialect's equivalent, appended after ORDER BY.
  std::string limit_clause(long long n) const;
  /// SQL for the size in bytes of a text expression.
  std::string byte_length(std::string_view expr) const;

 protected:
  std::string redacted_url_;
};

/// Opens a connection. URLs: postgresql://..., postgres://..., sqlite:///abs/path,
/// sqlite://rel/path, odbc://<ODBC connection string>, oracle://<SOCI Oracle connect string>.
/// `read_only` (sources): the session refuses writes (PostgreSQL READ ONLY transactions, SQLite
/// opened read-only without create, SQL_ATTR_ACCESS_MODE for ODBC), so a source stays untouched
/// whatever happens. Throws DbError (Connect) when the database cannot be reached.
std::unique_ptr<Db> open_db(const std::string& url, bool read_only = false);

/// RAII transaction: rolls back unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.begin(); }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (!done_) {
      db_.rollback();
    }
  }
  /// Rolls back now (before the destructor would), so the connection can be used again.
  void rollback() noexcept {
    if (!done_) {
      db_.rollback();
      done_ = true;
    }
  }
  void commit() {
    db_.commit();
    done_ = true;
  }

 private:
  Db& db_;
  bool done_ = false;
};

/// Parses an integer column; throws DbError when it is not one.
long long to_int(const Value& value);

}  // namespace tc::merge
