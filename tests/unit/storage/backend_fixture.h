// SPDX-License-Identifier: Apache-2.0
// The backends every Store test runs against, and a fresh database per test.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "storage/store.h"

#include "pg_launcher.h"

namespace tc::storage::test {

enum class Backend {
  Sqlite,          ///< SOCI sqlite3 on a file in a temporary directory
  Postgresql,      ///< libpqxx on the PostgreSQL the launcher started for this binary
  OdbcSqlite,      ///< SOCI odbc with the SQLite3 ODBC driver (libsqliteodbc)
  OdbcPostgresql,  ///< SOCI odbc with psqlODBC on the launcher's PostgreSQL
};

std::string_view backend_name(Backend backend);
/// The backends this build can test.
std::vector<Backend> all_backends();
bool uses_postgresql(Backend backend);

/// The PostgreSQL server shared by every test in this binary, started on first use and stopped
/// by a gtest Environment at exit. nullptr (with `why` filled in) when it cannot be started.
tc::test::PgLauncher* shared_postgresql(std::string* why);

/// A fresh, empty database of one backend; removed (SQLite) or abandoned (PostgreSQL, the whole
/// server goes away at exit) afterwards.
class TestDatabase {
 public:
  explicit TestDatabase(Backend backend);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  /// False when the backend is unavailable; problem() says why. That is a test failure, except
  /// for PostgreSQL under TC_SKIP_PG=1.
  bool ready() const { return !url_.empty(); }
  const std::string& problem() const { return problem_; }

  /// The URL for open_store().
  const std::string& url() const { return url_; }
  /// Runs SQL directly through the driver (sqlite3 C API or libpqxx), bypassing Store;
  /// for planting rows a test needs, such as a future schema version. Throws on failure.
  void exec_raw(const std::string& sql) const;

 private:
  Backend backend_;
  std::filesystem::path dir_;
  std::string sqlite_path_;
  std::string pg_url_;
  std::string url_;
  std::string problem_;
};

/// TC_SKIP_PG=1 turns "PostgreSQL could not be started" from a failure into a skip.
bool skip_postgresql_allowed();

}  // namespace tc::storage::test
