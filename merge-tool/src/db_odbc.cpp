// SPDX-License-Identifier: Apache-2.0
// ODBC: SOCI's odbc backend connects through the unixODBC driver manager; statements run on the
// connection's native handle with the ODBC API. SOCI 4.0 binds a text result column with a buffer
// of the column's declared size (about 100 MB for TEXT, per column per statement), so columns are
// read with SQLGetData in chunks instead, and parameters are bound with SQLBindParameter.
//
// The connection string goes to the driver unchanged except for one key of ours,
// TcDialect=postgresql|sqlite|mssql, removed first (as storage/ does). Without it the dialect
// comes from SQL_DBMS_NAME.
#include <algorithm>
#include <cctype>

#include <sql.h>
#include <sqlext.h>

#include "db_backends.h"
#include "soci_sessions.h"

namespace tc::merge {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

/// The diagnostics of a handle, joined; and whether any SQLSTATE means "no privilege".
struct Diagnostics {
  std::string text;
  std::string first_state;
};

Diagnostics diagnostics(SQLSMALLINT type, SQLHANDLE handle) {
  Diagnostics out;
  for (SQLSMALLINT i = 1; i < 10; ++i) {
    SQLCHAR state[6] = {};
    SQLINTEGER native = 0;
    SQLCHAR message[1024] = {};
    SQLSMALLINT length = 0;
    if (!SQL_SUCCEEDED(
            SQLGetDiagRec(type, handle, i, state, &native, message, sizeof message, &length))) {
      break;
    }
    if (out.first_state.empty()) {
      out.first_state = reinterpret_cast<const char*>(state);
    }
    if (!out.text.empty()) {
      out.text += "; ";
    }
    out.text += reinterpret_cast<const char*>(message);
  }
  return out;
}

DbError odbc_error(SQLSMALLINT type, SQLHANDLE handle, std::string_view what) {
  const Diagnostics d = diagnostics(type, handle);
  const std::string message =
      "ODBC " + std::string(what) + ": " + d.text + " [" + d.first_state + "]";
  const std::string text = lower(d.text);
  if (d.first_state == "42501" || text.find("permission denied") != std::string::npos ||
      text.find("readonly") != std::string::npos || text.find("read-only") != std::string::npos) {
    return DbError(DbFailure::Permission, message);
  }
  if (d.first_state == "42S02" || d.first_state == "42P01" || d.first_state == "42S22" ||
      text.find("no such table") != std::string::npos ||
      text.find("does not exist") != std::string::npos) {
    return DbError(DbFailure::Missing, message);
  }
  if (d.first_state.starts_with("08")) {
    return DbError(DbFailure::Connect, message);
  }
  return DbError(DbFailure::Other, message);
}

/// Removes `TcDialect=...;` from a connection string and returns its value ("" when absent).
std::string take_dialect_key(std::string& connection_string) {
  const std::string lowered = lower(connection_string);
  const auto at = lowered.find("tcdialect=");
  if (at == std::string::npos || (at > 0 && lowered[at - 1] != ';')) {
    return {};
  }
  auto end = connection_string.find(';', at);
  const std::string value =
      lower(connection_string.substr(at + 10, end == std::string::npos ? end : end - at - 10));
  connection_string.erase(at, end == std::string::npos ? end : end - at + 1);
  while (!connection_string.empty() && connection_string.back() == ';') {
    connection_string.pop_back();
  }
  return value;
}

class StatementHandle {
 public:
  explicit StatementHandle(SQLHDBC dbc) {
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, dbc, &stmt_))) {
      throw odbc_error(SQL_HANDLE_DBC, dbc, "allocating a statement");
    }
  }
  StatementHandle(const StatementHandle&) = delete;
  StatementHandle& operator=(const StatementHandle&) = delete;
  ~StatementHandle() { SQLFreeHandle(SQL_HANDLE_STMT, stmt_); }
  SQLHSTMT get() const { return stmt_; }

  void check(SQLRETURN rc, std::string_view what) const {
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) {
      throw odbc_error(SQL_HANDLE_STMT, stmt_, what);
    }
  }

 private:
  SQLHSTMT stmt_ = SQL_NULL_HSTMT;
};

