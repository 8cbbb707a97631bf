// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "storage/records.h"

namespace tc::storage::schema {

/// The SQL flavour a backend speaks. ODBC picks one of these from the DSN.
enum class Dialect { Postgresql, Sqlite };

std::string_view dialect_name(Dialect dialect);

/// One schema step. Its statements run in one transaction together with the version row insert.
struct Migration {
  int version = 0;
  std::string_view summary;
  std::span<const std::string_view> statements;
};

/// Every migration of `dialect`, ordered, versions 1..latest_version() without gaps.
std::span<const Migration> migrations(Dialect dialect);

/// The newest version (Store::latest_schema_version()).
int latest_version();

/// CREATE TABLE IF NOT EXISTS tc_schema_version; run first inside each migration transaction.
std::string_view bootstrap_statement(Dialect dialect);

/// An SQL expression for the database server's clock in Unix milliseconds (BIGINT).
std::string_view now_millis_expression(Dialect dialect);

/// A query returning one text column: the name of every tc_ table.
std::string_view list_tables_query(Dialect dialect);

/// What a migrator found in the database, read inside the migration transaction.
struct DbState {
  int version = 0;                     ///< MAX(version) of tc_schema_version; 0 when none
  std::vector<std::string> tc_tables;  ///< every table whose name starts with tc_
};

/// Whether migrations may run from `state`. Errc::SchemaTooNew when the database is newer than
/// this build, Errc::SchemaMismatch when it holds tc_ tables but no version row. Logs the reason.
Result<void> check_state(const DbState& state, std::string_view backend);

/// Current time in milliseconds since the Unix epoch (applied_at).
UnixMillis now_millis();

}  // namespace tc::storage::schema
