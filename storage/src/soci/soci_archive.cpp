// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): the archive (tc_archive).
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

const std::string kArchiveColumns = columns::list(columns::kArchiveColumns);

/// A tc_archive row in columns::kArchiveColumns order.
struct MessageRow {
  long long seq = 0;
  std::string room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml;
  long long created_at = 0;

  template <class F>
  void each(F&& f) {
    f(seq), f(room_jid), f(stanza_id), f(sender_nick), f(sender_jid), f(kind), f(stanza_xml);
    f(created_at);
  }

  ArchivedMessage to_record() const {
    return {seq, room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at};
  }
};

}  // namespace

Result<std::vector<std::int64_t>> SociStore::append_messages(std::span<const NewMessage> batch) {
  if (batch.empty()) {
    return std::vector<std::int64_t>{};
  }
  return guarded(
      "append_messages", [this, batch](soci::session& sql) -> Result<std::vector<std::int64_t>> {
        std::vector<std::int64_t> seqs;
        seqs.reserve(batch.size());
        // Group commit: one transaction (one fsync) for the whole batch.
        Transaction tx(sql, dialect_, Transaction::Mode::Write);
        if (!holds_fences(sql, batch)) {
          return make_error_code(Errc::StaleEpoch);
        }
        MessageRow row;
        Query insert(sql);
        insert.use(row.room_jid)
            .use(row.stanza_id)
            .use(row.sender_nick)
            .use(row.sender_jid)
            .use(row.kind)
            .use(row.stanza_xml)
            .use(row.created_at);
        std::string text = sql::insert("tc_archive", columns::kArchiveInsertColumns, kPlaceholders);
        if (dialect_ == Dialect::Postgresql) {
          insert.into(row.seq);
          text += " RETURNING seq";
        }
        bool first = true;
        for (const NewMessage& m : batch) {
          row.room_jid = m.room_jid;
          row.stanza_id = m.stanza_id;
          row.sender_nick = m.sender_nick;
          row.sender_jid = m.sender_jid;
          row.kind = m.kind;
          row.stanza_xml = m.stanza_xml;
          row.created_at = m.created_at;
          // The statement is prepared once and executed per message.
          if (dialect_ == Dialect::Postgresql) {
            if (first) {
              insert.start(text);
            } else {
              insert.restart();
            }
            if (!insert.fetch()) {
              throw std::runtime_error("INSERT ... RETURNING returned no row");
            }
          } else {
            if (first) {
              insert.run(text);
            } else {
              insert.rerun();
            }
            sql << "SELECT last_insert_rowid()", soci::into(row.seq);
          }
          first = false;
          seqs.push_back(row.seq);
        }
        tx.commit();
        return seqs;
      });
}

Result<std::vector<ArchivedMessage>> SociStore::recent_messages(std::string_view room_jid,
                                                                std::size_t max) {
  return guarded("recent_messages",
                 [&](soci::session& sql) -> Result<std::vector<ArchivedMessage>> {
                   const std::string jid(room_jid);
                   const long long limit = static_cast<long long>(max);
                   MessageRow row;
                   Query q(sql);
                   q.into_row(row).use(jid).use(limit).start(
                       "SELECT " + kArchiveColumns + " FROM tc_archive" + archive_index_hint() +
                       " WHERE room_jid = :room AND kind NOT IN ('join', 'leave') "
                       "ORDER BY seq DESC LIMIT :lim");
                   std::vector<ArchivedMessage> out;
                   while (q.fetch()) {
                     out.push_back(row.to_record());
                   }
                   std::reverse(out.begin(), out.end());
                   return out;
                 });
}

Result<std::uint64_t> SociStore::purge_archive(std::string_view room_jid, UnixMillis before) {
  return guarded("purge_archive", [&](soci::session& sql) -> Result<std::uint64_t> {
    const std::string jid(room_jid);
    const long long cutoff = before;
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    long long n = 0;
    if (jid.empty()) {
      n = Query(sql).use(cutoff).run("DELETE FROM tc_archive WHERE created_at < :before");
    } else {
      n = Query(sql).use(jid).use(cutoff).run(
          "DELETE FROM tc_archive WHERE room_jid = :room AND created_at < :before");
    }
    tx.commit();
    return static_cast<std::uint64_t>(n);
  });
}

Result<std::uint64_t> SociStore::count_messages(std::string_view room_jid) {
  return guarded("count_messages", [&](soci::session& sql) -> Result<std::uint64_t> {
    const std::string jid(room_jid);
    long long n = 0;
    Query q(sql);
    q.into(n);
    if (jid.empty()) {
      q.start("SELECT COUNT(*) FROM tc_archive");
    } else {
      q.use(jid).start("SELECT COUNT(*) FROM tc_archive WHERE room_jid = :room");
    }
    q.fetch();
    return static_cast<std::uint64_t>(n);
  });
}

/// holds_fence() for each distinct fence of the batch.
bool SociStore::holds_fences(soci::session& sql, std::span<const NewMessage> batch) const {
  std::vector<const Fence*> checked;
  for (const NewMessage& m : batch) {
    if (!m.fence || std::any_of(checked.begin(), checked.end(), [&m](const Fence* f) {
          return f->partition == m.fence->partition && f->holder == m.fence->holder &&
                 f->epoch == m.fence->epoch;
        })) {
      continue;
    }
    if (!holds_fence(sql, *m.fence)) {
      return false;
    }
    checked.push_back(&*m.fence);
  }
  return true;
}

