// SPDX-License-Identifier: Apache-2.0
#include "schema/migrations.h"

#include <algorithm>
#include <array>
#include <chrono>

#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "storage/store.h"

#include "schema/postgresql_sql.h"
#include "schema/sqlite_sql.h"

namespace tc::storage::schema {
namespace {

constexpr std::array kPostgresql = {
    Migration{1, "accounts, rooms, affiliations, archive", postgresql::kV1},
    Migration{2, "node registry", postgresql::kV2},
    Migration{3, "HA: node endpoints, leases, settings, groups", postgresql::kV3},
    Migration{4, "cluster: which group hosts each room", postgresql::kV4},
    Migration{5, "users' own data: rosters, offline messages, PEP, vCards", postgresql::kV5},
};
constexpr std::array kSqlite = {
    Migration{1, "accounts, rooms, affiliations, archive", sqlite::kV1},
    Migration{2, "node registry", sqlite::kV2},
    Migration{3, "HA: node endpoints, leases, settings, groups", sqlite::kV3},
    Migration{4, "cluster: which group hosts each room", sqlite::kV4},
    Migration{5, "users' own data: rosters, offline messages, PEP, vCards", sqlite::kV5},
};
static_assert(kPostgresql.size() == kSqlite.size(), "every dialect has every migration");

}  // namespace

std::string_view dialect_name(Dialect dialect) {
  return dialect == Dialect::Postgresql ? "postgresql" : "sqlite";
}

std::span<const Migration> migrations(Dialect dialect) {
  if (dialect == Dialect::Postgresql) {
    return kPostgresql;
  }
  return kSqlite;
}

int latest_version() {
  return static_cast<int>(kPostgresql.size());
}

std::string_view bootstrap_statement(Dialect dialect) {
  return dialect == Dialect::Postgresql ? postgresql::kBootstrap : sqlite::kBootstrap;
}

std::string_view now_millis_expression(Dialect dialect) {
  return dialect == Dialect::Postgresql ? postgresql::kNowMillis : sqlite::kNowMillis;
}

std::string_view list_tables_query(Dialect dialect) {
  return dialect == Dialect::Postgresql ? postgresql::kListTcTables : sqlite::kListTcTables;
}

Result<void> check_state(const DbState& state, std::string_view backend) {
  if (state.version > latest_version()) {
    spdlog::error(
        "storage ({}): database schema version {} is newer than this build supports ({}); "
        "upgrade tcbroker or point it at another database",
        backend, state.version, latest_version());
    return make_error_code(Errc::SchemaTooNew);
  }
  if (state.version == 0) {
    const auto foreign =
        std::find_if(state.tc_tables.begin(), state.tc_tables.end(),
                     [](const std::string& t) { return t != "tc_schema_version"; });
    if (foreign != state.tc_tables.end()) {
      spdlog::error(
          "storage ({}): database has tc_ tables (e.g. {}) but no tc_schema_version row; refusing "
          "to migrate a schema this build did not create",
          backend, *foreign);
      return make_error_code(Errc::SchemaMismatch);
    }
  }
  return {};
}

UnixMillis now_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tc::storage::schema

namespace tc::storage {

int Store::latest_schema_version() {
  return schema::latest_version();
}

}  // namespace tc::storage