class OdbcDb final : public Db {
 public:
  OdbcDb(std::string connection_string, std::string redacted, bool read_only) {
    redacted_url_ = std::move(redacted);
    const std::string dialect = take_dialect_key(connection_string);
    try {
      session_ = open_soci_odbc(connection_string);
    } catch (const std::exception& e) {
      throw DbError(DbFailure::Connect, std::string("ODBC: ") + e.what());
    }
    dbc_ = static_cast<SQLHDBC>(native_odbc_handle(*session_));
    dialect_ = dialect.empty() ? dialect_from_driver() : parse_dialect(dialect);
    if (read_only) {
      // Advisory for some drivers; PostgreSQL gets it enforced by the server as well.
      SQLSetConnectAttr(dbc_, SQL_ATTR_ACCESS_MODE,
                        reinterpret_cast<SQLPOINTER>(SQL_MODE_READ_ONLY), 0);
      if (dialect_ == Dialect::Postgresql) {
        exec("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {});
      } else if (dialect_ == Dialect::Sqlite) {
        exec("PRAGMA query_only = ON", {});
      }
    }
  }
  ~OdbcDb() override { rollback(); }

  Dialect dialect() const override { return dialect_; }
  std::string_view driver() const override { return "soci-odbc"; }

  long long exec(std::string_view sql, std::span<const Param> params) override {
    StatementHandle st(dbc_);
    run(st, sql, params);
    SQLLEN count = -1;
    SQLRowCount(st.get(), &count);
    return count;
  }

  void query(std::string_view sql, std::span<const Param> params, const RowSink& sink) override {
    StatementHandle st(dbc_);
    run(st, sql, params);
    SQLSMALLINT columns = 0;
    st.check(SQLNumResultCols(st.get(), &columns), "counting result columns");
    Row row(static_cast<std::size_t>(columns));
    for (;;) {
      const SQLRETURN rc = SQLFetch(st.get());
      if (rc == SQL_NO_DATA) {
        return;
      }
      st.check(rc, "fetching a row");
      for (SQLSMALLINT c = 0; c < columns; ++c) {
        read_column(st, static_cast<SQLUSMALLINT>(c + 1), row[static_cast<std::size_t>(c)]);
      }
      if (!sink(row)) {
        return;
      }
    }
  }

  void begin() override {
    set_autocommit(false);
    in_tx_ = true;
  }
  void commit() override {
    const SQLRETURN rc = SQLEndTran(SQL_HANDLE_DBC, dbc_, SQL_COMMIT);
    in_tx_ = false;
    set_autocommit(true);
    if (!SQL_SUCCEEDED(rc)) {
      throw odbc_error(SQL_HANDLE_DBC, dbc_, "commit");
    }
  }
  void rollback() noexcept override {
    if (!in_tx_) {
      return;
    }
    in_tx_ = false;
    SQLEndTran(SQL_HANDLE_DBC, dbc_, SQL_ROLLBACK);
    SQLSetConnectAttr(dbc_, SQL_ATTR_AUTOCOMMIT, reinterpret_cast<SQLPOINTER>(SQL_AUTOCOMMIT_ON),
                      0);
  }
  bool in_transaction() const override { return in_tx_; }

 private:
  static Dialect parse_dialect(const std::string& name) {
    if (name == "postgresql" || name == "postgres") {
      return Dialect::Postgresql;
    }
    if (name == "sqlite") {
      return Dialect::Sqlite;
    }
    if (name == "mssql" || name == "sqlserver") {
      return Dialect::Mssql;
    }
    if (name == "oracle") {
      return Dialect::Oracle;
    }
    throw DbError(DbFailure::Connect, "ODBC: unknown TcDialect=" + name);
  }

  Dialect dialect_from_driver() {
    SQLCHAR name[256] = {};
    SQLSMALLINT length = 0;
    if (!SQL_SUCCEEDED(SQLGetInfo(dbc_, SQL_DBMS_NAME, name, sizeof name, &length))) {
      throw odbc_error(SQL_HANDLE_DBC, dbc_, "reading SQL_DBMS_NAME");
    }
    const std::string dbms = lower(reinterpret_cast<const char*>(name));
    if (dbms.find("postgres") != std::string::npos) {
      return Dialect::Postgresql;
    }
    if (dbms.find("sqlite") != std::string::npos) {
      return Dialect::Sqlite;
    }
    if (dbms.find("sql server") != std::string::npos) {
      return Dialect::Mssql;
    }
    if (dbms.find("oracle") != std::string::npos) {
      return Dialect::Oracle;
    }
    throw DbError(DbFailure::Connect, "ODBC: unsupported DBMS '" + dbms +
                                          "'; set TcDialect=postgresql|sqlite|mssql|oracle");
  }

  void set_autocommit(bool on) {
    const SQLRETURN rc = SQLSetConnectAttr(
        dbc_, SQL_ATTR_AUTOCOMMIT,
        reinterpret_cast<SQLPOINTER>(on ? SQL_AUTOCOMMIT_ON : SQL_AUTOCOMMIT_OFF), 0);
    if (!SQL_SUCCEEDED(rc)) {
      throw odbc_error(SQL_HANDLE_DBC, dbc_, "setting autocommit");
    }
  }

  void run(StatementHandle& st, std::string_view sql, std::span<const Param> params) {
    // The bound buffers must live until SQLExecute returns.
    std::vector<std::string> texts(params.size());
    std::vector<long long> numbers(params.size());
    std::vector<SQLLEN> indicators(params.size());
    const std::string text(sql);
    st.check(
        SQLPrepare(st.get(), reinterpret_cast<SQLCHAR*>(const_cast<char*>(text.c_str())), SQL_NTS),
        "preparing a statement");
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto at = static_cast<SQLUSMALLINT>(i + 1);
      SQLRETURN rc = SQL_SUCCESS;
      if (std::holds_alternative<long long>(params[i])) {
        numbers[i] = std::get<long long>(params[i]);
        indicators[i] = 0;
        rc = SQLBindParameter(st.get(), at, SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT, 0, 0,
                              &numbers[i], 0, &indicators[i]);
      } else if (std::holds_alternative<std::string>(params[i])) {
        texts[i] = std::get<std::string>(params[i]);
        indicators[i] = static_cast<SQLLEN>(texts[i].size());
        rc = SQLBindParameter(st.get(), at, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_LONGVARCHAR,
                              std::max<SQLULEN>(texts[i].size(), 1), 0, texts[i].data(),
                              indicators[i], &indicators[i]);
      } else {
        indicators[i] = SQL_NULL_DATA;
        rc = SQLBindParameter(st.get(), at, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, 1, 0, nullptr,
                              0, &indicators[i]);
      }
      st.check(rc, "binding a parameter");
    }
    st.check(SQLExecute(st.get()), "executing");
  }

