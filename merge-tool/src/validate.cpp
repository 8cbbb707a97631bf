// SPDX-License-Identifier: Apache-2.0
// tc-merge validate: every check runs, whatever an earlier one found, so one run reports every
// problem. A check that cannot run (a query fails) becomes a finding itself.
#include <algorithm>
#include <functional>
#include <set>

#include "engine.h"
#include "transform.h"

namespace tc::merge {
namespace {

/// Runs one check; a database error becomes an error finding instead of ending validation.
void guarded(std::vector<Finding>& findings, const std::string& what,
             const std::function<void()>& check) {
  try {
    check();
  } catch (const DbError& e) {
    const bool permission = e.failure() == DbFailure::Permission;
    const bool reported = std::any_of(findings.begin(), findings.end(),
                                      [](const Finding& f) { return f.code == "target-rights"; });
    if (permission && reported && what == "target") {
      // Already an error above, with the GRANT that fixes it.
      findings.push_back({Severity::Info, "not-checked", what,
                          std::string("skipped for lack of privileges: ") + e.what()});
      return;
    }
    findings.push_back({Severity::Error, permission ? "target-rights" : "check-failed", what,
                        std::string("could not check: ") + e.what()});
  }
}

const char* const kDataTables[] = {"tc_accounts", "tc_rooms", "tc_room_affiliations", "tc_archive"};
const char* const kJobTables[] = {"tc_merge_jobs", "tc_merge_findings", "tc_merge_rooms"};

void check_rights_postgresql(Db& target, std::vector<Finding>& findings) {
  std::string missing;
  const auto need = [&](const std::string& table, const char* privilege) {
    if (!target.table_exists(table)) {
      return;
    }
    const std::vector<Param> p{table, std::string(privilege)};
    if (target
            .scalar("SELECT CAST(has_table_privilege(CAST(? AS TEXT), CAST(? AS TEXT)) AS TEXT)", p)
            .value_or("") != "true") {
      findings.push_back({Severity::Error, "target-rights", table,
                          "the target user lacks " + std::string(privilege) + " on " + table +
                              " (GRANT " + privilege + " ON " + table + " TO <user>)"});
    }
  };
  for (const char* t : kDataTables) {
    need(t, "SELECT");
    need(t, "INSERT");
  }
  for (const char* t : kJobTables) {
    need(t, "SELECT");
    need(t, "INSERT");
    need(t, "UPDATE");
  }
  need("tc_schema_version", "SELECT");
  need("tc_nodes", "SELECT");
  // The merge stages each batch in a temporary table before INSERT ... ON CONFLICT.
  if (target.scalar("SELECT CAST(has_database_privilege(current_database(), 'TEMP') AS TEXT)")
          .value_or("") != "true") {
    findings.push_back({Severity::Error, "target-rights", "database",
                        "the target user may not create temporary tables (GRANT TEMP ON "
                        "DATABASE <db> TO <user>)"});
  }
}

/// Other databases: try each INSERT in a transaction that is rolled back, one savepoint each.
void check_rights_by_trial(Db& target, std::vector<Finding>& findings) {
  static const std::pair<const char*, const char*> kProbes[] = {
      {"tc_accounts",
       "INSERT INTO tc_accounts (username, scram_sha1_salt, scram_sha1_iterations, "
       "scram_sha1_stored_key, scram_sha1_server_key, scram_sha256_salt, scram_sha256_iterations, "
       "scram_sha256_stored_key, scram_sha256_server_key, created_at) VALUES "
       "('tc-merge-probe', '', 0, '', '', '', 0, '', '', 0)"},
      {"tc_rooms", "INSERT INTO tc_rooms (jid, created_at) VALUES ('tc-merge-probe', 0)"},
      {"tc_room_affiliations",
       "INSERT INTO tc_room_affiliations (room_jid, user_jid, affiliation) VALUES "
       "('tc-merge-probe', 'probe', 'member')"},
      {"tc_archive",
       "INSERT INTO tc_archive (room_jid, stanza_id, stanza_xml, created_at) VALUES "
       "('tc-merge-probe', 'probe', '', 0)"},
      {"tc_merge_rooms", "UPDATE tc_merge_rooms SET done = done WHERE job_id = -1"},
  };
  Transaction tx(target);
  for (const auto& [table, sql] : kProbes) {
    target.exec("SAVEPOINT tc_merge_probe");
    try {
      target.exec(sql);
    } catch (const DbError& e) {
      findings.push_back({Severity::Error, "target-rights", table,
                          std::string("the target user cannot write ") + table + ": " + e.what()});
    }
    target.exec("ROLLBACK TO SAVEPOINT tc_merge_probe");
  }
  // ~Transaction rolls everything back.
}

bool same_database(const std::string& x, const std::string& y) {
  return !x.empty() && to_lower(x) == to_lower(y);
}

}  // namespace

std::vector<Finding> validate(Job& job, Db& target, JobStore& store, const Credentials& creds,
                              const Tuning& tuning) {
  std::vector<Finding> f;

  // The job's own parameters.
  if (job.options.features != "tc") {
    f.push_back({Severity::Error, "features", job.options.features,
                 "only the text-conference feature tables (tc) can be merged"});
  }
  if (job.db_type == "oracle" && job.options.tablespace.empty()) {
    f.push_back({Severity::Error, "tablespace-missing", "target",
                 "an Oracle job needs --tablespace (where the merged tables go)"});
  }
  if (same_database(job.a.url, job.b.url)) {
    f.push_back({Severity::Error, "same-database", "sources",
                 "source A and source B are the same database"});
  }
  for (const SourceSpec* s : {&job.a, &job.b}) {
    if (same_database(s->url, job.target_url)) {
      f.push_back({Severity::Error, "same-database", "target",
                   "the target is one of the sources; sources are never written: merge into a "
                   "third, empty database"});
    }
  }

  // Sources: reachable, schema present and known.
  auto a = open_source('a', job.a, creds.a, job.options, tuning, f);
  auto b = open_source('b', job.b, creds.b, job.options, tuning, f);

  // The text-conference service must be stopped on both nodes of the group.
  for (Source* s : {a.get(), b.get()}) {
    if (s == nullptr) {
      continue;
    }
    const std::string where = std::string("source ") + static_cast<char>(s->label() - 32);
    if (s->kind() == SourceKind::Vendor) {
      f.push_back({Severity::Warning, "service-unknown", where,
                   "the vendor's database holds no node state: make sure its text-conference "
                   "service (Cisco XCP Text Conference Manager) is stopped before merging"});
      continue;
    }
    guarded(f, where, [&] { check_nodes(s->db(), where, job.options.stale_after, f); });
  }
  guarded(f, "target", [&] {
    if (target.dialect() == Dialect::Postgresql) {
      check_rights_postgresql(target, f);
    } else {
      check_rights_by_trial(target, f);
    }
  });
  guarded(f, "target", [&] { check_nodes(target, "target", job.options.stale_after, f); });

  // Target: schema, rights, emptiness, earlier merges.
  guarded(f, "target", [&] {
    if (!target.table_exists("tc_schema_version")) {
      f.push_back({Severity::Error, "target-schema-missing", "target",
                   "the target has no tcbroker schema; `tc-merge jobs add` creates it (or "
                   "start tcbroker once against it)"});
      return;
    }
    const int version =
        static_cast<int>(target.scalar_int("SELECT MAX(version) FROM tc_schema_version"));
    if (!known_schema_version(version)) {
      f.push_back(
          {Severity::Error, "target-schema-unknown", "target",
           "target schema version " + std::to_string(version) + " is not one this tc-merge knows"});
    }
  });
  guarded(f, "target", [&] {
    const bool resuming = job.status == status::kMerging || job.status == status::kVerifyFailed;
    std::string held;
    for (const char* t : kDataTables) {
      if (!target.table_exists(t)) {
        continue;
      }
      const long long n = target.scalar_int(std::string("SELECT COUNT(*) FROM ") + t);
      if (n > 0) {
        held += (held.empty() ? "" : ", ") + std::to_string(n) + " rows in " + t;
      }
    }
    if (resuming) {
      f.push_back({Severity::Info, "merge-resume", "target",
                   "this job has begun merging (" + (held.empty() ? "nothing yet" : held) +
                       "); `tc-merge merge` resumes where it stopped"});
    } else if (!held.empty()) {
      f.push_back({Severity::Error, "target-not-empty", "target",
                   "the target already holds data (" + held +
                       "); merge into an empty database (restore it from the backup taken "
                       "before, or create a new one)"});
    }
    for (const Job& other : store.merges_other_than(job.id)) {
      f.push_back({Severity::Error, "target-earlier-merge", "job " + std::to_string(other.id),
                   "job " + std::to_string(other.id) + " (" + other.status +
                       ") already merged into this target; a target takes one merge"});
    }
  });

  // The data itself: what merge would fail to write.
  std::set<std::string> domains;
  for (Source* s : {a.get(), b.get()}) {
    if (s != nullptr) {
      const std::string where = std::string("source ") + static_cast<char>(s->label() - 32);
      guarded(f, where, [&] { check_data(*s, where, job.options, domains, f); });
    }
  }
  if (job.options.conference_domain.empty() && domains.size() > 1) {
    std::string list;
    for (const auto& d : domains) {
      list += (list.empty() ? "" : ", ") + d;
    }
    f.push_back({Severity::Warning, "room-domain-mixed", "sources",
                 "the rooms are on more than one domain (" + list +
                     "); a group serves one conference domain (--conference-domain checks it)"});
  }

  // Collisions, conflicts, renumbering and the estimate.
  if (a && b) {
    try {
      const Plan plan = build_plan(*a, *b, job, f);
      // Rows: the archive, rooms, affiliations and accounts. Bytes: the archive's text plus
      // about 300 bytes per other row; indexes roughly double it on disk.
      job.estimate_rows =
          plan.messages + plan.rooms_to_create + plan.affiliations + plan.accounts_unique;
      job.estimate_bytes =
          plan.bytes + 300 * (plan.rooms_to_create + plan.affiliations + plan.accounts_unique);
      f.push_back({Severity::Info, "estimate", "target",
                   "the target will receive about " + std::to_string(job.estimate_rows) +
                       " rows (" + std::to_string(plan.messages) + " messages in " +
                       std::to_string(plan.rooms.size()) + " source rooms, " +
                       std::to_string(plan.rooms_to_create) + " rooms, " +
                       std::to_string(plan.affiliations) + " affiliations, " +
                       std::to_string(plan.accounts_unique) + " accounts) and about " +
                       format_bytes(job.estimate_bytes) + " of data (about " +
                       format_bytes(job.estimate_bytes * 2) +
                       " on disk with indexes): check the free space"});
    } catch (const DbError& e) {
      f.push_back({Severity::Error, "check-failed", "sources",
                   std::string("could not read the sources to plan the merge: ") + e.what()});
    } catch (const DataError& e) {
      // Reported above by check_data (room-unreadable); the plan cannot be built without it.
      f.push_back({Severity::Error, "check-failed", "sources",
                   std::string("could not read the sources to plan the merge: ") + e.what()});
    }
  } else {
    f.push_back({Severity::Info, "plan-skipped", "sources",
                 "collisions and the estimate are checked once both sources can be read"});
  }
  store.save_validation(job, f);
  return f;
}

}  // namespace tc::merge
