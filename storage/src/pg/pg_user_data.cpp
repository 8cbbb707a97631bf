// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: users' own data (tc_user_data, schema v5).
#include <string>
#include <vector>

#include "pg/pg_store.h"
#include "user_data_sql.h"

namespace tc::storage::pg {

Result<void> PgStore::apply_user_data(std::span<const UserDataChange> changes) {
  if (changes.empty()) {
    return {};
  }
  return guarded("apply_user_data", [changes](pqxx::connection& c) -> Result<void> {
    static const std::string upsert =
        sql::user_datum_upsert(schema::Dialect::Postgresql, kPlaceholders);
    static const std::string remove = sql::user_datum_delete(kPlaceholders);
    pqxx::work tx{c};
    for (const UserDataChange& change : changes) {
      if (change.value) {
        tx.exec_params(upsert, change.owner, change.kind, change.key, *change.value);
      } else {
        tx.exec_params(remove, change.owner, change.kind, change.key);
      }
    }
    tx.commit();
    return {};
  });
}

Result<std::string> PgStore::get_user_datum(std::string_view owner, std::string_view kind,
                                            std::string_view key) {
  return guarded("get_user_datum", [&](pqxx::connection& c) -> Result<std::string> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows =
        tx.exec_params(sql::user_datum_select(kPlaceholders), std::string(owner), std::string(kind),
                       std::string(key));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    return rows[0][0].as<std::string>();
  });
}

Result<std::vector<UserDatum>> PgStore::list_user_data(std::string_view owner,
                                                       std::string_view kind,
                                                       std::string_view key_prefix,
                                                       std::size_t limit) {
  return guarded("list_user_data", [&](pqxx::connection& c) -> Result<std::vector<UserDatum>> {
    const std::string text = sql::user_data_list(schema::Dialect::Postgresql, kPlaceholders,
                                                 sql::utf8_length(key_prefix), limit);
    pqxx::read_transaction tx{c};
    const pqxx::result rows =
        key_prefix.empty()
            ? tx.exec_params(text, std::string(owner), std::string(kind))
            : tx.exec_params(text, std::string(owner), std::string(kind), std::string(key_prefix));
    std::vector<UserDatum> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<long long>()});
    }
    return out;
  });
}

Result<std::uint64_t> PgStore::count_user_data(std::string_view owner, std::string_view kind) {
  return guarded("count_user_data", [&](pqxx::connection& c) -> Result<std::uint64_t> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows =
        tx.exec_params(sql::user_data_count(kPlaceholders), std::string(owner), std::string(kind));
    return static_cast<std::uint64_t>(rows[0][0].as<long long>());
  });
}

Result<std::uint64_t> PgStore::delete_user_data_of(std::string_view owner) {
  return guarded("delete_user_data_of", [&](pqxx::connection& c) -> Result<std::uint64_t> {
    const std::string o(owner);
    pqxx::work tx{c};
    const auto data = tx.exec_params("DELETE FROM tc_user_data WHERE owner = $1", o);
    const auto archive =
        tx.exec_params("DELETE FROM tc_archive WHERE room_jid = $1 AND kind = 'chat'", o);
    tx.commit();
    return static_cast<std::uint64_t>(data.affected_rows() + archive.affected_rows());
  });
}

}  // namespace tc::storage::pg