  static void read_column(StatementHandle& st, SQLUSMALLINT column, Value& out) {
    std::string& text = out.emplace();
    char buffer[16 * 1024];
    for (;;) {
      SQLLEN length = 0;
      const SQLRETURN rc = SQLGetData(st.get(), column, SQL_C_CHAR, buffer, sizeof buffer, &length);
      if (rc == SQL_NO_DATA) {
        return;  // the previous call returned the last piece
      }
      st.check(rc, "reading a column");
      if (length == SQL_NULL_DATA) {
        out.reset();
        return;
      }
      // SQL_SUCCESS_WITH_INFO (01004): the buffer was filled, NUL-terminated, and more remains.
      const bool more = rc == SQL_SUCCESS_WITH_INFO &&
                        (length == SQL_NO_TOTAL || length >= static_cast<SQLLEN>(sizeof buffer));
      text.append(buffer, more ? sizeof buffer - 1 : static_cast<std::size_t>(length));
      if (!more) {
        return;
      }
    }
  }

  std::unique_ptr<soci::session> session_;
  SQLHDBC dbc_ = SQL_NULL_HDBC;
  Dialect dialect_ = Dialect::Postgresql;
  bool in_tx_ = false;
};

}  // namespace

std::unique_ptr<Db> open_odbc(const std::string& connection_string, const std::string& url,
                              bool read_only) {
  return std::make_unique<OdbcDb>(connection_string, redact(url), read_only);
}

}  // namespace tc::merge
