// SPDX-License-Identifier: Apache-2.0
// tc-merge merge: metadata in one transaction, then each room's archive in batches, each batch
// committed together with the room's checkpoint, then a verification pass.
//
// Exactly once: a batch and the checkpoint that covers it commit in one target transaction, so
// after a crash at any point the target holds exactly the batches whose checkpoint it holds, and
// the next run continues after that checkpoint. INSERT ... ON CONFLICT (room_jid, stanza_id)
// DO NOTHING is the second line of defence. Sources are opened read-only.
#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <thread>

#include <boost/json.hpp>

#include "storage/columns.h"

#include "credentials.h"
#include "digest.h"
#include "engine.h"
#include "scan.h"
#include "transform.h"

namespace tc::merge {
namespace {

constexpr long long kBeforeFirst = std::numeric_limits<long long>::min();

/// A target table the merge loads (rows in the order of its storage::columns list), and how.
struct TableSpec {
  storage::columns::Table table;
  /// Archive: the first column (seq) carries the source key into the staging table only, and
  /// rows are inserted in source order so the target's seq follows it.
  bool ordered = false;
};

const TableSpec kAccounts{storage::columns::kAccounts};
const TableSpec kRooms{storage::columns::kRooms};
const TableSpec kAffiliations{storage::columns::kAffiliations};
const TableSpec kArchive{storage::columns::kArchive, true};

/// Loads batches of rows into the target's tables inside the caller's transaction.
/// PostgreSQL: COPY into a temporary staging table, then one INSERT ... SELECT ... ON CONFLICT
/// DO NOTHING. Elsewhere: one prepared INSERT ... ON CONFLICT DO NOTHING per row.
class TargetWriter {
 public:
  explicit TargetWriter(Db& db) : db_(db), copy_(db.driver() == "libpqxx") {}

  /// Creates the staging tables (PostgreSQL; temporary, so per connection).
  void prepare() {
    if (!copy_) {
      return;
    }
    for (const TableSpec* t : {&kAccounts, &kRooms, &kAffiliations}) {
      db_.exec("CREATE TEMP TABLE IF NOT EXISTS " + stage(*t) + " (LIKE " +
               std::string(t->table.name) + ") ON COMMIT DELETE ROWS");
    }
  }

  /// PostgreSQL: a COPY straight into tc_archive (the target's seq follows the order rows are
  /// sent in). No ON CONFLICT here: the checkpoint committed with each batch is what keeps a
  /// message from being copied twice, and should a duplicate (room_jid, stanza_id) still
  /// arrive, the unique index fails the batch loudly instead of dropping a message silently.
  /// nullptr elsewhere: use load().
  std::unique_ptr<CopyIn> copy_archive() {
    return copy_ ? db_.copy_in(kArchive.table.name, storage::columns::kArchiveInsertColumns)
                 : nullptr;
  }

  void load(const TableSpec& t, std::vector<Row>& rows) {
    if (rows.empty()) {
      return;
    }
    const std::span<const Column> columns = t.table.columns;
    const std::size_t first = t.ordered ? 1 : 0;
    const std::string names = storage::columns::list(columns.subspan(first));
    const std::string table(t.table.name);
    const std::string conflict = " ON CONFLICT (" + std::string(t.table.key) + ") DO NOTHING";
    if (copy_) {
      std::size_t i = 0;
      db_.bulk_insert(stage(t), columns, [&](Row& row) {
        if (i == rows.size()) {
          return false;
        }
        row = std::move(rows[i++]);
        return true;
      });
      db_.exec("INSERT INTO " + table + " (" + names + ") SELECT " + names + " FROM " + stage(t) +
               (t.ordered ? " ORDER BY seq" : "") + conflict);
      db_.exec("TRUNCATE " + stage(t));
    } else {
      std::string marks;
      for (std::size_t i = first; i < columns.size(); ++i) {
        marks += marks.empty() ? "?" : ", ?";
      }
      const std::string sql =
          "INSERT INTO " + table + " (" + names + ") VALUES (" + marks + ")" + conflict;
      std::vector<Param> params;
      for (Row& row : rows) {
        params.clear();
        for (std::size_t i = first; i < columns.size(); ++i) {
          Value& v = row[i];
          if (!v) {
            params.emplace_back();
          } else if (columns[i].integer) {
            params.emplace_back(to_int(v));
          } else {
            params.emplace_back(std::move(*v));
          }
        }
        db_.exec(sql, params);
      }
    }
    rows.clear();
  }

