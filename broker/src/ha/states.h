// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tc::broker::ha {

/// SRM node states (SPEC.md section 3), spelled as `status` shows them.
enum class State {
  Initializing,
  Idle,
  Normal,
  RunningInBackupMode,
  TakingOver,
  FailingOver,
  FailedOver,
  FailedOverServicesNotRunning,
  FallingBack,
  TakingBack,
  RunningInFailedMode,
  Unknown,
};

/// Why a node is in its state (SPEC.md section 3).
enum class Reason {
  Normal,
  OnAdminRequest,
  Initialization,
  CriticalServiceDown,
  DatabaseFailure,
  PeerDown,
  PeerReboot,
  PeerDownDuringInitialization,
  AutomaticFallback,
  StartOfCriticalServicesFailed,
  UserMoveFailedDuringTakeover,
  UserMoveFailedDuringTakeback,
  DatabaseFailureAutoRecovery,
  CriticalServiceDownAutoRecovery,
  Unknown,
};

std::string_view to_string(State state);
std::string_view to_string(Reason reason);
std::optional<State> state_from(std::string_view text);
std::optional<Reason> reason_from(std::string_view text);

/// Transient states: a transition is in progress.
bool is_transient(State state);
/// States in which the node has handed its own users and rooms to its peer.
bool is_failed_over(State state);

/// The seed's table 2: the cause of a pair of (state, reason) and what the operator should do.
struct Advice {
  std::string cause;
  std::string action;
};

/// Looks up the pair as seen from `self` (node 1 in the table's terms is whichever node the
/// row describes first; both orders are tried). `peer_known` is false when the peer is down
/// or unreachable, whose rows the table lists as "(down)".
Advice advise(State self, Reason self_reason, std::optional<State> peer,
              std::optional<Reason> peer_reason, const std::string& self_name,
              const std::string& peer_name);

}  // namespace tc::broker::ha
