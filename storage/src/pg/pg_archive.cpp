// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: the archive (tc_archive).
#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "codec.h"
#include "pg/pg_store.h"

namespace tc::storage::pg {
namespace {

// The filter of query_archive's page and count: $1 room, $2/$3 created_at range, $4 nick
// ('' = any), $5 include presence, $6/$7 exclusive seq range. Parameters are bound per
// execution (unnamed statements), so the planner folds the neutral values away. The row
// comparisons can only be served by (room_jid, seq), so the planner walks that one room's range
// instead of the primary key's range of every room.
constexpr const char* kArchiveFilter =
    " WHERE room_jid = $1 AND (room_jid, seq) > ($1, $6) AND (room_jid, seq) < ($1, $7)"
    " AND created_at >= $2 AND created_at <= $3"
    " AND ($4::text = '' OR sender_nick = $4)"
    " AND ($5::boolean OR kind NOT IN ('join', 'leave'))";

bool same_fence(const Fence& a, const Fence& b) {
  return a.partition == b.partition && a.holder == b.holder && a.epoch == b.epoch;
}

}  // namespace

const std::string& archive_columns() {
  static const std::string columns = columns::list(columns::kArchiveColumns);
  return columns;
}

const std::string& append_sql() {
  static const std::string text =
      sql::insert("tc_archive", columns::kArchiveInsertColumns, kPlaceholders) + " RETURNING seq";
  return text;
}

Result<std::vector<std::int64_t>> PgStore::append_messages(std::span<const NewMessage> batch) {
  if (batch.empty()) {
    return std::vector<std::int64_t>{};
  }
  return guarded(
      "append_messages", [batch](pqxx::connection& c) -> Result<std::vector<std::int64_t>> {
        std::vector<std::int64_t> seqs;
        seqs.reserve(batch.size());
        // Group commit: one transaction (one WAL flush) for the whole batch; a
        // duplicate stanza id aborts all of it.
        pqxx::work tx{c};
        // Each distinct fence of the batch once, before anything is written.
        std::vector<const Fence*> checked;
        for (const NewMessage& m : batch) {
          if (!m.fence || std::any_of(checked.begin(), checked.end(),
                                      [&m](const Fence* f) { return same_fence(*f, *m.fence); })) {
            continue;
          }
          if (!holds_fence(tx, *m.fence)) {
            return make_error_code(Errc::StaleEpoch);
          }
          checked.push_back(&*m.fence);
        }
        for (const NewMessage& m : batch) {
          const pqxx::result r =
              tx.exec_prepared(kAppendName, m.room_jid, m.stanza_id, m.sender_nick, m.sender_jid,
                               m.kind, m.stanza_xml, static_cast<long long>(m.created_at));
          seqs.push_back(r.at(0)[0].as<long long>());
        }
        tx.commit();
        return seqs;
      });
}

Result<std::vector<ArchivedMessage>> PgStore::recent_messages(std::string_view room_jid,
                                                              std::size_t max) {
  return guarded(
      "recent_messages", [&](pqxx::connection& c) -> Result<std::vector<ArchivedMessage>> {
        pqxx::read_transaction tx{c};
        const pqxx::result rows =
            tx.exec_params("SELECT " + archive_columns() +
                               " FROM tc_archive WHERE room_jid = $1 AND kind NOT IN ('join', "
                               "'leave') ORDER BY seq DESC LIMIT $2",
                           std::string(room_jid), static_cast<long long>(max));
        std::vector<ArchivedMessage> out;
        out.reserve(rows.size());
        for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
          out.push_back(read_message(*it));
        }
        return out;
      });
}

Result<std::uint64_t> PgStore::purge_archive(std::string_view room_jid, UnixMillis before) {
  return guarded("purge_archive", [&](pqxx::connection& c) -> Result<std::uint64_t> {
    pqxx::work tx{c};
    const pqxx::result r = tx.exec_params(
        "DELETE FROM tc_archive WHERE created_at < $2 AND "
        "($1::text = '' OR room_jid = $1)",
        std::string(room_jid), static_cast<long long>(before));
    tx.commit();
    return static_cast<std::uint64_t>(r.affected_rows());
  });
}

