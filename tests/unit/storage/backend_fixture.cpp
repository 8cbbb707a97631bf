// SPDX-License-Identifier: Apache-2.0
#include "backend_fixture.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

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
        // Its initial database is the first test's (see fresh_database_name()).
        tc::test::PgLauncherOptions options;
        options.database = "t1";
        launcher_ = std::make_unique<tc::test::PgLauncher>(options);
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
PostgresEnvironment* const g_postgres =
    static_cast<PostgresEnvironment*>(::testing::AddGlobalTestEnvironment(new PostgresEnvironment));

std::filesystem::path make_temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path() / "tc-store-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  return templ;
}

/// t1, t2, ... in this process; t1 is the launcher's initial database, so it exists already.
/// With an external server (TC_TEST_PG_URL) the pid keeps concurrent test processes apart.
std::pair<std::string, bool> fresh_database_name(bool external) {
  static std::atomic<int> counter{0};
  const int n = ++counter;
  if (external) {
    return {"tc_test_" + std::to_string(::getpid()) + "_" + std::to_string(n), true};
  }
  return {"t" + std::to_string(n), n != 1};
}

/// TC_TEST_PG_URL: a server someone else runs (e.g. one `tc-test-pg` for a whole CI job), given
/// as the URL of a database whose user may CREATE DATABASE. Saves a server start per test process.
const char* external_postgresql() {
  const char* url = std::getenv("TC_TEST_PG_URL");
  return url != nullptr && *url != '\0' ? url : nullptr;
}

/// `url` with its database name replaced by `database` (postgresql://user@host:port/db?params).
std::string with_database(std::string_view url, std::string_view database) {
  const auto authority = url.find("://");
  const auto slash = url.find('/', authority == std::string_view::npos ? 0 : authority + 3);
  if (slash == std::string_view::npos) {
    return std::string(url) + "/" + std::string(database);
  }
  const auto query = url.find('?', slash);
  return std::string(url.substr(0, slash + 1)) + std::string(database) +
         (query == std::string_view::npos ? "" : std::string(url.substr(query)));
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

tc::test::PgLauncher* shared_postgresql(std::string* why) {
  return g_postgres->get(why);
}

TestDatabase::TestDatabase(Backend backend) : backend_(backend) {
  if (uses_postgresql(backend)) {
    const char* external = external_postgresql();
    std::string name;
    std::string host = "127.0.0.1";
    std::string user = "postgres";
    int port = 0;
    if (external != nullptr) {
#if defined(TC_TEST_PG)
      name = fresh_database_name(true).first;
      pqxx::connection admin(external);
      pqxx::nontransaction(admin).exec("CREATE DATABASE " + name);
      pg_url_ = with_database(external, name);
      host = admin.hostname() != nullptr ? admin.hostname() : "127.0.0.1";
      user = admin.username() != nullptr ? admin.username() : "postgres";
      port = std::atoi(admin.port() != nullptr ? admin.port() : "5432");
#endif
    } else {
      std::string why;
      tc::test::PgLauncher* pg = shared_postgresql(&why);
      if (pg == nullptr) {
        problem_ = "PostgreSQL could not be started: " + why;
        return;
      }
      bool create = false;
      std::tie(name, create) = fresh_database_name(false);
      if (create) {
        pg->create_database(name);
      }
      pg_url_ = pg->url(name);
      port = pg->port();
    }
    // ODBC: psqlODBC's Unicode driver on the same database; the dialect is detected.
    url_ = backend == Backend::Postgresql ? pg_url_
                                          : "odbc://DRIVER={PostgreSQL Unicode};Server=" + host +
                                                ";Port=" + std::to_string(port) +
                                                ";Database=" + name + ";Uid=" + user + ";Pwd=;";
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
