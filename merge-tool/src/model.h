// SPDX-License-Identifier: Apache-2.0
// The merge job and what validation finds, as plain values.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tc::merge {

/// What a source database holds. Auto: decided at validation (tc_schema_version means Tc,
/// the vendor's tc_msgarchive means Vendor).
enum class SourceKind { Auto, Tc, Vendor };

/// What happens when both sources hold a room with the same JID (after alias rewriting).
///   Fail   - validation error for each such room (default): the operator decides first.
///   KeepA  - source A's room (config, subject, affiliations, archive) is kept; B's is not copied.
///   KeepB  - the reverse.
///   Rename - both are kept; B's room becomes <local>-<suffix>@<domain> (suffix: --rename-suffix,
///            default B's node name or "b"), rewritten in its affiliations and stored stanzas.
enum class CollisionPolicy { Fail, KeepA, KeepB, Rename };

enum class Severity { Info, Warning, Error };

std::string_view to_string(SourceKind kind);
std::optional<SourceKind> parse_source_kind(std::string_view text);
std::string_view to_string(CollisionPolicy policy);
std::optional<CollisionPolicy> parse_collision_policy(std::string_view text);
std::string_view to_string(Severity severity);

/// Job states, in the order a job normally goes through them.
namespace status {
inline constexpr std::string_view kCreated = "created";
inline constexpr std::string_view kInvalid = "invalid";      ///< latest validation found errors
inline constexpr std::string_view kValidated = "validated";  ///< latest validation: no errors
inline constexpr std::string_view kMerging = "merging";      ///< started; re-run to resume
inline constexpr std::string_view kMerged = "merged";        ///< copied and verified
inline constexpr std::string_view kVerifyFailed = "verify-failed";
}  // namespace status

struct JobOptions {
  CollisionPolicy collision = CollisionPolicy::Fail;
  std::string rename_suffix;      ///< "" = node B's name, or "b"
  std::string conference_domain;  ///< MUC domain of the group; required for vendor sources
  std::vector<std::string> vendor_aliases;  ///< chat-node aliases to rewrite; detected if empty
  std::chrono::seconds stale_after{30};     ///< a node heartbeat older than this is "stopped"
  std::string tablespace;                   ///< Oracle targets
  std::string features = "tc";              ///< feature tables; "tc" (text conference) only

  std::string to_json() const;
  static JobOptions from_json(std::string_view json);
};

struct SourceSpec {
  std::string url;  ///< redacted when stored
  SourceKind kind = SourceKind::Auto;
  std::string node;  ///< the node that used this database ("" = unknown)
};

struct Job {
  long long id = 0;
  std::string db_type;
  SourceSpec a;
  SourceSpec b;
  std::string target_url;  ///< redacted
  JobOptions options;
  std::string status{status::kCreated};
  std::string phase;  ///< merge progress: "", "archive", "verify", "done"
  long long created_at = 0;
  long long updated_at = 0;
  long long validated_at = 0;
  int validation_run = 0;
  int validation_errors = 0;
  int validation_warnings = 0;
  long long estimate_rows = 0;
  long long estimate_bytes = 0;
  long long merge_started_at = 0;
  long long merge_finished_at = 0;
  long long copied_messages = 0;
  std::string summary;  ///< JSON: counts and verification of the last merge
};

struct Finding {
  Severity severity = Severity::Info;
  std::string code;     ///< stable identifier, e.g. "room-collision"
  std::string subject;  ///< what it is about: "source A", a room JID, a privilege
  std::string message;  ///< for people
};

/// Per-room outcome of a merge (also the resumable checkpoint).
struct RoomResult {
  char source = 'a';
  std::string source_room;
  std::string target_room;
  std::string action;  ///< "copy", "rename", "skip"
  long long checkpoint = 0;
  long long copied = 0;
  bool done = false;
  long long source_count = -1;
  std::string source_digest;
  long long target_count = -1;
  std::string target_digest;
  bool verified = false;
};

long long now_ms();

}  // namespace tc::merge