Result<std::uint64_t> PgStore::count_messages(std::string_view room_jid) {
  return guarded("count_messages", [&](pqxx::connection& c) -> Result<std::uint64_t> {
    pqxx::read_transaction tx{c};
    const pqxx::result r =
        tx.exec_params("SELECT COUNT(*) FROM tc_archive WHERE ($1::text = '' OR room_jid = $1)",
                       std::string(room_jid));
    return static_cast<std::uint64_t>(r[0][0].as<long long>());
  });
}

Result<ArchivePage> PgStore::query_archive(const ArchiveQuery& q) {
  return guarded("query_archive", [&q](pqxx::connection& c) -> Result<ArchivePage> {
    codec::ArchiveBounds b = codec::archive_bounds(q);
    // One snapshot for the cursor lookups, the page and the count.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx{c};
    const auto seq_of = [&](const std::string& sql, const auto& value) {
      const pqxx::result r = tx.exec_params(sql, q.room_jid, value);
      return r.empty() ? std::optional<std::int64_t>{}
                       : std::optional<std::int64_t>{r[0][0].as<long long>()};
    };
    constexpr const char* kById =
        "SELECT seq FROM tc_archive WHERE room_jid = $1 AND stanza_id = $2";
    if (q.after_id) {
      const auto seq = seq_of(kById, *q.after_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.after_seq = *seq;
    }
    if (q.before_id && !q.before_id->empty()) {
      const auto seq = seq_of(kById, *q.before_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.before_seq = *seq;
    }
    // A time window becomes a seq range with one index probe per end, so paging from `start`
    // never walks the room's older messages. Exact as long as created_at does not go backwards
    // within a room (the broker stamps a room's messages on the one node that hosts it).
    ArchivePage page;
    codec::ArchiveBounds window = codec::archive_bounds(q);  // no cursors: for the count
    if (q.start) {
      const auto first = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = $1 AND created_at >= $2 "
          "ORDER BY created_at, seq LIMIT 1",
          static_cast<long long>(*q.start));
      if (!first) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.after_seq = *first - 1;
      b.after_seq = std::max(b.after_seq, window.after_seq);
    }
    if (q.end) {
      const auto last = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = $1 AND created_at <= $2 "
          "ORDER BY created_at DESC, seq DESC LIMIT 1",
          static_cast<long long>(*q.end));
      if (!last) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.before_seq = *last + 1;
      b.before_seq = std::min(b.before_seq, window.before_seq);
    }
    // Fetch one more than asked for to learn whether the page is the last one.
    const pqxx::result rows =
        tx.exec_params("SELECT " + archive_columns() + " FROM tc_archive" + kArchiveFilter +
                           " ORDER BY seq " + (b.backward ? "DESC" : "ASC") + " LIMIT $8",
                       q.room_jid, static_cast<long long>(b.start), static_cast<long long>(b.end),
                       q.with_nick, q.include_presence, static_cast<long long>(b.after_seq),
                       static_cast<long long>(b.before_seq), static_cast<long long>(q.max + 1));
    page.complete = rows.size() <= q.max;
    const std::size_t n = std::min<std::size_t>(rows.size(), q.max);
    page.messages.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      page.messages.push_back(read_message(rows[static_cast<pqxx::result::size_type>(i)]));
    }
    if (b.backward) {
      std::reverse(page.messages.begin(), page.messages.end());
    }
    // The count ignores the cursors: it is the size of the whole result set (XEP-0059).
    const pqxx::result count = tx.exec_params(
        std::string("SELECT COUNT(*) FROM (SELECT 1 FROM tc_archive") + kArchiveFilter +
            " LIMIT $8) AS window_rows",
        q.room_jid, static_cast<long long>(window.start), static_cast<long long>(window.end),
        q.with_nick, q.include_presence, static_cast<long long>(window.after_seq),
        static_cast<long long>(window.before_seq), static_cast<long long>(codec::kMaxCount + 1));
    if (const auto matching = static_cast<std::size_t>(count[0][0].as<long long>());
        matching <= codec::kMaxCount) {
      page.count = matching;
    }
    return page;
  });
}

}  // namespace tc::storage::pg