 private:
  static std::string stage(const TableSpec& t) {
    return "tc_merge_stage_" + std::string(t.table.name.substr(3));
  }

  Db& db_;
  bool copy_;
};

std::string source_name(char label) {
  return std::string(1, static_cast<char>(label - 32));
}

/// Policy "rename": the room's new JID goes into its key and into the address attributes of its
/// stored stanzas (rename_room_addresses), never into what users wrote.
struct RoomRename {
  std::string from;  ///< the room's JID as the source reader gives it (after alias rewriting)
  std::string to;
  bool empty() const { return from.empty(); }
};

RoomRename room_rename(Source& src, const RoomResult& room) {
  if (room.action != "rename") {
    return {};
  }
  return {src.rewriter().apply_jid(room.source_room), room.target_room};
}

/// The key of an archive row in a report: the room and its key in the source.
std::string archive_key(const RoomResult& room, const SourceMessage& m) {
  return "(room_jid '" + room.source_room + "', seq " + std::to_string(m.key) + ")";
}

void rename_or_throw(std::string& stanza_xml, std::string_view from, std::string_view to,
                     const std::string& key) {
  if (!rename_room_addresses(stanza_xml, from, to)) {
    throw DataError("tc_archive", key, "the stored stanza cannot be scanned for its addresses");
  }
}

void add_to_digest(RoomDigest& digest, const SourceMessage& m) {
  digest.add(m.stanza_id, m.sender_nick, m.sender_jid, m.kind, m.stanza_xml, m.created_at);
}

/// Runs `f`, naming `s` in any DataError it throws.
template <class F>
void in_source(Source& s, F&& f) {
  try {
    f();
  } catch (DataError& e) {
    if (e.where().empty()) {
      e.set_where("source " + source_name(s.label()));
    }
    throw;
  }
}

/// The integer columns of an account row must be numbers (the target converts them).
void check_account(const Row& row) {
  each_unconvertible_account_column(row, [&row](std::string_view column, const std::string& why) {
    throw DataError("tc_accounts", "username '" + row[0].value_or("") + "'",
                    std::string(column) + ": " + why);
  });
}

void copy_metadata(Job& job, Source& a, Source& b, const Plan& plan, TargetWriter& writer,
                   std::FILE* out) {
  constexpr std::size_t kBatch = 5000;
  std::vector<Row> rows;
  const bool prefer_b = job.options.collision == CollisionPolicy::KeepB;
  Source* first = prefer_b ? &b : &a;
  Source* second = prefer_b ? &a : &b;
  long long accounts = 0;
  for (Source* s : {first, second}) {
    in_source(*s, [&] {
      s->each_account([&](Row& row) {
        check_account(row);
        rows.push_back(std::move(row));
        ++accounts;
        if (rows.size() >= kBatch) {
          writer.load(kAccounts, rows);
        }
      });
    });
    writer.load(kAccounts, rows);
  }
  long long rooms = 0;
  for (Source* s : {first, second}) {
    const std::string& node = s->label() == 'a' ? job.a.node : job.b.node;
    in_source(*s, [&] {
      s->each_room([&](SourceRoom& r) {
        const PlanRoom* p = plan.find(s->label(), r.source_jid);
        if (p == nullptr || p->action == "skip") {
          return;
        }
        ++rooms;
        rows.push_back({p->target_jid, r.config_json, std::to_string(r.persistent), r.subject,
                        r.subject_nick, std::to_string(r.subject_at),
                        r.host_node.empty() ? node : r.host_node, std::to_string(r.created_at)});
        if (rows.size() >= kBatch) {
          writer.load(kRooms, rows);
        }
      });
    });
    writer.load(kRooms, rows);
  }
  long long affiliations = 0;
  for (Source* s : {first, second}) {
    in_source(*s, [&] {
      s->each_affiliation([&](SourceAffiliation& aff) {
        const PlanRoom* p = plan.find(s->label(), aff.room_source_jid);
        if ((p != nullptr && p->action == "skip") ||
            (p == nullptr && s->kind() == SourceKind::Vendor)) {
          return;
        }
        if (aff.affiliation != "owner" && aff.affiliation != "admin" &&
            aff.affiliation != "member" && aff.affiliation != "outcast") {
          throw DataError(
              "tc_room_affiliations",
              "(room_jid '" + aff.room_source_jid + "', user_jid '" + aff.user_jid + "')",
              "the affiliation '" + aff.affiliation + "' is none of owner, admin, member, outcast");
        }
        ++affiliations;
        rows.push_back({p != nullptr ? p->target_jid : aff.room_source_jid, aff.user_jid,
                        aff.affiliation, aff.reason, aff.nick});
        if (rows.size() >= kBatch) {
          writer.load(kAffiliations, rows);
        }
      });
    });
    writer.load(kAffiliations, rows);
  }
  std::fprintf(out,
               "metadata: %lld accounts, %lld rooms, %lld affiliations read from the sources\n",
               accounts, rooms, affiliations);
}

/// Copies one room's remaining archive, in batches of at most `batch_rows` messages or
/// `batch_bytes` bytes, each in one target transaction with the room's checkpoint. Into
/// PostgreSQL the rows go straight into tc_archive by COPY as they are read, so a batch is never
/// held in memory (one message at a time is); elsewhere a batch is collected, then inserted.
/// Returns the messages copied by this run.
long long copy_room(Job& job, Source& src, RoomResult& room, Db& target, JobStore& store,
                    TargetWriter& writer, const Tuning& tuning, Progress& progress) {
  std::optional<Transaction> tx;
  std::unique_ptr<CopyIn> copy;  // after tx: an unfinished COPY is cancelled before the rollback
  std::vector<Row> rows;         // targets without COPY
  long long n = 0;
  std::size_t bytes = 0;
  long long last_key = room.checkpoint;
  long long copied_now = 0;
  // A room copied in one run from its first message gets its source checksum on the way, so
  // verification only has to read the target; a resumed room is re-read from the source.
  std::optional<RoomDigest> digest;
  if (room.checkpoint == kBeforeFirst) {
    digest.emplace();
  }
  const auto open = [&] {
    if (!tx) {
      tx.emplace(target);
      copy = writer.copy_archive();
    }
  };
  const auto flush = [&](bool done) {
    open();  // an empty last batch still commits the checkpoint that marks the room done
    if (copy) {
      try {
        copy->finish();
      } catch (const DbError& e) {
        if (e.failure() != DbFailure::Other) {
          throw;
        }
        // The server refused a row (PostgreSQL's message names the key and the COPY line).
        throw DataError("tc_archive",
                        "(room_jid '" + room.source_room + "', a message after seq " +
                            (room.checkpoint == kBeforeFirst ? std::string("the start")
                                                             : std::to_string(room.checkpoint)) +
                            ")",
                        e.what());
      }
      copy.reset();
    } else {
      writer.load(kArchive, rows);
    }
    store.checkpoint(job.id, room, last_key, room.copied + n, done);
    if (done && digest) {
      room.source_count = static_cast<long long>(digest->count());
      room.source_digest = digest->finish();
      store.save_verification(job.id, room);
    }
    tx->commit();
    tx.reset();
    room.checkpoint = last_key;
    room.copied += n;
    room.done = done;
    copied_now += n;
    progress.add(n);
    n = 0;
    bytes = 0;
    if (tuning.throttle.count() > 0) {
      std::this_thread::sleep_for(tuning.throttle);
    }
  };
  const RoomRename rename = room_rename(src, room);
  src.each_message(room.source_room, room.checkpoint, [&](SourceMessage& m) {
    // The checksum is of the source as it was; verification undoes the rename on the target
    // side, so a change to anything but the renamed addresses fails it.
    if (digest) {
      add_to_digest(*digest, m);
    }
    if (!rename.empty()) {
      rename_or_throw(m.stanza_xml, rename.from, rename.to, archive_key(room, m));
    }
    open();
    bytes +=
        m.stanza_xml.size() + m.stanza_id.size() + m.sender_nick.size() + m.sender_jid.size() + 64;
    last_key = m.key;
    ++n;
    if (copy) {
      copy->field(room.target_room);
      copy->field(m.stanza_id);
      copy->field(m.sender_nick);
      copy->field(m.sender_jid);
      copy->field(m.kind);
      copy->field(m.stanza_xml);
      copy->integer(m.created_at);
      copy->end_row();
    } else {
      rows.push_back({std::to_string(m.key), room.target_room, std::move(m.stanza_id),
                      std::move(m.sender_nick), std::move(m.sender_jid), std::move(m.kind),
                      std::move(m.stanza_xml), std::to_string(m.created_at)});
    }
    if (static_cast<std::size_t>(n) >= tuning.batch_rows || bytes >= tuning.batch_bytes) {
      flush(false);
    }
    return true;
  });
  flush(true);
  return copied_now;
}

/// Compares one room's source, as it was, with the target: counts and SHA-256 over every
/// message in order. A renamed room's target stanzas are hashed with the rename undone (its new
/// JID back to the old one in the address attributes only), so its bodies must be byte-identical
/// to the source's for the digests to agree.
void verify_room(Source& src, RoomResult& room, Db& target, std::unique_ptr<Db>& target_side,
                 const Reconnect& target_reconnect, const Tuning& tuning) {
  const RoomRename rename = room_rename(src, room);
  if (room.source_digest.empty()) {
    RoomDigest source_digest;
    src.each_message(room.source_room, kBeforeFirst, [&](SourceMessage& m) {
      add_to_digest(source_digest, m);
      return true;
    });
    room.source_count = static_cast<long long>(source_digest.count());
    room.source_digest = source_digest.finish();
  }
  RoomDigest target_digest;
  scan_archive(target, target_side, target_reconnect, tuning.page_rows, room.target_room,
               kBeforeFirst, [&](Row& r) {
                 if (!rename.empty() && r[5]) {
                   // Only the tool's own output is scanned here; an unscannable one fails below.
                   rename_room_addresses(*r[5], rename.to, rename.from);
                 }
                 target_digest.add(r[1].value_or(""), r[2].value_or(""), r[3].value_or(""),
                                   r[4].value_or(""), r[5] ? std::string_view(*r[5]) : "",
                                   to_int(r[6]));
                 return true;
               });
  room.target_count = static_cast<long long>(target_digest.count());
  room.target_digest = target_digest.finish();
  room.verified =
      room.source_count == room.target_count && room.source_digest == room.target_digest;
}

/// One worker's connections: its own read-only sources and target session (worker 0 borrows
/// the caller's), its job-store view and its staging tables.
struct Worker {
  std::unique_ptr<Source> own_a;
  std::unique_ptr<Source> own_b;
  std::unique_ptr<Db> own_target;
  Source* a = nullptr;
  Source* b = nullptr;
  Db* target = nullptr;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<TargetWriter> writer;
  Reconnect target_reconnect;       ///< a second target connection, for large stanzas
  std::unique_ptr<Db> target_side;  ///< opened by the first large stanza verification reads

