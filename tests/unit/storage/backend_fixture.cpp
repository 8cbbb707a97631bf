// SPDX-License-Identifier: Apache-2.0
#include "backend_fixture.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(TC_TEST_PG)
#include <pqxx/pqxx>
#endif

namespace tc::storage::test {
namespace {

class PostgresEnvironment : public ::testing::Environment {
 public:
  tc::test::PgLauncher* get(std::string* why) {
    if (!launcher_ && error_.empty()) {
      try {
        launcher_ = std::make_unique<tc::test::PgLauncher>();
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    }
    if (why != nullptr) {
      *why = error_;
    }
    return launcher_.get();
  }

  void TearDown() override { launcher_.reset(); }

 private:
  std::unique_ptr<tc::test::PgLauncher> launcher_;
  std::string error_;
};

// Owned by gtest once registered; registered before main() runs (gtest_main).
PostgresEnvironment* const g_postgres = static_cast<PostgresEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new PostgresEnvironment));

std::filesystem::path make_temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path() / "tc-store-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  return templ;
}

std::string fresh_database_name() {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(++counter);
}

}  // namespace

std::string_view backend_name(Backend backend) {
  switch (backend) {
    case Backend::Sqlite:
      return "sqlite";
    case Backend::Postgresql:
      return "postgresql";
    case Backend::OdbcSqlite:
      return "odbc_sqlite";
    case Backend::OdbcPostgresql:
      return "odbc_postgresql";
  }
  return "unknown";
}

std::vector<Backend> all_backends() {
  std::vector<Backend> backends;
#if defined(TC_TEST_SQLITE)
  backends.push_back(Backend::Sqlite);
#endif
#if defined(TC_TEST_PG)
  backends.push_back(Backend::Postgresql);
#endif
#if defined(TC_TEST_ODBC)
  backends.push_back(Backend::OdbcSqlite);
  backends.push_back(Backend::OdbcPostgresql);
#endif
  return backends;
}

bool uses_postgresql(Backend backend) {
  return backend == Backend::Postgresql || backend == Backend::OdbcPostgresql;
}

bool skip_postgresql_allowed() {
  const char* skip = std::getenv("TC_SKIP_PG");
  return skip != nullptr && std::string_view(skip) == "1";
}

tc::test::PgLauncher* shared_postgresql(std::string* why) { return g_postgres->get(why); }

TestDatabase::TestDatabase(Backend backend) : backend_(backend) {
  if (uses_postgresql(backend)) {
    std::string why;
    tc::test::PgLauncher* pg = shared_postgresql(&why);
    if (pg == nullptr) {
      problem_ = "PostgreSQL could not be started: " + why;
      return;
    }
    const std::string name = fresh_database_name();
    pg->create_database(name);
    pg_url_ = pg->url(name);
    if (backend == Backend::Postgresql) {
      url_ = pg_url_;
    } else {
      // psqlODBC's Unicode driver; the connection string is ODBC's, the dialect is detected.
      url_ = "odbc://DRIVER={PostgreSQL Unicode};Server=127.0.0.1;Port=" +
             std::to_string(pg->port()) + ";Database=" + name + ";Uid=postgres;Pwd=;";
    }
    return;
  }
  dir_ = make_temp_dir();
  sqlite_path_ = (dir_ / "tc.db").string();
  url_ = backend == Backend::Sqlite ? "sqlite://" + sqlite_path_
                                    : "odbc://DRIVER=SQLite3;Database=" + sqlite_path_;
}

TestDatabase::~TestDatabase() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void TestDatabase::exec_raw(const std::string& sql) const {
  if (!pg_url_.empty()) {
#if defined(TC_TEST_PG)
    pqxx::connection conn(pg_url_);
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
    return;
#else
    throw std::logic_error("exec_raw on PostgreSQL needs libpqxx");
#endif
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(sqlite_path_.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("cannot open " + sqlite_path_);
  }
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  if (rc != SQLITE_OK) {
    throw std::runtime_error("sqlite: " + message);
  }
}

}  // namespace tc::storage::test
