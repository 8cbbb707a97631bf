// SPDX-License-Identifier: Apache-2.0
#include "scan.h"

#include <optional>

namespace tc::merge {

void scan_rows(Db& db, std::size_t page_rows, const std::string& columns, const std::string& from,
               const std::string& where, const std::vector<Param>& where_params,
               const std::vector<ScanKey>& keys, const RowSink& sink) {
  std::string order;
  for (const auto& k : keys) {
    order += (order.empty() ? "" : ", ") + k.column;
  }
  const std::string base = "SELECT " + columns + " FROM " + from;
  if (db.dialect() == Dialect::Postgresql && db.driver() == "libpqxx") {
    db.stream(base + (where.empty() ? "" : " WHERE " + where) + " ORDER BY " + order, where_params,
              sink);
    return;
  }
  std::optional<std::vector<Param>> last;
  for (;;) {
    std::string sql = base + " WHERE " + (where.empty() ? "1 = 1" : "(" + where + ")");
    std::vector<Param> params = where_params;
    if (last) {
      std::string cond;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        std::string term;
        for (std::size_t j = 0; j < i; ++j) {
          term += keys[j].column + " = ? AND ";
          params.push_back((*last)[j]);
        }
        term += keys[i].column + " > ?";
        params.push_back((*last)[i]);
        cond += (cond.empty() ? "(" : " OR (") + term + ")";
      }
      sql += " AND (" + cond + ")";
    }
    sql += " ORDER BY " + order + db.limit_clause(static_cast<long long>(page_rows));
    std::size_t rows = 0;
    bool stop = false;
    db.query(sql, params, [&](Row& row) {
      ++rows;
      std::vector<Param> key;
      for (const ScanKey& k : keys) {
        const Value& v = row[k.index];
        key.push_back(k.integer ? Param{to_int(v)} : Param{v.value_or(std::string())});
      }
      last = std::move(key);
      if (!sink(row)) {
        stop = true;
        return false;
      }
      return true;
    });
    if (stop || rows < page_rows) {
      return;
    }
  }
}

}  // namespace tc::merge
