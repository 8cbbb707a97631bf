// SPDX-License-Identifier: Apache-2.0
// The two statement helpers every SOCI feature file uses: Query (bind, run, fetch; ODBC columns
// read with SQLGetData) and Transaction (BEGIN IMMEDIATE for SQLite writes).
#pragma once

#include <string>
#include <variant>
#include <vector>

#include <soci/soci.h>

#include "schema/migrations.h"

namespace tc::storage::soci_backend {

/// A statement built piece by piece: values bound in placeholder order, then run.
///
/// With ODBC, result columns are not bound through SOCI: SOCI 4.0 binds a std::string column with
/// a buffer of the column's declared size, and for TEXT that is 100 MB, allocated and zeroed per
/// column per statement. Instead fetch() reads each column with SQLGetData, in chunks, so a row
/// costs what its data weighs.
class Query {
 public:
  explicit Query(soci::session& sql) : st_(sql), odbc_(sql.get_backend_name() == "odbc") {}

  template <class T>
  Query& into(T& value) {
    if (odbc_) {
      targets_.emplace_back(&value);
    } else {
      st_.exchange(soci::into(value));
    }
    return *this;
  }
  template <class Row>
  Query& into_row(Row& row) {
    row.each([this](auto& v) { this->into(v); });
    return *this;
  }
  template <class T>
  Query& use(const T& value) {
    st_.exchange(soci::use(value));
    return *this;
  }

  /// Runs a statement that returns no rows; the affected row count.
  long long run(const std::string& text) {
    prepare(text);
    st_.execute(true);
    return st_.get_affected_rows();
  }
  /// Runs the statement run() prepared again, with the bound variables' current values.
  long long rerun() {
    st_.execute(true);
    return st_.get_affected_rows();
  }
  /// Runs a query; call fetch() for each row.
  void start(const std::string& text) {
    prepare(text);
    st_.execute(false);
  }
  /// Runs the query start() prepared again; call fetch() for each row.
  void restart() { st_.execute(false); }
  /// Reads the next row into the into() targets; false at the end.
  bool fetch();

 private:
  void prepare(const std::string& text) {
    st_.alloc();
    st_.prepare(text);
    st_.define_and_bind();
  }

  soci::statement st_;
  bool odbc_;
  std::vector<std::variant<std::string*, long long*, int*>> targets_;
};

/// A transaction. SQLite: BEGIN IMMEDIATE for writes so that the write lock is taken (waiting up
/// to busy_timeout) before anything is read; a deferred transaction that read first and then
/// wants to write fails at once with SQLITE_BUSY when the other broker process got in between.
class Transaction {
 public:
  enum class Mode { Read, Write };

  Transaction(soci::session& sql, schema::Dialect dialect, Mode mode);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  void commit();

 private:
  soci::session& sql_;
  bool raw_;
  bool done_ = false;
};

}  // namespace tc::storage::soci_backend