/// Without ANALYZE statistics SQLite may walk the rowid (seq) range of every room instead of
/// the (room_jid, seq) index; pin the index so paging stays one range scan per room.
std::string SociStore::archive_index_hint() const {
  return dialect_ == Dialect::Sqlite ? " INDEXED BY tc_archive_room_seq" : "";
}

SociStore::FilterValues SociStore::filter_values(const ArchiveQuery& query,
                                                 const codec::ArchiveBounds& b) {
  return {query.room_jid,
          b.after_seq,
          b.before_seq,
          b.start,
          b.end,
          query.with_nick,
          query.include_presence ? 1 : 0};
}

/// The WHERE clause of query_archive's page and count. Placeholders are written :name for
/// SOCI, each name once: values are bound by position (bind_filter()), and SQLite gives a
/// repeated name a single slot. CAST() rather than ::type keeps the text valid in both
/// dialects. PostgreSQL gets row comparisons, which only the (room_jid, seq) index can serve
/// (see pg_store.cpp); SQLite plans them badly and is pinned by INDEXED BY instead.
std::string SociStore::archive_filter() const {
  const char* seq_range = dialect_ == Dialect::Postgresql
                              ? " AND (room_jid, seq) > (:room2, :after)"
                                " AND (room_jid, seq) < (:room3, :before)"
                              : " AND seq > :after AND seq < :before";
  return std::string(" WHERE room_jid = :room") + seq_range +
         " AND created_at >= :start AND created_at <= :end"
         " AND (CAST(:nick1 AS TEXT) = '' OR sender_nick = :nick2)"
         " AND (CAST(:presence AS INTEGER) = 1 OR kind NOT IN ('join', 'leave'))";
}

void SociStore::bind_filter(Query& q, const FilterValues& v) const {
  q.use(v.room);
  if (dialect_ == Dialect::Postgresql) {
    q.use(v.room).use(v.after).use(v.room).use(v.before);
  } else {
    q.use(v.after).use(v.before);
  }
  q.use(v.start).use(v.end).use(v.nick).use(v.nick).use(v.presence);
}

Result<ArchivePage> SociStore::query_archive(const ArchiveQuery& query) {
  return guarded("query_archive", [&](soci::session& sql) -> Result<ArchivePage> {
    codec::ArchiveBounds b = codec::archive_bounds(query);
    // One read transaction: the cursors, the page and the count see the same snapshot.
    Transaction tx(sql, dialect_, Transaction::Mode::Read);
    const auto seq_of = [&](const std::string& text, const auto& value) {
      long long seq = 0;
      Query q(sql);
      q.into(seq).use(query.room_jid).use(value).start(text);
      return q.fetch() ? std::optional<std::int64_t>{seq} : std::nullopt;
    };
    const std::string by_id =
        "SELECT seq FROM tc_archive WHERE room_jid = :room AND stanza_id = :id";
    if (query.after_id) {
      const auto seq = seq_of(by_id, *query.after_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.after_seq = *seq;
    }
    if (query.before_id && !query.before_id->empty()) {
      const auto seq = seq_of(by_id, *query.before_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.before_seq = *seq;
    }
    // The time window as a seq range, one index probe per end; see PgStore::query_archive.
    ArchivePage page;
    codec::ArchiveBounds window = codec::archive_bounds(query);  // no cursors: for the count
    if (query.start) {
      const long long start = *query.start;
      const auto first = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = :room AND created_at >= :start "
          "ORDER BY created_at, seq LIMIT 1",
          start);
      if (!first) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.after_seq = *first - 1;
      b.after_seq = std::max(b.after_seq, window.after_seq);
    }
    if (query.end) {
      const long long end = *query.end;
      const auto last = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = :room AND created_at <= :end "
          "ORDER BY created_at DESC, seq DESC LIMIT 1",
          end);
      if (!last) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.before_seq = *last + 1;
      b.before_seq = std::min(b.before_seq, window.before_seq);
    }

    // One more row than asked for tells whether this is the last page in that direction.
    const long long limit = static_cast<long long>(query.max) + 1;
    const FilterValues page_values = filter_values(query, b);
    MessageRow row;
    Query page_query(sql);
    page_query.into_row(row);
    bind_filter(page_query, page_values);
    page_query.use(limit).start("SELECT " + kArchiveColumns + " FROM tc_archive" +
                                archive_index_hint() + archive_filter() + " ORDER BY seq " +
                                (b.backward ? "DESC" : "ASC") + " LIMIT :lim");
    std::size_t fetched = 0;
    while (page_query.fetch()) {
      if (++fetched <= query.max) {
        page.messages.push_back(row.to_record());
      }
    }
    page.complete = fetched <= query.max;
    if (b.backward) {
      std::reverse(page.messages.begin(), page.messages.end());
    }

    // The count ignores the cursors (XEP-0059) and stops at kMaxCount.
    long long count = 0;
    const long long count_limit = static_cast<long long>(codec::kMaxCount) + 1;
    const FilterValues count_values = filter_values(query, window);
    Query count_query(sql);
    count_query.into(count);
    bind_filter(count_query, count_values);
    count_query.use(count_limit)
        .start(std::string("SELECT COUNT(*) FROM (SELECT 1 FROM tc_archive") +
               archive_index_hint() + archive_filter() + " LIMIT :lim) AS window_rows");
    count_query.fetch();
    if (static_cast<std::size_t>(count) <= codec::kMaxCount) {
      page.count = static_cast<std::size_t>(count);
    }
    tx.commit();
    return page;
  });
}

}  // namespace tc::storage::soci_backend
