// SPDX-License-Identifier: Apache-2.0
// The tc-merge command line. Every exception of the tool stops here (STYLE.md 3.5).
#include <ctime>
#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "merge/tc_merge.h"
#include "storage/store.h"

#include "credentials.h"
#include "db.h"
#include "engine.h"
#include "job_store.h"
#include "testdata.h"
#include "transform.h"

namespace tc::merge {
namespace {

namespace json = boost::json;

constexpr int kExitOk = 0;
constexpr int kExitFindings = 1;
constexpr int kExitUsage = 2;

struct Globals {
  std::string target;
  std::optional<std::string> target_password;
  std::optional<std::string> password_a;
  std::optional<std::string> password_b;
  bool json = false;
};

std::string format_time(long long ms) {
  if (ms <= 0) {
    return "-";
  }
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buffer;
}

std::string scheme_of(const std::string& url) {
  const auto colon = url.find(':');
  std::string s = to_lower(url.substr(0, colon == std::string::npos ? 0 : colon));
  return s == "postgres" ? "postgresql" : s;
}

json::object job_json(const Job& j) {
  json::object o;
  o["id"] = j.id;
  o["db_type"] = j.db_type;
  o["source_a"] = {
      {"url", j.a.url}, {"kind", std::string(to_string(j.a.kind))}, {"node", j.a.node}};
  o["source_b"] = {
      {"url", j.b.url}, {"kind", std::string(to_string(j.b.kind))}, {"node", j.b.node}};
  o["target"] = j.target_url;
  boost::system::error_code ec;
  o["options"] = json::parse(j.options.to_json(), ec);
  o["status"] = j.status;
  o["phase"] = j.phase;
  o["created_at"] = j.created_at;
  o["updated_at"] = j.updated_at;
  o["validated_at"] = j.validated_at;
  o["validation_run"] = j.validation_run;
  o["validation_errors"] = j.validation_errors;
  o["validation_warnings"] = j.validation_warnings;
  o["estimate_rows"] = j.estimate_rows;
  o["estimate_bytes"] = j.estimate_bytes;
  o["merge_started_at"] = j.merge_started_at;
  o["merge_finished_at"] = j.merge_finished_at;
  o["copied_messages"] = j.copied_messages;
  json::value summary = json::parse(j.summary.empty() ? "{}" : j.summary, ec);
  o["summary"] = ec ? json::value(json::object{}) : summary;
  return o;
}

json::array findings_json(const std::vector<Finding>& findings) {
  json::array a;
  for (const Finding& f : findings) {
    a.push_back({{"severity", std::string(to_string(f.severity))},
                 {"code", f.code},
                 {"subject", f.subject},
                 {"message", f.message}});
  }
  return a;
}

json::array rooms_json(const std::vector<RoomResult>& rooms) {
  json::array a;
  for (const RoomResult& r : rooms) {
    a.push_back({{"source", std::string(1, r.source)},
                 {"source_room", r.source_room},
                 {"target_room", r.target_room},
                 {"action", r.action},
                 {"copied", r.copied},
                 {"done", r.done},
                 {"source_count", r.source_count},
                 {"source_sha256", r.source_digest},
                 {"target_count", r.target_count},
                 {"target_sha256", r.target_digest},
                 {"verified", r.verified}});
  }
  return a;
}

void print_findings(const std::vector<Finding>& findings, std::FILE* out) {
  for (const Finding& f : findings) {
    std::fprintf(out, "%-7s %-24s %s%s%s\n", std::string(to_string(f.severity)).c_str(),
                 f.code.c_str(), f.subject.c_str(), f.subject.empty() ? "" : ": ",
                 f.message.c_str());
  }
}

/// A simple text table: columns padded to their widest cell.
void print_table(const std::vector<std::vector<std::string>>& rows, std::FILE* out) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(width[i] - row[i].size() + 2, ' ');
      }
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::unique_ptr<Db> open_target(const Globals& g) {
  if (g.target.empty()) {
    throw CLI::ValidationError("--target",
                               "the target database URL is required (or $TC_MERGE_TARGET)");
  }
  return open_db(with_password(g.target, g.target_password));
}

Job load_job_or_throw(JobStore& store, long long id) {
  if (!store.ready()) {
    throw DbError(DbFailure::Missing, "the target has no merge jobs (no tc_merge_jobs table)");
  }
  auto job = store.load(id);
  if (!job) {
    throw DbError(DbFailure::Missing, "no job " + std::to_string(id) + " in this target");
  }
  return *job;
}

// ---- jobs add ----

struct AddOptions {
  std::string type;
  std::string source_a;
  std::string source_b;
  std::string kind_a = "auto";
  std::string kind_b = "auto";
  std::string node_a;
  std::string node_b;
  std::string policy = "fail";
  std::string rename_suffix;
  std::string conference_domain;
  std::vector<std::string> aliases;
  int stale_after = 30;
  std::string tablespace;
  std::string features = "tc";
};

int jobs_add(const Globals& g, const AddOptions& o) {
  Job job;
  const auto policy = parse_collision_policy(o.policy);
  const auto kind_a = parse_source_kind(o.kind_a);
  const auto kind_b = parse_source_kind(o.kind_b);
  if (!policy || !kind_a || !kind_b) {
    std::fprintf(stderr, "tc-merge: bad --collision-policy or --source-*-kind\n");
    return kExitUsage;
  }
  job.db_type = o.type.empty() ? scheme_of(g.target) : o.type;
  if (job.db_type == "oracle" && o.tablespace.empty()) {
    std::fprintf(stderr, "tc-merge: an Oracle job needs --tablespace\n");
    return kExitUsage;
  }
  if (o.features != "tc") {
    std::fprintf(stderr, "tc-merge: --features: only \"tc\" (text conference) can be merged\n");
    return kExitUsage;
  }
  job.a = {storage::redact_url(o.source_a), *kind_a, o.node_a};
  job.b = {storage::redact_url(o.source_b), *kind_b, o.node_b};
  job.target_url = storage::redact_url(g.target);
  job.options.collision = *policy;
  job.options.rename_suffix = o.rename_suffix;
  job.options.conference_domain = o.conference_domain;
  job.options.vendor_aliases = o.aliases;
  job.options.stale_after = std::chrono::seconds(o.stale_after);
  job.options.tablespace = o.tablespace;
  job.options.features = o.features;

  const std::string target_url = with_password(g.target, g.target_password);
  auto target = open_db(target_url);
  JobStore store(*target);
  if (!store.ready()) {
    // The job lives in the target, next to our schema: create the schema first (storage's
    // migrations), so that the target is a tcbroker database from the start.
    if (!target->table_exists("tc_schema_version")) {
      auto opened = storage::open_store(target_url);
      if (!opened) {
        std::fprintf(stderr, "tc-merge: cannot open the target to create its schema: %s\n",
                     opened.error().message().c_str());
        return kExitUsage;
      }
      if (auto migrated = (*opened)->migrate(); !migrated) {
        std::fprintf(stderr, "tc-merge: cannot create the tcbroker schema in the target: %s\n",
                     migrated.error().message().c_str());
        return kExitUsage;
      }
    }
    store.create_tables(o.tablespace);
  }
  store.add(job);
  if (g.json) {
    std::cout << json::serialize(job_json(job)) << "\n";
  } else {
    std::printf("job %lld added (%s -> %s); next: tc-merge validate %lld\n", job.id,
                (job.a.url + " + " + job.b.url).c_str(), job.target_url.c_str(), job.id);
  }
  return kExitOk;
}

struct SetOptions {
  std::optional<std::string> source_a;
  std::optional<std::string> source_b;
  std::optional<std::string> kind_a;
  std::optional<std::string> kind_b;
  std::optional<std::string> node_a;
  std::optional<std::string> node_b;
  std::optional<std::string> policy;
  std::optional<std::string> rename_suffix;
  std::optional<std::string> conference_domain;
  std::vector<std::string> aliases;
  std::optional<int> stale_after;
};

int jobs_set(const Globals& g, long long id, const SetOptions& o) {
  auto target = open_target(g);
  JobStore store(*target);
  Job job = load_job_or_throw(store, id);
  if (job.status == status::kMerging || job.status == status::kMerged ||
      job.status == status::kVerifyFailed) {
    std::fprintf(stderr, "tc-merge: job %lld has begun merging (%s); its parameters are fixed\n",
                 id, job.status.c_str());
    return kExitFindings;
  }
  if (o.source_a) {
    job.a.url = storage::redact_url(*o.source_a);
  }
  if (o.source_b) {
    job.b.url = storage::redact_url(*o.source_b);
  }
  for (const auto& [text, kind] :
       {std::pair{&o.kind_a, &job.a.kind}, std::pair{&o.kind_b, &job.b.kind}}) {
    if (*text) {
      const auto parsed = parse_source_kind(**text);
      if (!parsed) {
        std::fprintf(stderr, "tc-merge: bad source kind %s\n", (*text)->c_str());
        return kExitUsage;
      }
      *kind = *parsed;
    }
  }
  if (o.node_a) {
    job.a.node = *o.node_a;
  }
  if (o.node_b) {
    job.b.node = *o.node_b;
  }
  if (o.policy) {
    const auto parsed = parse_collision_policy(*o.policy);
    if (!parsed) {
      std::fprintf(stderr, "tc-merge: bad --collision-policy %s\n", o.policy->c_str());
      return kExitUsage;
    }
    job.options.collision = *parsed;
  }
  if (o.rename_suffix) {
    job.options.rename_suffix = *o.rename_suffix;
  }
  if (o.conference_domain) {
    job.options.conference_domain = *o.conference_domain;
  }
  if (!o.aliases.empty()) {
    job.options.vendor_aliases = o.aliases;
  }
  if (o.stale_after) {
    job.options.stale_after = std::chrono::seconds(*o.stale_after);
  }
  job.status = std::string(status::kCreated);  // validate again before merging
  store.update_parameters(job);
  if (g.json) {
    std::cout << json::serialize(job_json(job)) << "\n";
  } else {
    std::printf("job %lld updated; next: tc-merge validate %lld\n", id, id);
  }
  return kExitOk;
}

int jobs_list(const Globals& g) {
  auto target = open_target(g);
  JobStore store(*target);
  const std::vector<Job> jobs = store.ready() ? store.list() : std::vector<Job>{};
  if (g.json) {
    json::array a;
    for (const Job& j : jobs) {
      a.push_back(job_json(j));
    }
    std::cout << json::serialize(a) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows{
      {"ID", "STATUS", "CREATED", "VALIDATED", "ERR", "WARN", "MESSAGES", "SOURCE A", "SOURCE B"}};
  for (const Job& j : jobs) {
    rows.push_back({std::to_string(j.id), j.status, format_time(j.created_at),
                    format_time(j.validated_at), std::to_string(j.validation_errors),
                    std::to_string(j.validation_warnings), std::to_string(j.copied_messages),
                    j.a.url, j.b.url});
  }
  print_table(rows, stdout);
  return kExitOk;
}

int jobs_show(const Globals& g, long long id) {
  auto target = open_target(g);
  JobStore store(*target);
  const Job job = load_job_or_throw(store, id);
  const auto findings = store.findings(id, job.validation_run);
  const auto rooms = store.rooms(id);
  if (g.json) {
    json::object o = job_json(job);
    o["findings"] = findings_json(findings);
    o["rooms"] = rooms_json(rooms);
    std::cout << json::serialize(o) << "\n";
    return kExitOk;
  }
  print_table(
      {{"job", std::to_string(job.id)},
       {"status", job.status + (job.phase.empty() ? "" : " (phase " + job.phase + ")")},
       {"database type", job.db_type},
       {"feature tables", job.options.features},
       {"source A", job.a.url + " [" + std::string(to_string(job.a.kind)) + "]" +
                        (job.a.node.empty() ? "" : " node " + job.a.node)},
       {"source B", job.b.url + " [" + std::string(to_string(job.b.kind)) + "]" +
                        (job.b.node.empty() ? "" : " node " + job.b.node)},
       {"target", job.target_url},
       {"collision policy", std::string(to_string(job.options.collision))},
       {"conference domain",
        job.options.conference_domain.empty() ? "-" : job.options.conference_domain},
       {"tablespace", job.options.tablespace.empty() ? "-" : job.options.tablespace},
       {"created", format_time(job.created_at)},
       {"updated", format_time(job.updated_at)},
       {"validated", format_time(job.validated_at) + " (run " + std::to_string(job.validation_run) +
                         ": " + std::to_string(job.validation_errors) + " errors, " +
                         std::to_string(job.validation_warnings) + " warnings)"},
       {"estimate",
        std::to_string(job.estimate_rows) + " rows, " + format_bytes(job.estimate_bytes)},
       {"merge started", format_time(job.merge_started_at)},
       {"merge finished", format_time(job.merge_finished_at)},
       {"messages copied", std::to_string(job.copied_messages)},
       {"summary", job.summary.empty() ? "{}" : job.summary}},
      stdout);
  if (!findings.empty()) {
    std::printf("\nfindings of validation run %d:\n", job.validation_run);
    print_findings(findings, stdout);
  }
  if (!rooms.empty()) {
    std::printf("\nrooms:\n");
    print_verification(rooms, stdout);
  }
  return kExitOk;
}

int validate_cmd(const Globals& g, long long id, const Tuning& tuning) {
  auto target = open_target(g);
  JobStore store(*target);
  Job job = load_job_or_throw(store, id);
  const auto findings =
      validate(job, *target, store, {g.password_a, g.password_b, g.target_password}, tuning);
  if (g.json) {
    json::object o;
    o["job"] = id;
    o["run"] = job.validation_run;
    o["errors"] = job.validation_errors;
    o["warnings"] = job.validation_warnings;
    o["status"] = job.status;
    o["findings"] = findings_json(findings);
    std::cout << json::serialize(o) << "\n";
  } else {
    print_findings(findings, stdout);
    std::printf("validation run %d of job %lld: %d errors, %d warnings -> %s\n", job.validation_run,
                id, job.validation_errors, job.validation_warnings,
                job.validation_errors == 0 ? "ready to merge (tc-merge merge ID)"
                                           : "fix the errors and validate again");
  }
  return job.validation_errors == 0 ? kExitOk : kExitFindings;
}

int merge_cmd(const Globals& g, long long id, const Tuning& tuning) {
  auto target = open_target(g);
  JobStore store(*target);
  Job job = load_job_or_throw(store, id);
  return merge(job, *target, g.target, store, {g.password_a, g.password_b, g.target_password},
               tuning, stdout);
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{
      "tc-merge: merge the two per-node databases of a redundancy group into one shared "
      "database (text-conference tables), or import the vendor's."};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  app.add_option("--target", g.target, "target database URL (postgresql://, sqlite://, odbc://)")
      ->envname("TC_MERGE_TARGET");
  app.add_option("--target-password", g.target_password,
                 "target password (better: $TC_MERGE_PASSWORD_TARGET or ~/.pgpass)")
      ->envname("TC_MERGE_PASSWORD_TARGET");
  app.add_option("--source-a-password", g.password_a,
                 "password for source A's stored (redacted) URL")
      ->envname("TC_MERGE_PASSWORD_A");
  app.add_option("--source-b-password", g.password_b,
                 "password for source B's stored (redacted) URL")
      ->envname("TC_MERGE_PASSWORD_B");
  app.add_flag("--json", g.json, "machine-readable output");

  auto* jobs = app.add_subcommand("jobs", "add, list and show merge jobs");
  jobs->require_subcommand(1);
  jobs->fallthrough();
  AddOptions add;
  auto* add_cmd = jobs->add_subcommand("add", "record a new merge job in the target");
  add_cmd->fallthrough();
  add_cmd->add_option("--type", add.type,
                      "database type: postgresql, sqlite, odbc, oracle (default: the target's)");
  add_cmd->add_option("--source-a", add.source_a, "source A (node A's database) URL")->required();
  add_cmd->add_option("--source-b", add.source_b, "source B (node B's database) URL")->required();
  add_cmd->add_option("--source-a-kind", add.kind_a, "auto, tc or vendor")->capture_default_str();
  add_cmd->add_option("--source-b-kind", add.kind_b, "auto, tc or vendor")->capture_default_str();
  add_cmd->add_option("--node-a", add.node_a, "name of the node that used source A");
  add_cmd->add_option("--node-b", add.node_b, "name of the node that used source B");
  add_cmd
      ->add_option("--collision-policy", add.policy,
                   "same room JID in both sources: fail, keep-a, keep-b or rename")
      ->capture_default_str();
  add_cmd->add_option("--rename-suffix", add.rename_suffix,
                      "rename policy: B's room becomes <local>-<suffix>@<domain> (default: "
                      "--node-b, else \"b\")");
  add_cmd->add_option("--conference-domain", add.conference_domain,
                      "MUC domain of the merged rooms (required for vendor sources)");
  add_cmd->add_option("--vendor-alias", add.aliases,
                      "vendor chat-node alias to rewrite (repeatable; default: every domain of "
                      "the vendor's room JIDs)");
  add_cmd
      ->add_option("--stale-after", add.stale_after,
                   "seconds after which a node heartbeat counts as stopped")
      ->capture_default_str();
  add_cmd->add_option("--tablespace", add.tablespace, "Oracle: tablespace of the merged tables");
  add_cmd->add_option("--features", add.features, "feature tables (only tc)")
      ->capture_default_str();

  SetOptions set;
  long long set_id = 0;
  auto* set_cmd = jobs->add_subcommand("set", "change a job's parameters (before it merges)");
  set_cmd->fallthrough();
  set_cmd->add_option("ID", set_id, "job id")->required();
  set_cmd->add_option("--source-a", set.source_a, "source A URL");
  set_cmd->add_option("--source-b", set.source_b, "source B URL");
  set_cmd->add_option("--source-a-kind", set.kind_a, "auto, tc or vendor");
  set_cmd->add_option("--source-b-kind", set.kind_b, "auto, tc or vendor");
  set_cmd->add_option("--node-a", set.node_a, "node of source A");
  set_cmd->add_option("--node-b", set.node_b, "node of source B");
  set_cmd->add_option("--collision-policy", set.policy, "fail, keep-a, keep-b or rename");
  set_cmd->add_option("--rename-suffix", set.rename_suffix, "suffix of renamed rooms of B");
  set_cmd->add_option("--conference-domain", set.conference_domain, "MUC domain (vendor)");
  set_cmd->add_option("--vendor-alias", set.aliases, "vendor chat-node aliases (replaces)");
  set_cmd->add_option("--stale-after", set.stale_after, "node heartbeat staleness, seconds");

  jobs->add_subcommand("list", "list the jobs recorded in the target")->fallthrough();
  long long show_id = 0;
  auto* show = jobs->add_subcommand("show", "a job's parameters, findings and rooms");
  show->fallthrough();
  show->add_option("ID", show_id, "job id")->required();

  Tuning tuning;
  long long validate_id = 0;
  auto* validate_sub = app.add_subcommand("validate", "check everything; exit 1 on errors");
  validate_sub->fallthrough();
  validate_sub->add_option("ID", validate_id, "job id")->required();
  validate_sub->add_option("--page-size", tuning.page_rows, "rows per keyset page");

  long long merge_id = 0;
  std::string progress = "auto";
  int throttle_ms = 0;
  auto* merge_sub = app.add_subcommand("merge", "copy and verify (after a clean validation)");
  merge_sub->fallthrough();
  merge_sub->add_option("ID", merge_id, "job id")->required();
  merge_sub->add_option("--batch-size", tuning.batch_rows, "messages per target transaction")
      ->capture_default_str();
  merge_sub->add_option("--page-size", tuning.page_rows, "rows per keyset page (non-COPY reads)")
      ->capture_default_str();
  merge_sub->add_option("--progress", progress, "auto, bar, lines or none")->capture_default_str();
  merge_sub->add_option("--throttle-ms", throttle_ms, "pause after each batch (testing)");
  merge_sub->add_option("--workers", tuning.workers, "rooms copied in parallel (connections each)")
      ->capture_default_str();

  TestdataOptions td;
  auto* testdata = app.add_subcommand("testdata", "create two legacy per-node databases");
  testdata->add_option("--source-a", td.url_a, "database A URL (empty database)")->required();
  testdata->add_option("--source-b", td.url_b, "database B URL (empty database)")->required();
  testdata->add_option("--kind", td.kind, "tc or vendor")->capture_default_str();
  testdata->add_option("--rooms", td.rooms, "rooms per database")->capture_default_str();
  testdata->add_option("--messages", td.messages, "messages per database")->capture_default_str();
  testdata->add_option("--collisions", td.collisions, "rooms with the same JID in both")
      ->capture_default_str();
  testdata->add_option("--accounts", td.accounts, "accounts per database")->capture_default_str();
  testdata->add_option("--large-every", td.large_every, "every Nth message ~70 kB; 0 = none")
      ->capture_default_str();
  testdata->add_option("--seed", td.seed, "random seed")->capture_default_str();
  testdata->add_option("--domain", td.domain, "MUC domain (tc kind)")->capture_default_str();
  testdata->add_option("--alias-a", td.alias_a, "vendor chat-node alias of A")
      ->capture_default_str();
  testdata->add_option("--alias-b", td.alias_b, "vendor chat-node alias of B")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (progress == "bar") {
    tuning.progress = ProgressMode::Bar;
  } else if (progress == "lines") {
    tuning.progress = ProgressMode::Lines;
  } else if (progress == "none") {
    tuning.progress = ProgressMode::None;
  }
  tuning.throttle = std::chrono::milliseconds(throttle_ms);
  tuning.batch_rows = std::max<std::size_t>(tuning.batch_rows, 1);
  tuning.page_rows = std::max<std::size_t>(tuning.page_rows, 1);

  try {
    if (add_cmd->parsed()) {
      return jobs_add(g, add);
    }
    if (set_cmd->parsed()) {
      return jobs_set(g, set_id, set);
    }
    if (jobs->get_subcommand("list")->parsed()) {
      return jobs_list(g);
    }
    if (show->parsed()) {
      return jobs_show(g, show_id);
    }
    if (validate_sub->parsed()) {
      return validate_cmd(g, validate_id, tuning);
    }
    if (merge_sub->parsed()) {
      return merge_cmd(g, merge_id, tuning);
    }
    if (testdata->parsed()) {
      return generate_testdata(td, stderr);
    }
  } catch (const CLI::ValidationError& e) {
    std::fprintf(stderr, "tc-merge: %s\n", e.what());
    return kExitUsage;
  } catch (const DbError& e) {
    std::fprintf(stderr, "tc-merge: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tc-merge: unexpected error: %s\n", e.what());
    return kExitUsage;
  }
  return kExitUsage;
}

}  // namespace tc::merge
