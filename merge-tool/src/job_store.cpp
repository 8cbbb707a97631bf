// SPDX-License-Identifier: Apache-2.0
#include "job_store.h"

namespace tc::merge {
namespace {

constexpr const char* kJobColumns =
    "id, db_type, source_a_url, source_a_kind, source_a_node, source_b_url, source_b_kind, "
    "source_b_node, target_url, options_json, status, phase, created_at, updated_at, "
    "validated_at, validation_run, validation_errors, validation_warnings, estimate_rows, "
    "estimate_bytes, merge_started_at, merge_finished_at, copied_messages, summary_json";

struct Types {
  const char* text;
  const char* big;
  const char* integer;
};

Types types_for(Dialect d) {
  switch (d) {
    case Dialect::Oracle:
      return {"CLOB", "NUMBER(19)", "NUMBER(10)"};
    case Dialect::Mssql:
      return {"NVARCHAR(MAX)", "BIGINT", "INTEGER"};
    case Dialect::Postgresql:
    case Dialect::Sqlite:
      break;
  }
  return {"TEXT", "BIGINT", "INTEGER"};
}

/// A key column type (indexes cannot use CLOB / NVARCHAR(MAX)).
const char* key_text(Dialect d) {
  switch (d) {
    case Dialect::Oracle:
      return "VARCHAR2(3071)";
    case Dialect::Mssql:
      return "NVARCHAR(900)";
    case Dialect::Postgresql:
    case Dialect::Sqlite:
      break;
  }
  return "TEXT";
}

std::string text(const Value& v) {
  return v ? *v : std::string();
}

Job read_job(const Row& r) {
  Job j;
  j.id = to_int(r[0]);
  j.db_type = text(r[1]);
  j.a = {text(r[2]), parse_source_kind(text(r[3])).value_or(SourceKind::Auto), text(r[4])};
  j.b = {text(r[5]), parse_source_kind(text(r[6])).value_or(SourceKind::Auto), text(r[7])};
  j.target_url = text(r[8]);
  j.options = JobOptions::from_json(text(r[9]));
  j.status = text(r[10]);
  j.phase = text(r[11]);
  j.created_at = to_int(r[12]);
  j.updated_at = to_int(r[13]);
  j.validated_at = to_int(r[14]);
  j.validation_run = static_cast<int>(to_int(r[15]));
  j.validation_errors = static_cast<int>(to_int(r[16]));
  j.validation_warnings = static_cast<int>(to_int(r[17]));
  j.estimate_rows = to_int(r[18]);
  j.estimate_bytes = to_int(r[19]);
  j.merge_started_at = to_int(r[20]);
  j.merge_finished_at = to_int(r[21]);
  j.copied_messages = to_int(r[22]);
  j.summary = text(r[23]);
  return j;
}

RoomResult read_room(const Row& r) {
  RoomResult room;
  room.source = text(r[0]).empty() ? 'a' : text(r[0])[0];
  room.source_room = text(r[1]);
  room.target_room = text(r[2]);
  room.action = text(r[3]);
  room.checkpoint = to_int(r[4]);
  room.copied = to_int(r[5]);
  room.done = to_int(r[6]) != 0;
  room.source_count = to_int(r[7]);
  room.source_digest = text(r[8]);
  room.target_count = to_int(r[9]);
  room.target_digest = text(r[10]);
  room.verified = to_int(r[11]) != 0;
  return room;
}

}  // namespace

bool JobStore::ready() {
  return db_.table_exists("tc_merge_jobs") && db_.table_exists("tc_merge_findings") &&
         db_.table_exists("tc_merge_rooms");
}

void JobStore::create_tables(const std::string& tablespace) {
  const Types t = types_for(db_.dialect());
  const char* key = key_text(db_.dialect());
  const std::string big = t.big;
  const std::string txt = t.text;
  const std::string in_space =
      db_.dialect() == Dialect::Oracle && !tablespace.empty() ? " TABLESPACE " + tablespace : "";
  Transaction tx(db_);
  if (!db_.table_exists("tc_merge_jobs")) {
    db_.exec("CREATE TABLE tc_merge_jobs (id " + big + " PRIMARY KEY, db_type " + txt +
             " NOT NULL, source_a_url " + txt + " NOT NULL, source_a_kind " + txt +
             " NOT NULL, source_a_node " + txt + " NOT NULL, source_b_url " + txt +
             " NOT NULL, source_b_kind " + txt + " NOT NULL, source_b_node " + txt +
             " NOT NULL, target_url " + txt + " NOT NULL, options_json " + txt +
             " NOT NULL, status " + txt + " NOT NULL, phase " + txt + " NOT NULL, created_at " +
             big + " NOT NULL, updated_at " + big + " NOT NULL, validated_at " + big +
             " NOT NULL, validation_run " + t.integer + " NOT NULL, validation_errors " +
             t.integer + " NOT NULL, validation_warnings " + t.integer +
             " NOT NULL, estimate_rows " + big + " NOT NULL, estimate_bytes " + big +
             " NOT NULL, merge_started_at " + big + " NOT NULL, merge_finished_at " + big +
             " NOT NULL, copied_messages " + big + " NOT NULL, summary_json " + txt + " NOT NULL)" +
             in_space);
  }
  if (!db_.table_exists("tc_merge_findings")) {
    db_.exec("CREATE TABLE tc_merge_findings (job_id " + big + " NOT NULL, run " + t.integer +
             " NOT NULL, n " + t.integer + " NOT NULL, severity " + key + " NOT NULL, code " + key +
             " NOT NULL, subject " + txt + " NOT NULL, message " + txt + " NOT NULL, created_at " +
             big + " NOT NULL, PRIMARY KEY (job_id, run, n))" + in_space);
  }
  if (!db_.table_exists("tc_merge_rooms")) {
    db_.exec("CREATE TABLE tc_merge_rooms (job_id " + big + " NOT NULL, source " + key +
             " NOT NULL, source_room " + key + " NOT NULL, target_room " + key +
             " NOT NULL, action " + key + " NOT NULL, checkpoint " + big + " NOT NULL, copied " +
             big + " NOT NULL, done " + t.integer + " NOT NULL, source_count " + big +
             " NOT NULL, source_digest " + key + " NOT NULL, target_count " + big +
             " NOT NULL, target_digest " + key + " NOT NULL, verified " + t.integer +
             " NOT NULL, PRIMARY KEY (job_id, source, source_room))" + in_space);
  }
  tx.commit();
}

void JobStore::add(Job& job) {
  Transaction tx(db_);
  job.id = db_.scalar_int("SELECT COALESCE(MAX(id), 0) + 1 FROM tc_merge_jobs");
  job.created_at = job.updated_at = now_ms();
  const std::vector<Param> p{job.id,
                             job.db_type,
                             job.a.url,
                             std::string(to_string(job.a.kind)),
                             job.a.node,
                             job.b.url,
                             std::string(to_string(job.b.kind)),
                             job.b.node,
                             job.target_url,
                             job.options.to_json(),
                             job.status,
                             job.phase,
                             job.created_at,
                             job.updated_at,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             0LL,
                             std::string("{}")};
  db_.exec(std::string("INSERT INTO tc_merge_jobs (") + kJobColumns +
               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           p);
  tx.commit();
}

std::optional<Job> JobStore::load(long long id) {
  const std::vector<Param> p{id};
  auto row =
      db_.query_one(std::string("SELECT ") + kJobColumns + " FROM tc_merge_jobs WHERE id = ?", p);
  if (!row) {
    return std::nullopt;
  }
  return read_job(*row);
}

std::vector<Job> JobStore::list() {
  std::vector<Job> out;
  db_.query(std::string("SELECT ") + kJobColumns + " FROM tc_merge_jobs ORDER BY id", {},
            [&out](const Row& r) {
              out.push_back(read_job(r));
              return true;
            });
  return out;
}

void JobStore::update(Job& job) {
  job.updated_at = now_ms();
  const std::vector<Param> p{job.status,
                             job.phase,
                             job.updated_at,
                             job.validated_at,
                             static_cast<long long>(job.validation_run),
                             static_cast<long long>(job.validation_errors),
                             static_cast<long long>(job.validation_warnings),
                             job.estimate_rows,
                             job.estimate_bytes,
                             job.merge_started_at,
                             job.merge_finished_at,
                             job.copied_messages,
                             job.summary.empty() ? std::string("{}") : job.summary,
                             job.id};
  db_.exec(
      "UPDATE tc_merge_jobs SET status = ?, phase = ?, updated_at = ?, validated_at = ?, "
      "validation_run = ?, validation_errors = ?, validation_warnings = ?, estimate_rows = ?, "
      "estimate_bytes = ?, merge_started_at = ?, merge_finished_at = ?, copied_messages = ?, "
      "summary_json = ? WHERE id = ?",
      p);
}

void JobStore::update_parameters(Job& job) {
  job.updated_at = now_ms();
  const std::vector<Param> p{job.a.url,
                             std::string(to_string(job.a.kind)),
                             job.a.node,
                             job.b.url,
                             std::string(to_string(job.b.kind)),
                             job.b.node,
                             job.options.to_json(),
                             job.status,
                             job.updated_at,
                             job.id};
  db_.exec(
      "UPDATE tc_merge_jobs SET source_a_url = ?, source_a_kind = ?, source_a_node = ?, "
      "source_b_url = ?, source_b_kind = ?, source_b_node = ?, options_json = ?, status = ?, "
      "updated_at = ? WHERE id = ?",
      p);
}

void JobStore::save_validation(Job& job, const std::vector<Finding>& findings) {
  Transaction tx(db_);
  const std::vector<Param> id{job.id};
  job.validation_run = static_cast<int>(db_.scalar_int(
                           "SELECT validation_run FROM tc_merge_jobs WHERE id = ?", id)) +
                       1;
  job.validation_errors = 0;
  job.validation_warnings = 0;
  const long long at = now_ms();
  long long n = 0;
  for (const Finding& f : findings) {
    job.validation_errors += f.severity == Severity::Error ? 1 : 0;
    job.validation_warnings += f.severity == Severity::Warning ? 1 : 0;
    const std::vector<Param> p{job.id,    static_cast<long long>(job.validation_run),
                               ++n,       std::string(to_string(f.severity)),
                               f.code,    f.subject,
                               f.message, at};
    db_.exec(
        "INSERT INTO tc_merge_findings (job_id, run, n, severity, code, subject, message, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        p);
  }
  job.validated_at = at;
  // A job that has begun merging stays "merging" (a re-validation may precede a resume).
  if (job.status != status::kMerging && job.status != status::kMerged) {
    job.status = std::string(job.validation_errors == 0 ? status::kValidated : status::kInvalid);
  }
  update(job);
  tx.commit();
}

std::vector<Finding> JobStore::findings(long long id, int run) {
  std::vector<Finding> out;
  const std::vector<Param> p{id, static_cast<long long>(run)};
  db_.query(
      "SELECT severity, code, subject, message FROM tc_merge_findings WHERE job_id = ? AND run = "
      "? ORDER BY n",
      p, [&out](const Row& r) {
        Finding f;
        const std::string s = text(r[0]);
        f.severity = s == "error"     ? Severity::Error
                     : s == "warning" ? Severity::Warning
                                      : Severity::Info;
        f.code = text(r[1]);
        f.subject = text(r[2]);
        f.message = text(r[3]);
        out.push_back(std::move(f));
        return true;
      });
  return out;
}

std::vector<Job> JobStore::merges_other_than(long long id) {
  std::vector<Job> out;
  const std::vector<Param> p{id};
  db_.query(std::string("SELECT ") + kJobColumns +
                " FROM tc_merge_jobs WHERE id <> ? AND status IN ('merging', 'merged', "
                "'verify-failed') ORDER BY id",
            p, [&out](const Row& r) {
              out.push_back(read_job(r));
              return true;
            });
  return out;
}

std::vector<RoomResult> JobStore::rooms(long long id) {
  std::vector<RoomResult> out;
  const std::vector<Param> p{id};
  db_.query(
      "SELECT source, source_room, target_room, action, checkpoint, copied, done, source_count, "
      "source_digest, target_count, target_digest, verified FROM tc_merge_rooms WHERE job_id = ? "
      "ORDER BY source, source_room",
      p, [&out](const Row& r) {
        out.push_back(read_room(r));
        return true;
      });
  return out;
}

void JobStore::insert_rooms(long long id, const std::vector<RoomResult>& rooms) {
  static constexpr Column kColumns[] = {{"job_id", true},
                                        {"source"},
                                        {"source_room"},
                                        {"target_room"},
                                        {"action"},
                                        {"checkpoint", true},
                                        {"copied", true},
                                        {"done", true},
                                        {"source_count", true},
                                        {"source_digest"},
                                        {"target_count", true},
                                        {"target_digest"},
                                        {"verified", true}};
  std::size_t i = 0;
  db_.bulk_insert("tc_merge_rooms", kColumns, [&](Row& row) {
    if (i == rooms.size()) {
      return false;
    }
    const RoomResult& r = rooms[i++];
    row = {std::to_string(id),
           std::string(1, r.source),
           r.source_room,
           r.target_room,
           r.action,
           std::to_string(r.checkpoint),
           std::to_string(r.copied),
           std::string(r.done ? "1" : "0"),
           std::to_string(r.source_count),
           r.source_digest,
           std::to_string(r.target_count),
           r.target_digest,
           std::string(r.verified ? "1" : "0")};
    return true;
  });
}

void JobStore::checkpoint(long long id, const RoomResult& room, long long checkpoint,
                          long long copied, bool done) {
  const std::vector<Param> p{checkpoint,
                             copied,
                             static_cast<long long>(done ? 1 : 0),
                             id,
                             std::string(1, room.source),
                             room.source_room};
  db_.exec(
      "UPDATE tc_merge_rooms SET checkpoint = ?, copied = ?, done = ? WHERE job_id = ? AND "
      "source = ? AND source_room = ?",
      p);
}

void JobStore::save_verification(long long id, const RoomResult& room) {
  const std::vector<Param> p{room.source_count,
                             room.source_digest,
                             room.target_count,
                             room.target_digest,
                             static_cast<long long>(room.verified ? 1 : 0),
                             id,
                             std::string(1, room.source),
                             room.source_room};
  db_.exec(
      "UPDATE tc_merge_rooms SET source_count = ?, source_digest = ?, target_count = ?, "
      "target_digest = ?, verified = ? WHERE job_id = ? AND source = ? AND source_room = ?",
      p);
}

}  // namespace tc::merge
