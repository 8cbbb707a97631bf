// SPDX-License-Identifier: Apache-2.0
#include "archive_plan.h"

#include <algorithm>
#include <utility>

#include "storage/columns.h"
#include "storage/errc.h"

#include "codec.h"

namespace tc::storage {
namespace {

/// SQL text with its values, each written as a placeholder where it is bound.
class Builder {
 public:
  explicit Builder(sql::Placeholders style) : style_(style) {}

  Builder& text(std::string_view text) {
    out_.text += text;
    return *this;
  }
  Builder& value(SqlValue value) {
    out_.values.push_back(std::move(value));
    const std::string number = std::to_string(out_.values.size());
    out_.text += style_ == sql::Placeholders::Numbered ? "$" + number : ":p" + number;
    return *this;
  }
  SqlStatement done() { return std::move(out_); }

 private:
  sql::Placeholders style_;
  SqlStatement out_;
};

ArchivePage empty_page() {
  ArchivePage page;
  page.complete = true;
  page.count = 0;
  return page;
}

}  // namespace

ArchivePlan::ArchivePlan(const ArchiveQuery& query, schema::Dialect dialect,
                         sql::Placeholders placeholders)
    : query_(query),
      dialect_(dialect),
      placeholders_(placeholders),
      backward_(query.before_id.has_value()) {
  if (query.start) {
    page_.start = window_.start = *query.start;
  }
  if (query.end) {
    page_.end = window_.end = *query.end;
  }
  // The cursors become seqs through the (room_jid, stanza_id) index.
  const auto by_id = [&](Probe::Kind kind, const std::string& id) {
    probes_.push_back({kind, Builder(placeholders_)
                                 .text("SELECT seq FROM tc_archive WHERE room_jid = ")
                                 .value(query_.room_jid)
                                 .text(" AND stanza_id = ")
                                 .value(id)
                                 .done()});
  };
  if (query.after_id) {
    by_id(Probe::Kind::AfterId, *query.after_id);
  }
  if (query.before_id && !query.before_id->empty()) {  // "" is the last page: no cursor
    by_id(Probe::Kind::BeforeId, *query.before_id);
  }
  if (query.window_after_id) {
    by_id(Probe::Kind::WindowAfterId, *query.window_after_id);
  }
  if (query.window_before_id) {
    by_id(Probe::Kind::WindowBeforeId, *query.window_before_id);
  }
  // A time window becomes a seq range with one index probe per end, so paging from `start`
  // never walks the room's older messages. Exact as long as created_at does not go backwards
  // within a room (the broker stamps a room's messages on the one node that hosts it).
  if (query.start) {
    probes_.push_back({Probe::Kind::Start, Builder(placeholders_)
                                               .text("SELECT seq FROM tc_archive WHERE room_jid = ")
                                               .value(query_.room_jid)
                                               .text(" AND created_at >= ")
                                               .value(static_cast<long long>(*query.start))
                                               .text(" ORDER BY created_at, seq LIMIT 1")
                                               .done()});
  }
  if (query.end) {
    probes_.push_back({Probe::Kind::End, Builder(placeholders_)
                                             .text("SELECT seq FROM tc_archive WHERE room_jid = ")
                                             .value(query_.room_jid)
                                             .text(" AND created_at <= ")
                                             .value(static_cast<long long>(*query.end))
                                             .text(" ORDER BY created_at DESC, seq DESC LIMIT 1")
                                             .done()});
  }
}

std::optional<Result<ArchivePage>> ArchivePlan::resolve(const Probe& probe,
                                                        std::optional<std::int64_t> seq) {
  switch (probe.kind) {
    case Probe::Kind::AfterId:
      if (!seq) {
        return Result<ArchivePage>(make_error_code(Errc::NotFound));
      }
      page_.after_seq = *seq;
      break;
    case Probe::Kind::BeforeId:
      if (!seq) {
        return Result<ArchivePage>(make_error_code(Errc::NotFound));
      }
      page_.before_seq = *seq;
      break;
    case Probe::Kind::WindowAfterId:
      if (!seq) {
        return Result<ArchivePage>(make_error_code(Errc::NotFound));
      }
      window_.after_seq = std::max(window_.after_seq, *seq);
      page_.after_seq = std::max(page_.after_seq, window_.after_seq);
      break;
    case Probe::Kind::WindowBeforeId:
      if (!seq) {
        return Result<ArchivePage>(make_error_code(Errc::NotFound));
      }
      window_.before_seq = std::min(window_.before_seq, *seq);
      page_.before_seq = std::min(page_.before_seq, window_.before_seq);
      break;
    case Probe::Kind::Start:
      if (!seq) {
        return Result<ArchivePage>(empty_page());
      }
      window_.after_seq = std::max(window_.after_seq, *seq - 1);
      page_.after_seq = std::max(page_.after_seq, window_.after_seq);
      break;
    case Probe::Kind::End:
      if (!seq) {
        return Result<ArchivePage>(empty_page());
      }
      window_.before_seq = std::min(window_.before_seq, *seq + 1);
      page_.before_seq = std::min(page_.before_seq, window_.before_seq);
      break;
  }
  return std::nullopt;
}

SqlStatement ArchivePlan::page() const {
  static const std::string kColumns = columns::list(columns::kArchiveColumns);
  return select(kColumns, page_, backward_ ? " ORDER BY seq DESC" : " ORDER BY seq ASC",
                static_cast<long long>(query_.max) + 1);
}

SqlStatement ArchivePlan::count() const {
  SqlStatement s = select("1", window_, "", static_cast<long long>(kMaxCount) + 1);
  s.text = "SELECT COUNT(*) FROM (" + s.text + ") AS window_rows";
  return s;
}

ArchivePage ArchivePlan::finish(std::vector<ArchivedMessage> rows, long long count) const {
  ArchivePage page;
  page.complete = rows.size() <= query_.max;
  if (!page.complete) {
    rows.resize(query_.max);
  }
  if (backward_) {
    std::reverse(rows.begin(), rows.end());
  }
  page.messages = std::move(rows);
  if (count >= 0 && static_cast<std::size_t>(count) <= kMaxCount) {
    page.count = static_cast<std::size_t>(count);
  }
  return page;
}

std::string_view ArchivePlan::index_hint(schema::Dialect dialect) {
  return dialect == schema::Dialect::Sqlite ? " INDEXED BY tc_archive_room_seq" : "";
}

// The filter of the page and the count. Values are bound per execution, so the planner folds
// the neutral bounds away. CAST() rather than ::type keeps the text valid in both dialects.
// PostgreSQL gets row comparisons, which only the (room_jid, seq) index can serve, so it walks
// that one room's range instead of the primary key's range of every room; SQLite plans them
// badly and is pinned by INDEXED BY instead.
SqlStatement ArchivePlan::select(std::string_view what, const Bounds& bounds,
                                 std::string_view order, long long limit) const {
  Builder b(placeholders_);
  b.text("SELECT ").text(what).text(" FROM tc_archive").text(index_hint(dialect_));
  b.text(" WHERE room_jid = ").value(query_.room_jid);
  if (dialect_ == schema::Dialect::Postgresql) {
    b.text(" AND (room_jid, seq) > (").value(query_.room_jid).text(", ");
    b.value(static_cast<long long>(bounds.after_seq)).text(")");
    b.text(" AND (room_jid, seq) < (").value(query_.room_jid).text(", ");
    b.value(static_cast<long long>(bounds.before_seq)).text(")");
  } else {
    b.text(" AND seq > ").value(static_cast<long long>(bounds.after_seq));
    b.text(" AND seq < ").value(static_cast<long long>(bounds.before_seq));
  }
  b.text(" AND created_at >= ").value(static_cast<long long>(bounds.start));
  b.text(" AND created_at <= ").value(static_cast<long long>(bounds.end));
  b.text(" AND (CAST(").value(query_.with_nick).text(" AS TEXT) = '' OR sender_nick = ");
  b.value(query_.with_nick).text(")");
  b.text(" AND (CAST(").value(query_.with_jid).text(" AS TEXT) = '' OR sender_jid = ");
  b.value(query_.with_jid).text(")");
  b.text(" AND (CAST(").value(query_.include_presence ? 1LL : 0LL).text(" AS INTEGER) = 1");
  b.text(" OR kind NOT IN ").text(codec::kPresenceKindsSql).text(")");
  b.text(order).text(" LIMIT ").value(limit);
  return b.done();
}

}  // namespace tc::storage
