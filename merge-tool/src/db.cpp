// SPDX-License-Identifier: Apache-2.0
#include "db.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "storage/store.h"

#include "db_backends.h"

namespace tc::merge {
namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

std::string_view dialect_name(Dialect dialect) {
  switch (dialect) {
    case Dialect::Postgresql:
      return "postgresql";
    case Dialect::Sqlite:
      return "sqlite";
    case Dialect::Oracle:
      return "oracle";
    case Dialect::Mssql:
      return "mssql";
  }
  return "?";
}

long long to_int(const Value& value) {
  long long out = 0;
  if (!value) {
    throw DbError(DbFailure::Other, "expected a number, got NULL");
  }
  std::string_view text = *value;
  // Some ODBC drivers render numeric columns as "12.0"; only an integral value is accepted.
  if (const auto dot = text.find('.');
      dot != std::string_view::npos && text.find_first_not_of('0', dot + 1) == std::string::npos) {
    text = text.substr(0, dot);
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw DbError(DbFailure::Other, "expected a number, got '" + *value + "'");
  }
  return out;
}

void Db::bulk_insert(std::string_view table, std::span<const Column> columns,
                     const RowSource& next) {
  std::string sql = "INSERT INTO " + std::string(table) + " (";
  std::string marks;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    sql += (i ? ", " : "") + std::string(columns[i].name);
    marks += i ? ", ?" : "?";
  }
  sql += ") VALUES (" + marks + ")";
  Row row;
  std::vector<Param> params;
  while (next(row)) {
    params.clear();
    for (std::size_t i = 0; i < row.size(); ++i) {
      Value& v = row[i];
      if (!v) {
        params.emplace_back();
      } else if (i < columns.size() && columns[i].integer) {
        params.emplace_back(to_int(v));
      } else {
        params.emplace_back(std::move(*v));
      }
    }
    exec(sql, params);
  }
}

std::optional<Row> Db::query_one(std::string_view sql, std::span<const Param> params) {
  std::optional<Row> out;
  query(sql, params, [&out](const Row& row) {
    out = row;
    return false;
  });
  return out;
}

std::optional<std::string> Db::scalar(std::string_view sql, std::span<const Param> params) {
  auto row = query_one(sql, params);
  if (!row || row->empty()) {
    return std::nullopt;
  }
  return (*row)[0];
}

long long Db::scalar_int(std::string_view sql, std::span<const Param> params) {
  const auto value = scalar(sql, params);
  return value ? to_int(value) : 0;
}

std::string Db::limit_clause(long long n) const {
  switch (dialect()) {
    case Dialect::Postgresql:
    case Dialect::Sqlite:
      return " LIMIT " + std::to_string(n);
    case Dialect::Oracle:
    case Dialect::Mssql:
      // Both need an ORDER BY before it, which every paged query here has.
      return " OFFSET 0 ROWS FETCH NEXT " + std::to_string(n) + " ROWS ONLY";
  }
  return {};
}

std::string Db::byte_length(std::string_view expr) const {
  const std::string e(expr);
  switch (dialect()) {
    case Dialect::Postgresql:
      return "octet_length(" + e + ")";
    case Dialect::Sqlite:
      return "length(CAST(" + e + " AS BLOB))";
    case Dialect::Oracle:
      return "dbms_lob.getlength(" + e + ")";
    case Dialect::Mssql:
      return "datalength(" + e + ")";
  }
  return "0";
}

bool Db::table_exists(std::string_view table) {
  const std::vector<Param> p{std::string(lower(std::string(table)))};
  switch (dialect()) {
    case Dialect::Postgresql:
      // pg_class, not information_schema: the latter hides tables the user has no privilege
      // on, and validation must tell "missing" from "not allowed".
      return query_one(
                 "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
                 "c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', "
                 "'p', 'f') AND lower(c.relname) = ?",
                 p)
          .has_value();
    case Dialect::Sqlite:
      return query_one(
                 "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = ?",
                 p)
          .has_value();
    case Dialect::Oracle:
      return query_one("SELECT 1 FROM user_tables WHERE lower(table_name) = ?", p).has_value();
    case Dialect::Mssql:
      return query_one("SELECT 1 FROM information_schema.tables WHERE lower(table_name) = ?", p)
          .has_value();
  }
  return false;
}

std::vector<std::string> Db::columns(std::string_view table) {
  std::vector<std::string> out;
  const auto collect = [&out](const Row& row) {
    if (!row.empty() && row[0]) {
      out.push_back(lower(*row[0]));
    }
    return true;
  };
  const std::vector<Param> p{lower(std::string(table))};
  switch (dialect()) {
    case Dialect::Postgresql:
      query(
          "SELECT CAST(a.attname AS TEXT) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class "
          "c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = current_schema() AND lower(c.relname) = ? AND a.attnum > 0 AND NOT "
          "a.attisdropped ORDER BY a.attnum",
          p, collect);
      break;
    case Dialect::Sqlite:
      // pragma_table_info() is a table-valued function (SQLite 3.16+).
      query("SELECT name FROM pragma_table_info(?) ORDER BY cid", p, collect);
      break;
    case Dialect::Oracle:
      query(
          "SELECT column_name FROM user_tab_columns WHERE lower(table_name) = ? ORDER BY column_id",
          p, collect);
      break;
    case Dialect::Mssql:
      query(
          "SELECT column_name FROM information_schema.columns WHERE lower(table_name) = ? ORDER "
          "BY ordinal_position",
          p, collect);
      break;
  }
  return out;
}

std::unique_ptr<Db> open_db(const std::string& url, bool read_only) {
  if (starts_with_nocase(url, "postgresql://") || starts_with_nocase(url, "postgres://")) {
    return open_pg(url, read_only);
  }
  if (starts_with_nocase(url, "sqlite://")) {
    std::string path = url.substr(9);
    if (path.empty()) {
      throw DbError(DbFailure::Connect, "empty SQLite path in " + url);
    }
    if (const auto q = path.find('?'); q != std::string::npos) {
      path.resize(q);  // storage's ?synchronous=... options do not matter to the merge
    }
    return open_sqlite(path, url, read_only);
  }
  if (starts_with_nocase(url, "odbc://")) {
    return open_odbc(url.substr(7), url, read_only);
  }
  if (starts_with_nocase(url, "oracle://")) {
    return open_oracle(url.substr(9), url, read_only);
  }
  throw DbError(DbFailure::Connect,
                "unknown database URL scheme (postgresql://, sqlite://, odbc://, oracle://): " +
                    url.substr(0, url.find(':')));
}

std::string redact(const std::string& url) {
  return storage::redact_url(url);
}

std::string translate_placeholders(std::string_view sql, PlaceholderStyle style) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool quoted = false;
  for (const char c : sql) {
    if (c == '\'') {
      quoted = !quoted;
    }
    if (c == '?' && !quoted) {
      ++n;
      out += style == PlaceholderStyle::Dollar ? "$" : ":p";
      out += std::to_string(n);
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace tc::merge
