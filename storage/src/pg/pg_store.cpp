// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend (see pg_store.h): the connection, the schema, and what the features share.
#include "pg/pg_store.h"

#include <string>
#include <utility>

#include "backends.h"
#include "schema/migrations.h"
#include "schema/postgresql_sql.h"

namespace tc::storage::pg {
namespace {

constexpr schema::Dialect kDialect = schema::Dialect::Postgresql;

template <class Tx>
int read_version(Tx& tx) {
  if (tx.exec("SELECT to_regclass('tc_schema_version') IS NULL")[0][0].template as<bool>()) {
    return 0;
  }
  return tx.exec("SELECT COALESCE(MAX(version), 0) FROM tc_schema_version")[0][0]
      .template as<int>();
}

}  // namespace

ArchivedMessage read_message(const pqxx::row& row) {
  ArchivedMessage m;
  m.seq = row[0].as<long long>();
  m.room_jid = row[1].as<std::string>();
  m.stanza_id = row[2].as<std::string>();
  m.sender_nick = row[3].as<std::string>();
  m.sender_jid = row[4].as<std::string>();
  m.kind = row[5].as<std::string>();
  m.stanza_xml = row[6].as<std::string>();
  m.created_at = row[7].as<long long>();
  return m;
}

std::string text_array(std::span<const std::string> items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"';
    for (const char ch : item) {
      if (ch == '"' || ch == '\\') {
        out += '\\';
      }
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}

bool holds_fence(pqxx::work& tx, const Fence& fence) {
  return !tx.exec_params(
                "SELECT 1 FROM tc_leases WHERE partition = $1 AND holder = $2 AND epoch = $3 "
                "FOR SHARE",
                fence.partition, fence.holder, static_cast<long long>(fence.epoch))
              .empty();
}

PgStore::PgStore(std::string uri)
    : uri_(postgres_uri_with_defaults(std::move(uri), "tcbroker")), redacted_(redact_url(uri_)) {}

Result<int> PgStore::schema_version() {
  return guarded("schema_version", [](pqxx::connection& c) -> Result<int> {
    pqxx::read_transaction tx{c};
    return read_version(tx);
  });
}

Result<void> PgStore::ping() {
  return guarded("ping", [](pqxx::connection& c) -> Result<void> {
    pqxx::nontransaction tx{c};
    tx.exec("SELECT 1");
    return {};
  });
}

Result<void> PgStore::migrate() {
  return guarded("migrate", [this](pqxx::connection& c) -> Result<void> {
    // One transaction per migration, each under the advisory lock, re-reading the version
    // inside it: a second process waits on the lock and then finds nothing left to do.
    for (;;) {
      pqxx::work tx{c};
      tx.exec(std::string(schema::postgresql::kMigrationLock));
      schema::DbState state;
      state.version = read_version(tx);
      for (const auto& row : tx.exec(std::string(schema::list_tables_query(kDialect)))) {
        state.tc_tables.push_back(row[0].as<std::string>());
      }
      if (auto ok = schema::check_state(state, redacted_); !ok) {
        return ok;
      }
      if (state.version >= schema::latest_version()) {
        tx.commit();
        return {};
      }
      const schema::Migration& m = schema::migrations(kDialect)[state.version];
      tx.exec(std::string(schema::bootstrap_statement(kDialect)));
      for (const std::string_view statement : m.statements) {
        tx.exec(std::string(statement));
      }
      tx.exec_params("INSERT INTO tc_schema_version (version, applied_at) VALUES ($1, $2)",
                     m.version, static_cast<long long>(schema::now_millis()));
      tx.commit();
      spdlog::info("storage: {} migrated to schema version {} ({})", redacted_, m.version,
                   m.summary);
    }
  });
}

pqxx::connection& PgStore::connection() {
  if (!conn_) {
    auto conn = std::make_unique<pqxx::connection>(uri_);
    // CREATE TABLE IF NOT EXISTS and friends emit NOTICEs that pqxx would print on stderr.
    pqxx::nontransaction{*conn}.exec("SET client_min_messages TO warning");
    conn->prepare(kAppendName, append_sql());
    conn_ = std::move(conn);
    if (reconnecting_) {
      spdlog::info("storage: reconnected to {}", redacted_);
      reconnecting_ = false;
    }
  }
  return *conn_;
}

void PgStore::drop_connection(std::string_view op, const std::exception& e) {
  if (!reconnecting_) {
    spdlog::warn("storage: {} on {}: connection lost: {}", op, redacted_, e.what());
  }
  reconnecting_ = true;
  conn_.reset();
}

}  // namespace tc::storage::pg

namespace tc::storage {

Result<std::unique_ptr<Store>> open_postgresql_store(std::string uri) {
  auto store = std::make_unique<pg::PgStore>(std::move(uri));
  if (auto ok = store->connect(); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tc::storage