  Source& source(char label) { return label == 'a' ? *a : *b; }
};

std::vector<Worker> connect_workers(std::size_t n, const Job& job, const Credentials& creds,
                                    const Tuning& tuning, Source& a, Source& b, Db& target,
                                    const std::string& target_url) {
  std::vector<Worker> workers(n);
  for (std::size_t i = 0; i < n; ++i) {
    Worker& w = workers[i];
    if (i == 0) {
      w.a = &a;
      w.b = &b;
      w.target = &target;
    } else {
      std::vector<Finding> ignored;
      w.own_a = open_source('a', job.a, creds.a, job.options, tuning, ignored);
      w.own_b = open_source('b', job.b, creds.b, job.options, tuning, ignored);
      if (!w.own_a || !w.own_b) {
        throw DbError(DbFailure::Connect, "a worker cannot open the sources");
      }
      w.own_target = open_db(with_password(target_url, creds.target));
      w.a = w.own_a.get();
      w.b = w.own_b.get();
      w.target = w.own_target.get();
    }
    w.target_reconnect = [url = with_password(target_url, creds.target)] { return open_db(url); };
    w.store = std::make_unique<JobStore>(*w.target);
    w.writer = std::make_unique<TargetWriter>(*w.target);
    w.writer->prepare();
  }
  return workers;
}

/// Runs `fn` for every room of `todo` on the workers' threads, biggest rooms first. The first
/// exception stops the others after their current room and is rethrown here.
void for_each_room(std::vector<Worker>& workers, std::vector<RoomResult*> todo,
                   const std::function<void(Worker&, RoomResult&)>& fn) {
  std::stable_sort(todo.begin(), todo.end(), [](const RoomResult* x, const RoomResult* y) {
    return std::max(x->source_count, x->copied) > std::max(y->source_count, y->copied);
  });
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(workers.size());
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < workers.size(); ++w) {
    threads.emplace_back([&, w] {
      try {
        for (std::size_t i = next++; i < todo.size(); i = next++) {
          fn(workers[w], *todo[i]);
        }
      } catch (...) {
        errors[w] = std::current_exception();
        next = todo.size();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    if (e) {
      std::rethrow_exception(e);
    }
  }
}

void refuse(std::FILE* out, const std::string& why) {
  std::fprintf(out, "merge refused: %s\n", why.c_str());
}

/// A data error met during the merge: reported with the row, recorded in the job. Returns the
/// exit status.
int stopped(Job& job, JobStore& store, const DataError& e, const std::string& state,
            std::FILE* out) {
  const std::string where = e.where().empty() ? std::string("a source") : e.where();
  std::fprintf(out,
               "merge stopped: %s: %s\n"
               "  %s. Fix the row in %s (or delete it), then run `tc-merge validate %lld` and "
               "`tc-merge merge %lld` again.\n",
               where.c_str(), e.what(), state.c_str(), where.c_str(), job.id, job.id);
  boost::json::object summary;
  summary["stopped"] = where + ": " + e.what();
  summary["table"] = e.table();
  summary["row"] = e.key();
  job.summary = boost::json::serialize(summary);
  store.update(job);
  return 1;
}

}  // namespace

void print_verification(const std::vector<RoomResult>& rooms, std::FILE* out) {
  std::size_t width = 11;
  for (const RoomResult& r : rooms) {
    width = std::max(width, r.target_room.size());
  }
  std::fprintf(out, "%-3s %-*s %-7s %10s %10s  %-16s  %-16s  %s\n", "SRC", static_cast<int>(width),
               "TARGET ROOM", "ACTION", "SOURCE", "TARGET", "SOURCE SHA-256", "TARGET SHA-256",
               "OK");
  long long src_total = 0;
  long long tgt_total = 0;
  int failed = 0;
  int skipped = 0;
  for (const RoomResult& r : rooms) {
    if (r.action == "skip") {
      ++skipped;
      std::fprintf(out, "%-3s %-*s %-7s %10s %10s  %-16s  %-16s  %s\n",
                   source_name(r.source).c_str(), static_cast<int>(width), r.source_room.c_str(),
                   "skip", "-", "-", "", "", "-");
      continue;
    }
    src_total += std::max(0LL, r.source_count);
    tgt_total += std::max(0LL, r.target_count);
    failed += r.verified ? 0 : 1;
    std::fprintf(out, "%-3s %-*s %-7s %10lld %10lld  %-16.16s  %-16.16s  %s\n",
                 source_name(r.source).c_str(), static_cast<int>(width), r.target_room.c_str(),
                 r.action.c_str(), r.source_count, r.target_count, r.source_digest.c_str(),
                 r.target_digest.c_str(), r.verified ? "yes" : "NO");
  }
  std::fprintf(out,
               "total: %zu rooms (%d skipped), %lld messages in the sources, %lld in the "
               "target, %d rooms failed verification\n",
               rooms.size(), skipped, src_total, tgt_total, failed);
}

int merge(Job& job, Db& target, const std::string& target_url, JobStore& store,
          const Credentials& creds, const Tuning& tuning, std::FILE* out) {
  if (job.status == status::kMerged) {
    std::fprintf(out, "job %lld is already merged (finished %lld); its verification:\n", job.id,
                 job.merge_finished_at);
    print_verification(store.rooms(job.id), out);
    return 0;
  }
  if (job.validation_run == 0 || job.status == status::kCreated) {
    refuse(out, "job " + std::to_string(job.id) + " was never validated: run `tc-merge validate " +
                    std::to_string(job.id) + "` first (parameters changed or never validated)");
    return 1;
  }
  if (job.validation_errors > 0) {
    refuse(out, "the latest validation (run " + std::to_string(job.validation_run) + ") found " +
                    std::to_string(job.validation_errors) +
                    " errors; fix them and run `tc-merge validate " + std::to_string(job.id) +
                    "` again:");
    for (const Finding& f : store.findings(job.id, job.validation_run)) {
      if (f.severity == Severity::Error) {
        std::fprintf(out, "  error  %-24s %s: %s\n", f.code.c_str(), f.subject.c_str(),
                     f.message.c_str());
      }
    }
    return 1;
  }

  // Sources may have changed since validation: they must still open, and no service may run.
  std::vector<Finding> findings;
  auto a = open_source('a', job.a, creds.a, job.options, tuning, findings);
  auto b = open_source('b', job.b, creds.b, job.options, tuning, findings);
  for (Source* s : {a.get(), b.get()}) {
    if (s != nullptr && s->kind() == SourceKind::Tc) {
      check_nodes(s->db(), std::string("source ") + source_name(s->label()),
                  job.options.stale_after, findings);
    }
  }
  check_nodes(target, "target", job.options.stale_after, findings);
  const auto errors = std::count_if(findings.begin(), findings.end(),
                                    [](const Finding& f) { return f.severity == Severity::Error; });
  if (errors > 0 || !a || !b) {
    refuse(out, "the sources or nodes changed since validation:");
    for (const Finding& f : findings) {
      if (f.severity == Severity::Error) {
        std::fprintf(out, "  error  %-24s %s: %s\n", f.code.c_str(), f.subject.c_str(),
                     f.message.c_str());
      }
    }
    return 1;
  }

  // SQLite takes one writer at a time: more workers would only wait for its lock.
  const std::size_t worker_count =
      target.dialect() == Dialect::Sqlite ? 1 : std::max<std::size_t>(1, tuning.workers);
  std::vector<Worker> workers =
      connect_workers(worker_count, job, creds, tuning, *a, *b, target, target_url);
  TargetWriter& writer = *workers[0].writer;
  const auto started = std::chrono::steady_clock::now();

  if (job.phase.empty()) {
    std::vector<Finding> plan_findings;
    Plan plan;
    try {
      plan = build_plan(*a, *b, job, plan_findings);
    } catch (const DataError& e) {
      return stopped(job, store, e, "nothing was written; the target is as it was", out);
    }
    for (const Finding& f : plan_findings) {
      if (f.severity == Severity::Error) {
        refuse(out, "the sources changed since validation: " + f.subject + ": " + f.message);
        return 1;
      }
    }
    std::vector<RoomResult> rooms;
    for (const PlanRoom& p : plan.rooms) {
      RoomResult r;
      r.source = p.source;
      r.source_room = p.source_jid;
      r.target_room = p.target_jid;
      r.action = p.action;
      r.checkpoint = kBeforeFirst;
      r.done = p.action == "skip";
      r.source_count = p.count;  // planned; verification overwrites it with the counted value
      rooms.push_back(std::move(r));
    }
    Transaction tx(target);
    store.insert_rooms(job.id, rooms);
    try {
      copy_metadata(job, *a, *b, plan, writer, out);
    } catch (const DataError& e) {
      tx.rollback();  // nothing of this run stays: the target is as it was before
      return stopped(job, store, e, "nothing was written; the target is as it was", out);
    }
    job.phase = "archive";
    job.status = std::string(status::kMerging);
    job.merge_started_at = now_ms();
    store.update(job);
    tx.commit();
  } else {
    std::fprintf(out, "resuming job %lld (phase %s)\n", job.id, job.phase.c_str());
    if (job.status != status::kMerging) {
      job.status = std::string(status::kMerging);
      store.update(job);
    }
  }

  std::vector<RoomResult> rooms = store.rooms(job.id);
  if (job.phase == "archive") {
    long long total = 0;
    long long already = 0;
    for (const RoomResult& r : rooms) {
      if (r.action != "skip") {
        total += std::max(r.source_count, r.copied);
        already += r.copied;
      }
    }
    Progress progress(tuning.progress, total, already);
    std::vector<RoomResult*> todo;
    for (RoomResult& r : rooms) {
      if (!r.done && r.action != "skip") {
        todo.push_back(&r);
      }
    }
    try {
      for_each_room(workers, todo, [&](Worker& w, RoomResult& r) {
        Source& src = w.source(r.source);
        in_source(
            src, [&] { copy_room(job, src, r, *w.target, *w.store, *w.writer, tuning, progress); });
      });
    } catch (const DataError& e) {
      progress.finish();
      // The batch that met the row rolled back; every committed batch has its checkpoint.
      return stopped(job, store, e,
                     "the batches committed before it are kept with their checkpoints; the "
                     "next run resumes after them",
                     out);
    }
    progress.finish();
    job.phase = "verify";
    store.update(job);
  }

  std::fprintf(out, "verifying %zu rooms (per-room count and SHA-256 of source and target)\n",
               rooms.size());
  std::fflush(out);  // the phases can be timed from the output
  std::vector<RoomResult*> to_verify;
  for (RoomResult& r : rooms) {
    if (r.action != "skip") {
      to_verify.push_back(&r);
    }
  }
  for_each_room(workers, to_verify, [&](Worker& w, RoomResult& r) {
    verify_room(w.source(r.source), r, *w.target, w.target_side, w.target_reconnect, tuning);
    w.store->save_verification(job.id, r);
  });
  long long copied = 0;
  int failed = 0;
  for (const RoomResult* r : to_verify) {
    copied += r->target_count;
    failed += r->verified ? 0 : 1;
  }
  print_verification(rooms, out);

  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  boost::json::object summary;
  summary["messages"] = copied;
  summary["rooms"] = static_cast<std::int64_t>(rooms.size());
  summary["rooms_failed"] = failed;
  summary["accounts_in_target"] = target.scalar_int("SELECT COUNT(*) FROM tc_accounts");
  summary["rooms_in_target"] = target.scalar_int("SELECT COUNT(*) FROM tc_rooms");
  summary["affiliations_in_target"] =
      target.scalar_int("SELECT COUNT(*) FROM tc_room_affiliations");
  summary["messages_in_target"] = target.scalar_int("SELECT COUNT(*) FROM tc_archive");
  summary["last_run_seconds"] = elapsed;
  job.summary = boost::json::serialize(summary);
  job.copied_messages = copied;
  job.phase = "done";
  job.status = std::string(failed == 0 ? status::kMerged : status::kVerifyFailed);
  job.merge_finished_at = now_ms();
  store.update(job);
  std::fprintf(out,
               "job %lld: %s; %lld messages, %lld accounts, %lld rooms in the target "
               "(%.1f s this run)\n",
               job.id, job.status.c_str(), copied,
               static_cast<long long>(summary["accounts_in_target"].as_int64()),
               static_cast<long long>(summary["rooms_in_target"].as_int64()), elapsed);
  return failed == 0 ? 0 : 1;
}

}  // namespace tc::merge
