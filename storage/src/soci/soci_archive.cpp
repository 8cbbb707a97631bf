// SPDX-License-Identifier: Apache-2.0
// SOCI backend (SQLite, ODBC): the archive (tc_archive).
#include <algorithm>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "archive_plan.h"
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

/// Binds a planned statement's values, by reference: `statement` must outlive the query.
void bind(Query& q, const SqlStatement& statement) {
  for (const SqlValue& value : statement.values) {
    std::visit([&q](const auto& v) { q.use(v); }, value);
  }
}

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
                       "SELECT " + kArchiveColumns + " FROM tc_archive" +
                       std::string(ArchivePlan::index_hint(dialect_)) +
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

Result<ArchivedMessage> SociStore::archived_message(std::string_view room_jid,
                                                    std::string_view stanza_id) {
  return guarded("archived_message", [&](soci::session& sql) -> Result<ArchivedMessage> {
    const std::string jid(room_jid);
    const std::string id(stanza_id);
    MessageRow row;
    Query q(sql);
    q.into_row(row).use(jid).use(id).start("SELECT " + kArchiveColumns +
                                           " FROM tc_archive WHERE room_jid = :room AND "
                                           "stanza_id = :id");
    if (!q.fetch()) {
      return make_error_code(Errc::NotFound);
    }
    return row.to_record();
  });
}

Result<void> SociStore::replace_archived_stanza(std::string_view room_jid,
                                                std::string_view stanza_id,
                                                std::string_view stanza_xml, const Fence* fence) {
  return guarded("replace_archived_stanza", [&](soci::session& sql) -> Result<void> {
    const std::string jid(room_jid);
    const std::string id(stanza_id);
    const std::string xml(stanza_xml);
    Transaction tx(sql, dialect_, Transaction::Mode::Write);
    if (fence != nullptr && !holds_fence(sql, *fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    if (Query(sql).use(xml).use(jid).use(id).run(
            "UPDATE tc_archive SET stanza_xml = :xml WHERE room_jid = :room AND stanza_id = :id") ==
        0) {
      return make_error_code(Errc::NotFound);  // rolled back: nothing was written
    }
    tx.commit();
    return {};
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

Result<ArchivePage> SociStore::query_archive(const ArchiveQuery& query) {
  return guarded("query_archive", [&](soci::session& sql) -> Result<ArchivePage> {
    ArchivePlan plan(query, dialect_, kPlaceholders);
    // One read transaction: the probes, the page and the count see the same snapshot.
    Transaction tx(sql, dialect_, Transaction::Mode::Read);
    for (const ArchivePlan::Probe& probe : plan.probes()) {
      long long seq = 0;
      Query q(sql);
      q.into(seq);
      bind(q, probe.statement);
      q.start(probe.statement.text);
      if (auto done =
              plan.resolve(probe, q.fetch() ? std::optional<std::int64_t>(seq) : std::nullopt)) {
        return *done;
      }
    }
    std::vector<ArchivedMessage> messages;
    {
      const SqlStatement page = plan.page();
      MessageRow row;
      Query q(sql);
      q.into_row(row);
      bind(q, page);
      q.start(page.text);
      while (q.fetch()) {
        messages.push_back(row.to_record());
      }
    }
    long long count = 0;
    {
      const SqlStatement statement = plan.count();
      Query q(sql);
      q.into(count);
      bind(q, statement);
      q.start(statement.text);
      q.fetch();
    }
    tx.commit();
    return plan.finish(std::move(messages), count);
  });
}

}  // namespace tc::storage::soci_backend
