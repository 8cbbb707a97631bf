// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): users' own data (tc_user_data, schema v5).
#include <string>
#include <vector>

#include "soci/soci_store.h"
#include "user_data_sql.h"

namespace tc::storage::soci_backend {

Result<void> SociStore::apply_user_data(std::span<const UserDataChange> changes) {
  if (changes.empty()) {
    return {};
  }
  return guarded("apply_user_data", [&](soci::session& sql) -> Result<void> {
    const std::string upsert = sql::user_datum_upsert(dialect_, kPlaceholders);
    const std::string remove = sql::user_datum_delete(kPlaceholders);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    for (const UserDataChange& change : changes) {
      Query q(sql);
      q.use(change.owner).use(change.kind).use(change.key);
      if (change.value) {
        q.use(*change.value).run(upsert);
      } else {
        q.run(remove);
      }
    }
    tx.commit();
    return {};
  });
}

Result<std::string> SociStore::get_user_datum(std::string_view owner, std::string_view kind,
                                              std::string_view key) {
  return guarded("get_user_datum", [&](soci::session& sql) -> Result<std::string> {
    const std::string o(owner), k(kind), i(key);
    std::string value;
    Query q(sql);
    q.into(value).use(o).use(k).use(i).start(sql::user_datum_select(kPlaceholders));
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    return value;
  });
}

Result<std::vector<UserDatum>> SociStore::list_user_data(std::string_view owner,
                                                         std::string_view kind,
                                                         std::string_view key_prefix,
                                                         std::size_t limit) {
  return guarded("list_user_data", [&](soci::session& sql) -> Result<std::vector<UserDatum>> {
    const std::string o(owner), k(kind), prefix(key_prefix);
    UserDatum row;
    long long at = 0;
    Query q(sql);
    q.into(row.key).into(row.value).into(at).use(o).use(k);
    if (!prefix.empty()) {
      q.use(prefix);
    }
    q.start(sql::user_data_list(dialect_, kPlaceholders, sql::utf8_length(prefix), limit));
    std::vector<UserDatum> out;
    while (q.fetch()) {
      row.updated_at = at;
      out.push_back(row);
    }
    return out;
  });
}

Result<std::uint64_t> SociStore::count_user_data(std::string_view owner, std::string_view kind) {
  return guarded("count_user_data", [&](soci::session& sql) -> Result<std::uint64_t> {
    const std::string o(owner), k(kind);
    long long n = 0;
    Query q(sql);
    q.into(n).use(o).use(k).start(sql::user_data_count(kPlaceholders));
    q.fetch();
    return static_cast<std::uint64_t>(n);
  });
}

Result<std::uint64_t> SociStore::delete_user_data_of(std::string_view owner) {
  return guarded("delete_user_data_of", [&](soci::session& sql) -> Result<std::uint64_t> {
    const std::string o(owner);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    const long long data = Query(sql).use(o).run("DELETE FROM tc_user_data WHERE owner = :owner");
    const long long archive =
        Query(sql).use(o).run("DELETE FROM tc_archive WHERE room_jid = :owner AND kind = 'chat'");
    tx.commit();
    return static_cast<std::uint64_t>(data + archive);
  });
}

}  // namespace tc::storage::soci_backend
