// SPDX-License-Identifier: Apache-2.0
// Merge jobs, their findings and their per-room progress, kept in the target database:
//   tc_merge_jobs      one row per job: parameters (URLs redacted), status, timestamps, counts
//   tc_merge_findings  every finding of every validation run
//   tc_merge_rooms     the merge plan, one row per source room: action, resumable checkpoint
//                      (written in the same transaction as the rows it covers), verification
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "db.h"
#include "model.h"

namespace tc::merge {

class JobStore {
 public:
  explicit JobStore(Db& target) : db_(target) {}

  /// Whether the job tables exist (catalog lookup; needs no privilege on them).
  bool ready();
  /// CREATE TABLE for the three tables (Oracle: in `tablespace` when given).
  void create_tables(const std::string& tablespace);

  /// Assigns job.id and stores the job. created_at/updated_at are set here.
  void add(Job& job);
  std::optional<Job> load(long long id);
  std::vector<Job> list();
  /// Writes the job's mutable fields (status, phase, timestamps, counts, summary).
  void update(Job& job);
  /// Writes changed parameters (sources, nodes, options) and the status.
  void update_parameters(Job& job);

  /// Records a validation run: bumps job.validation_run, stores the findings under it and
  /// updates the job's counts and status (validated / invalid) in one transaction.
  void save_validation(Job& job, const std::vector<Finding>& findings);
  std::vector<Finding> findings(long long id, int run);
  /// Other jobs that started or finished a merge into this target.
  std::vector<Job> merges_other_than(long long id);

  std::vector<RoomResult> rooms(long long id);
  /// Stores the plan (in the caller's transaction).
  void insert_rooms(long long id, const std::vector<RoomResult>& rooms);
  /// Advances one room's checkpoint (in the caller's transaction, with the rows it covers).
  void checkpoint(long long id, const RoomResult& room, long long checkpoint, long long copied,
                  bool done);
  void save_verification(long long id, const RoomResult& room);

 private:
  Db& db_;
};

}  // namespace tc::merge
