// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "storage/records.h"

namespace tc::storage {
class Store;
}

namespace tc::broker::ha {

/// SPEC.md section 1: how users are spread over the nodes of a redundancy group.
enum class AssignmentMode { Balanced, ActiveStandby, None };

std::string_view to_string(AssignmentMode mode);
std::optional<AssignmentMode> assignment_mode_from(std::string_view text);

/// Cluster-wide settings, kept in the shared database (tc_settings) so that both nodes of a
/// group read the same values. Defaults are the vendor's (SPEC.md section 2). Every time
/// accepts sub-second values.
struct ClusterSettings {
  AssignmentMode assignment_mode = AssignmentMode::Balanced;
  std::chrono::milliseconds critical_service_down_delay{90'000};
  bool auto_fallback = false;
  std::chrono::milliseconds auto_fallback_delay{30 * 60'000};
  std::chrono::milliseconds init_heartbeat_timeout{120'000};
  std::chrono::milliseconds heartbeat_timeout{60'000};
  std::chrono::milliseconds heartbeat_interval{15'000};
  bool monitor_authentication = false;
  /// Opt-in: refuse a login on a node other than the user's assigned one with see-other-host.
  /// Off by default: standard clients do not follow redirects, so any node serves any user
  /// and the assignment only guides DNS, failover and the re-login hint (SPEC.md section 1).
  bool redirect_users = false;

  /// Reads tc_settings; a missing key keeps its default. A stored value that does not parse
  /// is an error naming the key (storage::Errc::SchemaMismatch with `bad_key` set).
  static Result<ClusterSettings> load(storage::Store& store, std::string* bad_key = nullptr);

  /// The same from rows already read (tcctl checks a change before writing it). Keys that
  /// are not in setting_keys() are ignored; `message` says what is wrong.
  static Result<ClusterSettings> from_pairs(
      const std::vector<std::pair<std::string, std::string>>& pairs, std::string* bad_key = nullptr,
      std::string* message = nullptr);

  /// Every key with its current value as text, in a stable order (for status and tcctl).
  std::vector<std::pair<std::string, std::string>> to_pairs() const;
};

/// The keys `tcctl settings set` and the admin API accept, with one line of help each.
const std::vector<std::pair<std::string, std::string>>& setting_keys();

/// Validates `value` for `key` and returns it normalised ("1.5" seconds stays "1.5"; "yes"
/// becomes "true"), or a message that names the key and says what is allowed.
Result<std::string> normalize_setting(std::string_view key, std::string_view value,
                                      std::string* message);

/// SPEC.md section 1: 1-128 of [A-Za-z0-9_-].
bool valid_group_name(std::string_view name);
/// SPEC.md section 1: up to 128 printable characters, none of " % & / < >.
/// Counted in characters (UTF-8 code points); non-ASCII printable characters are allowed.
bool valid_group_description(std::string_view description);

}  // namespace tc::broker::ha
