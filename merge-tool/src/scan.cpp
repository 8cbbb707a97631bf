// SPDX-License-Identifier: Apache-2.0
#include "scan.h"

#include <optional>

#include "budget.h"

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

ByteBudget& ByteBudget::instance() {
  static ByteBudget budget(24 * 1024 * 1024);
  return budget;
}

namespace {

constexpr long long kPieceBytes = 256 * 1024;

int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/// A large stanza of a PostgreSQL tc_archive read in pieces of kPieceBytes (as bytea, hex on the
/// wire), one COPY for all of them. The subquery, fenced by OFFSET 0, detoasts the value once
/// on the server; substring() on bytea then finds each piece directly.
std::string read_large_stanza(Db& side, long long seq, std::size_t bytes) {
  std::string value;
  value.reserve(bytes);
  bool malformed = false;
  const std::string piece = std::to_string(kPieceBytes);
  const std::vector<Param> params = {seq};
  side.stream("SELECT g, substring(v.b FROM g FOR " + piece +
                  ") FROM (SELECT convert_to(stanza_xml, 'UTF8') AS b FROM tc_archive WHERE "
                  "seq = ? OFFSET 0) v, LATERAL generate_series(1, length(v.b), " +
                  piece + ") g",
              params, [&](Row& row) {
                // In order, each piece where the last one ended.
                const std::string_view hex =
                    row.size() == 2 && row[1] ? std::string_view(*row[1]) : std::string_view();
                if (to_int(row[0]) != static_cast<long long>(value.size()) + 1 ||
                    !hex.starts_with("\\x") || hex.size() % 2 != 0) {
                  malformed = true;
                  return false;
                }
                for (std::size_t i = 2; i < hex.size(); i += 2) {
                  const int hi = hex_digit(hex[i]);
                  const int lo = hex_digit(hex[i + 1]);
                  if (hi < 0 || lo < 0) {
                    malformed = true;
                    return false;
                  }
                  value.push_back(static_cast<char>(hi * 16 + lo));
                }
                return true;
              });
  if (malformed || value.size() != bytes) {
    throw DbError(DbFailure::Other, "tc_archive row seq " + std::to_string(seq) +
                                        " changed while its stanza was read in pieces (" +
                                        std::to_string(value.size()) + " of " +
                                        std::to_string(bytes) + " bytes)");
  }
  return value;
}

}  // namespace

void scan_archive(Db& db, std::unique_ptr<Db>& side, const Reconnect& reconnect,
                  std::size_t page_rows, const std::string& room_jid, long long after,
                  const RowSink& sink) {
  const std::vector<Param> where_params = {room_jid, after};
  if (db.dialect() == Dialect::Postgresql && db.driver() == "libpqxx" && reconnect) {
    const std::string large = std::to_string(kLargeValue);
    db.stream(
        "SELECT seq, stanza_id, sender_nick, sender_jid, kind, CASE WHEN octet_length(stanza_xml) "
        ">= " +
            large + " THEN NULL ELSE stanza_xml END, created_at, octet_length(stanza_xml) FROM " +
            "tc_archive WHERE room_jid = ? AND seq > ? ORDER BY seq",
        where_params, [&](Row& row) {
          const long long bytes = row.size() == 8 && row[7] ? to_int(row[7]) : 0;
          row.resize(7);
          if (row[5] || bytes < static_cast<long long>(kLargeValue)) {
            return sink(row);
          }
          BudgetHold hold(static_cast<std::size_t>(bytes));
          if (!side) {
            side = reconnect();
          }
          row[5] = read_large_stanza(*side, to_int(row[0]), static_cast<std::size_t>(bytes));
          const bool more = sink(row);
          row[5].reset();
          return more;
        });
    return;
  }
  scan_rows(db, page_rows, "seq, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at",
            "tc_archive", "room_jid = ? AND seq > ?", where_params, {{"seq", 0, true}},
            [&](Row& row) {
              const std::size_t bytes = row.size() > 5 && row[5] ? row[5]->size() : 0;
              if (bytes < kLargeValue) {
                return sink(row);
              }
              // The driver read it whole and keeps its own copy until the next row (SQLite's
              // query() already holds it from the budget; holding again is free).
              BudgetHold hold(2 * bytes);
              const bool more = sink(row);
              row[5].reset();
              return more;
            });
}

}  // namespace tc::merge
