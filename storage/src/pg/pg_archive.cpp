// SPDX-License-Identifier: Apache-2.0
// PostgreSQL backend: the archive (tc_archive).
#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "archive_plan.h"
#include "pg/pg_store.h"

namespace tc::storage::pg {
namespace {

/// Runs a planned statement. libpq sends every value as text, as pqxx does for its own
/// parameters; the server infers each type from where the placeholder stands.
pqxx::result exec(pqxx::transaction_base& tx, const SqlStatement& statement) {
  std::vector<std::string> values;
  values.reserve(statement.values.size());
  for (const SqlValue& value : statement.values) {
    if (const auto* text = std::get_if<std::string>(&value)) {
      values.push_back(*text);
    } else {
      values.push_back(std::to_string(std::get<long long>(value)));
    }
  }
  return tx.exec_params(statement.text, pqxx::prepare::make_dynamic_params(values));
}

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

Result<ArchivedMessage> PgStore::archived_message(std::string_view room_jid,
                                                  std::string_view stanza_id) {
  return guarded("archived_message", [&](pqxx::connection& c) -> Result<ArchivedMessage> {
    pqxx::read_transaction tx{c};
    const pqxx::result rows = tx.exec_params(
        "SELECT " + archive_columns() + " FROM tc_archive WHERE room_jid = $1 AND stanza_id = $2",
        std::string(room_jid), std::string(stanza_id));
    if (rows.empty()) {
      return make_error_code(Errc::NotFound);
    }
    return read_message(rows[0]);
  });
}

Result<void> PgStore::replace_archived_stanza(std::string_view room_jid, std::string_view stanza_id,
                                              std::string_view stanza_xml, const Fence* fence) {
  return guarded("replace_archived_stanza", [&](pqxx::connection& c) -> Result<void> {
    pqxx::work tx{c};
    if (fence != nullptr && !holds_fence(tx, *fence)) {
      return make_error_code(Errc::StaleEpoch);
    }
    const pqxx::result r = tx.exec_params(
        "UPDATE tc_archive SET stanza_xml = $3 WHERE room_jid = $1 AND stanza_id = $2",
        std::string(room_jid), std::string(stanza_id), std::string(stanza_xml));
    if (r.affected_rows() == 0) {
      return make_error_code(Errc::NotFound);  // tx aborts: nothing was written
    }
    tx.commit();
    return {};
  });
}

Result<ArchivePage> PgStore::query_archive(const ArchiveQuery& q) {
  return guarded("query_archive", [&q](pqxx::connection& c) -> Result<ArchivePage> {
    ArchivePlan plan(q, schema::Dialect::Postgresql, kPlaceholders);
    // One snapshot for the probes, the page and the count.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx{c};
    for (const ArchivePlan::Probe& probe : plan.probes()) {
      const pqxx::result r = exec(tx, probe.statement);
      const auto seq =
          r.empty() ? std::nullopt : std::optional<std::int64_t>(r[0][0].as<long long>());
      if (auto done = plan.resolve(probe, seq)) {
        return *done;
      }
    }
    const pqxx::result rows = exec(tx, plan.page());
    std::vector<ArchivedMessage> messages;
    messages.reserve(rows.size());
    for (const auto& row : rows) {
      messages.push_back(read_message(row));
    }
    return plan.finish(std::move(messages), exec(tx, plan.count())[0][0].as<long long>());
  });
}

}  // namespace tc::storage::pg
