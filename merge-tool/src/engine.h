// SPDX-License-Identifier: Apache-2.0
// Validation and merge of one job.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "db.h"
#include "job_store.h"
#include "model.h"
#include "progress.h"
#include "source.h"

namespace tc::merge {

/// Passwords for the job's redacted URLs (see credentials.h); nullopt = the driver's own.
struct Credentials {
  std::optional<std::string> a;
  std::optional<std::string> b;
  std::optional<std::string> target;
};

struct Tuning {
  std::size_t batch_rows = 5000;              ///< messages per target transaction
  std::size_t batch_bytes = 8 * 1024 * 1024;  ///< ... or this many bytes, whichever first
  std::chrono::milliseconds throttle{0};      ///< pause after each batch (tests, load shaping)
  std::size_t page_rows = 5000;               ///< keyset page size when not streaming
  ProgressMode progress = ProgressMode::Auto;
  std::size_t workers = 2;  ///< rooms copied (and verified) in parallel, one connection set each
};

/// One source room and what the merge does with it.
struct PlanRoom {
  char source = 'a';
  std::string source_jid;       ///< as stored in the source
  std::string jid;              ///< after alias rewriting
  std::string target_jid;       ///< after the collision policy
  std::string action = "copy";  ///< copy, rename, skip
  bool has_row = false;         ///< has a tc_rooms / TC_ROOMS row (else archive only)
  long long count = 0;
  long long bytes = 0;
  long long max_key = 0;
};

struct Plan {
  std::vector<PlanRoom> rooms;  ///< sorted by (source, source_jid)
  long long accounts_unique = 0;
  long long accounts_duplicate = 0;
  long long affiliations = 0;
  long long messages = 0;  ///< to copy (skipped rooms excluded)
  long long bytes = 0;
  long long rooms_to_create = 0;

  const PlanRoom* find(char source, const std::string& source_jid) const;
  void index();

 private:
  std::map<std::pair<char, std::string>, std::size_t> by_source_;
};

/// Opens (read-only) and inspects a source; adds findings for anything wrong with it. nullptr
/// when it cannot be used at all (unreachable, no schema, unknown schema version).
std::unique_ptr<Source> open_source(char label, const SourceSpec& spec,
                                    const std::optional<std::string>& password,
                                    const JobOptions& options, const Tuning& tuning,
                                    std::vector<Finding>& findings);

/// Reads both sources once (rooms, archive statistics, affiliations of colliding rooms,
/// accounts) and decides each room's fate under the job's collision policy. Findings: each
/// collision, affiliation disagreements, account conflicts, id renumbering.
Plan build_plan(Source& a, Source& b, const Job& job, std::vector<Finding>& findings);

/// Fails when a node has the text-conference service running (fresh heartbeat in tc_nodes).
void check_nodes(Db& db, const std::string& where, std::chrono::seconds stale_after,
                 std::vector<Finding>& findings);

/// Reads every room, affiliation and archived message of `source` the way merge reads them and
/// reports each value merge could not write (invalid JIDs, unknown affiliations, rows whose
/// numbers are not numbers, stanzas that are not XML). Collects the rooms' domains.
void check_data(Source& source, const std::string& where, const JobOptions& options,
                std::set<std::string>& domains, std::vector<Finding>& findings);

/// Calls on_bad(column, why) for each integer column of an account row that the target could
/// not convert: merge stops at the first, validation reports them all.
void each_unconvertible_account_column(
    const Row& row,
    const std::function<void(std::string_view column, const std::string& why)>& on_bad);

/// Whether a stored stanza is exactly one well-formed element, as validation requires
/// (check_data.cpp says how).
bool stanza_is_one_element(std::string_view xml);

/// Runs every check and records the run in the job store. Returns the findings.
std::vector<Finding> validate(Job& job, Db& target, JobStore& store, const Credentials& creds,
                              const Tuning& tuning);

/// Copies, then verifies. Refuses (returns 1, nothing written) unless the latest validation
/// found no errors. Returns 0 when every room verified, 1 otherwise. `out` gets the report.
/// `target_url` (as given, before the password is applied) lets extra workers connect.
int merge(Job& job, Db& target, const std::string& target_url, JobStore& store,
          const Credentials& creds, const Tuning& tuning, std::FILE* out);

/// Prints a per-room verification table (and totals) for a finished merge.
void print_verification(const std::vector<RoomResult>& rooms, std::FILE* out);

}  // namespace tc::merge
