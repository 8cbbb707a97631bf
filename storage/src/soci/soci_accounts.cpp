// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): accounts (tc_accounts). SCRAM values are stored as base64 text.
#include <algorithm>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "soci/soci_store.h"

namespace tc::storage::soci_backend {
namespace {

/// Bindable copies of the columns: SOCI binds by reference, so every value needs a name.
struct AccountRow {
  std::string username;
  std::string sha1_salt, sha1_stored, sha1_server;
  long long sha1_iterations = 0;
  std::string sha256_salt, sha256_stored, sha256_server;
  long long sha256_iterations = 0;
  long long created_at = 0;

  static AccountRow from(const AccountRecord& a) {
    AccountRow r;
    r.username = a.username;
    r.sha1_salt = codec::base64_encode(a.scram_sha1.salt);
    r.sha1_iterations = a.scram_sha1.iterations;
    r.sha1_stored = codec::base64_encode(a.scram_sha1.stored_key);
    r.sha1_server = codec::base64_encode(a.scram_sha1.server_key);
    r.sha256_salt = codec::base64_encode(a.scram_sha256.salt);
    r.sha256_iterations = a.scram_sha256.iterations;
    r.sha256_stored = codec::base64_encode(a.scram_sha256.stored_key);
    r.sha256_server = codec::base64_encode(a.scram_sha256.server_key);
    r.created_at = a.created_at;
    return r;
  }

  /// In columns::kAccountColumns order; `into` or `use` alike.
  template <class F>
  void each(F&& f) {
    f(username), f(sha1_salt), f(sha1_iterations), f(sha1_stored), f(sha1_server);
    f(sha256_salt), f(sha256_iterations), f(sha256_stored), f(sha256_server), f(created_at);
  }

  AccountRecord to_record() const {
    const auto decode = [](const std::string& text) {
      auto bytes = codec::base64_decode(text);
      if (!bytes) {
        throw std::runtime_error("tc_accounts holds a value that is not base64");
      }
      return std::move(*bytes);
    };
    AccountRecord a;
    a.username = username;
    a.scram_sha1 = {decode(sha1_salt), static_cast<std::uint32_t>(sha1_iterations),
                    decode(sha1_stored), decode(sha1_server)};
    a.scram_sha256 = {decode(sha256_salt), static_cast<std::uint32_t>(sha256_iterations),
                      decode(sha256_stored), decode(sha256_server)};
    a.created_at = created_at;
    return a;
  }
};

}  // namespace

Result<void> SociStore::create_account(const AccountRecord& a) {
  return guarded("create_account", [this, &a](soci::session& sql) -> Result<void> {
    AccountRow row = AccountRow::from(a);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query q(sql);
    row.each([&q](auto& v) { q.use(v); });
    q.run(sql::insert("tc_accounts", columns::kAccountColumns, kPlaceholders));
    tx.commit();
    return {};
  });
}

Result<AccountRecord> SociStore::load_account(std::string_view username) {
  return guarded("load_account", [&](soci::session& sql) -> Result<AccountRecord> {
    const std::string name(username);
    AccountRow row;
    Query q(sql);
    q.into_row(row).use(name).start(sql::select_from(columns::kAccounts) + " WHERE username = :u");
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    return row.to_record();
  });
}

Result<void> SociStore::update_account(const AccountRecord& a) {
  return guarded("update_account", [this, &a](soci::session& sql) -> Result<void> {
    AccountRow row = AccountRow::from(a);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    Query q(sql);
    q.use(row.sha1_salt)
        .use(row.sha1_iterations)
        .use(row.sha1_stored)
        .use(row.sha1_server)
        .use(row.sha256_salt)
        .use(row.sha256_iterations)
        .use(row.sha256_stored)
        .use(row.sha256_server)
        .use(row.created_at)
        .use(row.username);
    const long long n = q.run(
        // Every column but the key (the first), then the key.
        "UPDATE tc_accounts SET " +
        sql::assignments(std::span(columns::kAccountColumns).subspan(1), kPlaceholders) +
        " WHERE username = :u");
    if (n == 0) {
      return make_error_code(Errc::NotFound);
    }
    tx.commit();
    return {};
  });
}

Result<void> SociStore::delete_account(std::string_view username) {
  return guarded("delete_account", [&](soci::session& sql) -> Result<void> {
    const std::string name(username);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (Query(sql).use(name).run("DELETE FROM tc_accounts WHERE username = :u") == 0) {
      return make_error_code(Errc::NotFound);
    }
    tx.commit();
    return {};
  });
}

Result<std::vector<std::string>> SociStore::list_accounts() {
  return guarded("list_accounts", [](soci::session& sql) -> Result<std::vector<std::string>> {
    std::string name;
    Query q(sql);
    q.into(name).start("SELECT username FROM tc_accounts");
    std::vector<std::string> names;
    while (q.fetch()) {
      names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  });
}

}  // namespace tc::storage::soci_backend
