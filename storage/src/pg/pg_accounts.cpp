// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: accounts (tc_accounts). SCRAM values are stored as base64 text.
#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "codec.h"
#include "pg/pg_store.h"

namespace tc::storage::pg {
namespace {

std::string decode_or_throw(const pqxx::field& field) {
  auto bytes = codec::base64_decode(field.c_str());
  if (!bytes) {
    throw std::runtime_error(std::string("column ") + field.name() + " is not base64");
  }
  return std::move(*bytes);
}

ScramSecret read_secret(const pqxx::row& row, int first) {
  ScramSecret secret;
  secret.salt = decode_or_throw(row[first]);
  secret.iterations = static_cast<std::uint32_t>(row[first + 1].as<long long>());
  secret.stored_key = decode_or_throw(row[first + 2]);
  secret.server_key = decode_or_throw(row[first + 3]);
  return secret;
}

/// A tc_accounts row in columns::kAccountColumns order.
AccountRecord read_account(const pqxx::row& row) {
  AccountRecord account;
  account.username = row[0].as<std::string>();
  account.scram_sha1 = read_secret(row, 1);
  account.scram_sha256 = read_secret(row, 5);
  account.created_at = row[9].as<long long>();
  return account;
}

}  // namespace

Result<void> PgStore::create_account(const AccountRecord& a) {
  return guarded("create_account", [&a](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    tx.exec_params(
        sql::insert("tc_accounts", columns::kAccountColumns, kPlaceholders), a.username,
        codec::base64_encode(a.scram_sha1.salt), static_cast<long long>(a.scram_sha1.iterations),
        codec::base64_encode(a.scram_sha1.stored_key),
        codec::base64_encode(a.scram_sha1.server_key), codec::base64_encode(a.scram_sha256.salt),
        static_cast<long long>(a.scram_sha256.iterations),
        codec::base64_encode(a.scram_sha256.stored_key),
        codec::base64_encode(a.scram_sha256.server_key), static_cast<long long>(a.created_at));
    tx.commit();
    return {};
  });
}

Result<AccountRecord> PgStore::load_account(std::string_view username) {
  return guarded("load_account", [&](pqxx::connection& c) -> Result<AccountRecord> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec_params(
        sql::select_from(columns::kAccounts) + " WHERE username = $1", std::string(username));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    return read_account(rows[0]);
  });
}

Result<void> PgStore::update_account(const AccountRecord& a) {
  return guarded("update_account", [&a](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    const pqxx::result r = tx.exec_params(
        // Every column but the key (the first), numbered from $2.
        "UPDATE tc_accounts SET " +
            sql::assignments(std::span(columns::kAccountColumns).subspan(1), kPlaceholders, 2) +
            " WHERE username = $1",
        a.username, codec::base64_encode(a.scram_sha1.salt),
        static_cast<long long>(a.scram_sha1.iterations),
        codec::base64_encode(a.scram_sha1.stored_key),
        codec::base64_encode(a.scram_sha1.server_key), codec::base64_encode(a.scram_sha256.salt),
        static_cast<long long>(a.scram_sha256.iterations),
        codec::base64_encode(a.scram_sha256.stored_key),
        codec::base64_encode(a.scram_sha256.server_key), static_cast<long long>(a.created_at));
    if (r.affected_rows() == 0) {
      return make_error_code(Errc::NotFound);
    }
    tx.commit();
    return {};
  });
}

Result<void> PgStore::delete_account(std::string_view username) {
  return guarded("delete_account", [&](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    const pqxx::result r =
        tx.exec_params("DELETE FROM tc_accounts WHERE username = $1", std::string(username));
    if (r.affected_rows() == 0) {
      return make_error_code(Errc::NotFound);
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<std::string>> PgStore::list_accounts() {
  return guarded("list_accounts", [](pqxx::connection& c) -> Result<std::vector<std::string>> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec("SELECT username FROM tc_accounts");
    std::vector<std::string> names;
    names.reserve(rows.size());
    for (const auto& row : rows) {
      names.push_back(row[0].as<std::string>());
    }
    // Byte order, whatever the database's collation.
    std::sort(names.begin(), names.end());
    return names;
  });
}

}  // namespace tc::storage::pg
