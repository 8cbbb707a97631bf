// SPDX-License-Identifier: Apache-2.0
#include "soci/soci_query.h"

#include <cstddef>
#include <type_traits>

#include <spdlog/spdlog.h>
#if defined(TC_WITH_ODBC)
#include <soci/odbc/soci-odbc.h>
#endif

namespace tc::storage::soci_backend {
namespace {

#if defined(TC_WITH_ODBC)
void check(SQLHSTMT stmt, SQLRETURN rc, const char* what) {
  if (!SQL_SUCCEEDED(rc)) {
    throw soci::odbc_soci_error(SQL_HANDLE_STMT, stmt, what);
  }
}

void read_column(SQLHSTMT stmt, SQLUSMALLINT column, std::string& out) {
  out.clear();
  char buffer[16 * 1024];
  for (;;) {
    SQLLEN length = 0;
    const SQLRETURN rc = SQLGetData(stmt, column, SQL_C_CHAR, buffer, sizeof buffer, &length);
    if (rc == SQL_NO_DATA) {
      return;  // the previous call returned the last piece
    }
    check(stmt, rc, "reading a text column");
    if (length == SQL_NULL_DATA) {
      return;  // every text column is NOT NULL; treat a NULL as empty
    }
    // SQL_SUCCESS_WITH_INFO (01004): the buffer was filled, NUL-terminated, and more remains.
    const bool more = rc == SQL_SUCCESS_WITH_INFO &&
                      (length == SQL_NO_TOTAL || length >= static_cast<SQLLEN>(sizeof buffer));
    out.append(buffer, more ? sizeof buffer - 1 : static_cast<std::size_t>(length));
    if (!more) {
      return;
    }
  }
}

template <class Int>
void read_column(SQLHSTMT stmt, SQLUSMALLINT column, Int& out) {
  static_assert(std::is_same_v<Int, long long> || std::is_same_v<Int, int>);
  SQLLEN length = 0;
  const SQLSMALLINT type = std::is_same_v<Int, long long> ? SQL_C_SBIGINT : SQL_C_SLONG;
  check(stmt, SQLGetData(stmt, column, type, &out, sizeof out, &length), "reading a number");
  if (length == SQL_NULL_DATA) {
    out = 0;
  }
}
#endif

}  // namespace

bool Query::fetch() {
  if (!odbc_) {
    return st_.fetch();
  }
#if defined(TC_WITH_ODBC)
  SQLHSTMT stmt = static_cast<soci::odbc_statement_backend*>(st_.get_backend())->hstmt_;
  const SQLRETURN rc = SQLFetch(stmt);
  if (rc == SQL_NO_DATA) {
    return false;
  }
  check(stmt, rc, "fetching a row");
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    const auto column = static_cast<SQLUSMALLINT>(i + 1);
    std::visit([&](auto* target) { read_column(stmt, column, *target); }, targets_[i]);
  }
  return true;
#else
  return false;
#endif
}

Transaction::Transaction(soci::session& sql, schema::Dialect dialect, Mode mode)
    : sql_(sql), raw_(dialect == schema::Dialect::Sqlite) {
  if (raw_) {
    sql_ << (mode == Mode::Write ? "BEGIN IMMEDIATE" : "BEGIN");
  } else {
    sql_.begin();
  }
}

Transaction::~Transaction() {
  if (done_) {
    return;
  }
  try {
    if (raw_) {
      sql_ << "ROLLBACK";
    } else {
      sql_.rollback();
    }
  } catch (const std::exception& e) {
    // The connection is probably gone; the server rolls back by itself.
    spdlog::debug("storage: rollback failed: {}", e.what());
  }
}

void Transaction::commit() {
  if (raw_) {
    sql_ << "COMMIT";
  } else {
    sql_.commit();
  }
  done_ = true;
}

}  // namespace tc::storage::soci_backend
