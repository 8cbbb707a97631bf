// SPDX-License-Identifier: Apache-2.0
// query_archive() planned once for every backend: the plan turns an ArchiveQuery (filters,
// before/after cursors, the time window, the page size and direction) into SQL text and bind
// values; a backend only binds, executes and reads rows. The backend runs the whole plan in one
// read transaction so that the probes, the page and the count see one snapshot:
//
//   ArchivePlan plan(query, dialect, placeholders);
//   for (const ArchivePlan::Probe& probe : plan.probes()) {
//     if (auto done = plan.resolve(probe, <seq from probe.statement, or nullopt for no row>)) {
//       return *done;
//     }
//   }
//   rows  = <run plan.page(): kArchiveColumns rows, in order>
//   count = <run plan.count(): one BIGINT>
//   return plan.finish(rows, count);
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "storage/records.h"

#include "schema/migrations.h"
#include "sql_text.h"

namespace tc::storage {

/// A bind value: text or a 64-bit integer.
using SqlValue = std::variant<std::string, long long>;

/// SQL text and its bind values, one per placeholder, in placeholder order. Each placeholder
/// appears once, so SOCI's positional binding and libpq's numbering agree.
struct SqlStatement {
  std::string text;
  std::vector<SqlValue> values;
};

class ArchivePlan {
 public:
  /// query_archive() reports ArchivePage::count only up to this many matches: counting is a
  /// scan of the whole window, and a client paging a million-message room must not pay for it
  /// on every page. Beyond the cap the count is left empty (XEP-0059 makes it optional).
  static constexpr std::size_t kMaxCount = 10000;

  /// A lookup the page depends on: one row of one BIGINT (a seq), or no row.
  struct Probe {
    enum class Kind {
      AfterId,         ///< the seq of the after cursor; no row: Errc::NotFound
      BeforeId,        ///< the seq of the before cursor; no row: Errc::NotFound
      WindowAfterId,   ///< the seq of window_after_id; no row: Errc::NotFound
      WindowBeforeId,  ///< the seq of window_before_id; no row: Errc::NotFound
      Start,           ///< the first seq at or after `start`; no row: the window is empty
      End,             ///< the last seq at or before `end`; no row: the window is empty
    };
    Kind kind;
    SqlStatement statement;
  };

  /// `query` must outlive the plan.
  ArchivePlan(const ArchiveQuery& query, schema::Dialect dialect, sql::Placeholders placeholders);

  /// The probes this query needs, in the order they are to be resolved.
  const std::vector<Probe>& probes() const { return probes_; }

  /// Records the answer to `probe`. Returns the query's whole result when that answer decides
  /// it: Errc::NotFound for an unknown cursor, an empty complete page for an empty window.
  std::optional<Result<ArchivePage>> resolve(const Probe& probe, std::optional<std::int64_t> seq);

  /// Every tc_archive column (columns::kArchiveColumns order) of at most max + 1 messages, in
  /// paging order: the extra row tells whether the page is the last in that direction.
  SqlStatement page() const;

  /// One BIGINT: how many messages match, ignoring the cursors (XEP-0059), at most
  /// kMaxCount + 1.
  SqlStatement count() const;

  /// The page from page()'s rows, as fetched, and count()'s value.
  ArchivePage finish(std::vector<ArchivedMessage> rows, long long count) const;

  /// " INDEXED BY ..." for SQLite (without ANALYZE statistics it may walk the rowid (seq) range
  /// of every room instead of the (room_jid, seq) index), "" for PostgreSQL. Follows "FROM
  /// tc_archive" in queries that page one room by seq.
  static std::string_view index_hint(schema::Dialect dialect);

 private:
  /// Filter bounds with every optional filled in with a neutral value, so that one statement
  /// text serves every query: seq > after_seq AND seq < before_seq AND created_at BETWEEN
  /// start AND end (and sender_jid = with_jid when that is set).
  struct Bounds {
    std::int64_t after_seq = 0;  // seqs start at 1
    std::int64_t before_seq = std::numeric_limits<std::int64_t>::max();
    UnixMillis start = std::numeric_limits<UnixMillis>::min();
    UnixMillis end = std::numeric_limits<UnixMillis>::max();
  };

  SqlStatement select(std::string_view what, const Bounds& bounds, std::string_view order,
                      long long limit) const;

  const ArchiveQuery& query_;
  schema::Dialect dialect_;
  sql::Placeholders placeholders_;
  bool backward_;  // page from the newest end (RSM <before/>)
  std::vector<Probe> probes_;
  Bounds page_;    // the cursors and the window: what the page reads
  Bounds window_;  // the window only: what the count counts
};

}  // namespace tc::storage
