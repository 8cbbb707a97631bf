// SPDX-License-Identifier: Apache-2.0
#include "ha/states.h"

#include <array>
#include <utility>

namespace tc::broker::ha {

namespace {

constexpr std::array<std::pair<State, std::string_view>, 12> kStates{{
    {State::Initializing, "Initializing"},
    {State::Idle, "Idle"},
    {State::Normal, "Normal"},
    {State::RunningInBackupMode, "Running in Backup Mode"},
    {State::TakingOver, "Taking Over"},
    {State::FailingOver, "Failing Over"},
    {State::FailedOver, "Failed Over"},
    {State::FailedOverServicesNotRunning, "Failed Over with Critical Services not Running"},
    {State::FallingBack, "Falling Back"},
    {State::TakingBack, "Taking Back"},
    {State::RunningInFailedMode, "Running in Failed Mode"},
    {State::Unknown, "Unknown"},
}};

constexpr std::array<std::pair<Reason, std::string_view>, 15> kReasons{{
    {Reason::Normal, "Normal"},
    {Reason::OnAdminRequest, "On Admin Request"},
    {Reason::Initialization, "Initialization"},
    {Reason::CriticalServiceDown, "Critical Service Down"},
    {Reason::DatabaseFailure, "Database Failure"},
    {Reason::PeerDown, "Peer Down"},
    {Reason::PeerReboot, "Peer Reboot"},
    {Reason::PeerDownDuringInitialization, "Peer Down During Initialization"},
    {Reason::AutomaticFallback, "Automatic Fallback"},
    {Reason::StartOfCriticalServicesFailed, "Start of Critical Services Failed"},
    {Reason::UserMoveFailedDuringTakeover, "User Move Failed during Takeover"},
    {Reason::UserMoveFailedDuringTakeback, "User Move Failed during Takeback"},
    {Reason::DatabaseFailureAutoRecovery, "Database Failure Auto-Recovery"},
    {Reason::CriticalServiceDownAutoRecovery, "Critical Service Down Auto-Recovery"},
    {Reason::Unknown, "Unknown"},
}};

/// One row of the seed's table 2, node 1 first.
struct Row {
  State s1;
  std::optional<Reason> r1;  // nullopt: any reason
  std::optional<State> s2;   // nullopt: node 2 is down or unreachable
  std::optional<Reason> r2;
  const char* cause;
  const char* action;
};

// {1} is node 1's name, {2} node 2's. Order matters: the first match wins.
const Row kTable[] = {
    {State::Normal, Reason::Normal, State::Normal, Reason::Normal, "Both nodes are healthy.",
     "None."},
    {State::FailingOver, Reason::OnAdminRequest, State::TakingOver, Reason::OnAdminRequest,
     "The administrator started a manual failover from {1} to {2}; it is in progress.",
     "Wait for it to finish."},
    {State::FailingOver, Reason::OnAdminRequest, State::TakingOver, Reason::Initialization,
     "SRM on {2} restarted while it was taking over from {1}.", "Wait for it to finish."},
    {State::Idle, Reason::OnAdminRequest, State::RunningInBackupMode, Reason::OnAdminRequest,
     "The manual failover from {1} to {2} is complete.",
     "Run a manual fallback of {1} when you want it to serve its users again."},
    {State::Idle, Reason::Initialization, State::RunningInBackupMode, std::nullopt,
     "SRM on {1} restarted while {1} was Idle after a manual failover.",
     "Run a manual fallback of {1} to return the group to Normal."},
    {State::Idle, Reason::OnAdminRequest, State::RunningInBackupMode, Reason::Initialization,
     "SRM on {2} restarted while it was running in backup mode.",
     "Run a manual fallback of {1} to return the group to Normal."},
    {State::TakingBack, Reason::OnAdminRequest, State::FallingBack, Reason::OnAdminRequest,
     "The administrator started a manual fallback from {2} to {1}; it is in progress.",
     "Wait for it to finish."},
    {State::TakingBack, Reason::Initialization, State::FallingBack, Reason::OnAdminRequest,
     "SRM on {1} restarted while it was taking back; when the takeback completes both nodes "
     "return to Normal.",
     "Wait for it to finish."},
    {State::TakingBack, Reason::AutomaticFallback, State::FallingBack, Reason::AutomaticFallback,
     "An automatic fallback from {2} to {1} is in progress.", "Wait for it to finish."},
    {State::FailedOver, std::nullopt, State::RunningInBackupMode, std::nullopt,
     "{1} rebooted, or its critical services were started again, after {2} took over; {1} is "
     "ready for a manual fallback.",
     "Run a manual fallback of {1} to return the group to Normal."},
    {State::FailedOverServicesNotRunning, Reason::CriticalServiceDown, State::RunningInBackupMode,
     std::nullopt,
     "A critical service on {1} stopped; {2} took over its users and rooms automatically.",
     "1. Find the stopped critical service on {1} and start it (tcctl service start NAME --node "
     "{1}). 2. If it does not start, restart {1}. 3. When every critical service runs, run a "
     "manual fallback of {1}."},
    {State::FailedOverServicesNotRunning, Reason::DatabaseFailure, State::RunningInBackupMode,
     std::nullopt,
     "The database service on {1} stopped; {2} took over its users and rooms automatically.",
     "1. Restore {1}'s database connection or restart {1}. 2. When every critical service "
     "runs, run a manual fallback of {1}."},
    {State::RunningInFailedMode, Reason::StartOfCriticalServicesFailed, std::nullopt, std::nullopt,
     "Critical services failed to start on a node while it was taking back.",
     "1. Find the stopped critical services and click Recover (tcctl ha recover GROUP). 2. If "
     "they do not start, restart the node. 3. Then run a manual fallback."},
    {State::RunningInFailedMode, Reason::CriticalServiceDown, std::nullopt, std::nullopt,
     "A critical service stopped on the backup node; both nodes are in a failed state.",
     "1. Find the stopped critical service on the backup node and click Recover (tcctl ha "
     "recover GROUP). 2. If it does not start, restart the node."},
    {State::RunningInFailedMode, Reason::DatabaseFailure, std::nullopt, std::nullopt,
     "The database became unreachable; the node stopped serving rather than risk writing "
     "rooms it may no longer own.",
     "Restore the database. The node recovers by itself when it can renew its lease; if it "
     "does not, click Recover (tcctl ha recover GROUP)."},
    {State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeover, std::nullopt, std::nullopt,
     "Moving users and rooms failed during a takeover (likely a database error).",
     "Click Recover (tcctl ha recover GROUP); if the problem persists, restart the node."},
    {State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeback, std::nullopt, std::nullopt,
     "Moving users and rooms failed during a fallback (likely a database error).",
     "Click Recover (tcctl ha recover GROUP); if the problem persists, restart the node."},
    {State::RunningInFailedMode, std::nullopt, std::nullopt, std::nullopt,
     "SRM on the other node is in a failed state, or an internal error happened.",
     "Click Recover (tcctl ha recover GROUP); if the problem persists, restart the node."},
    {State::RunningInBackupMode, Reason::PeerDown, std::nullopt, std::nullopt,
     "{1} lost the heartbeat of {2} and {2}'s lease lapsed; {1} took over automatically.",
     "When {2} is up: 1. check the network between the nodes; 2. make sure SRM runs on {2}; "
     "3. run a manual fallback of {2}."},
    {State::RunningInBackupMode, Reason::PeerReboot, std::nullopt, std::nullopt,
     "{2} stopped (shutdown, restart, power or hardware failure); {1} took over automatically.",
     "Start {2}; when its critical services run, run a manual fallback of {2}."},
    {State::RunningInBackupMode, Reason::PeerDownDuringInitialization, std::nullopt, std::nullopt,
     "{1} did not hear from {2} while starting and took over its users and rooms.",
     "When {2} is up and its critical services run, run a manual fallback of {2}."},
    {State::Normal, std::nullopt, std::nullopt, std::nullopt,
     "The peer does not answer heartbeats, but its lease in the database is still valid: the "
     "link between the nodes is cut, or the peer is starting. No takeover happens while the "
     "peer holds its lease (no split brain).",
     "Check the network between the nodes and that SRM runs on the peer."},
    {State::Initializing, std::nullopt, std::nullopt, std::nullopt, "SRM is starting.",
     "Wait for it to finish."},
    {State::Unknown, std::nullopt, std::nullopt, std::nullopt,
     "The node state is not known; most likely high availability is not enabled for the group.",
     "Enable HA for the group (tcctl group set NAME --ha on), then restart SRM on both nodes."},
};

bool matches(const Row& row, State s1, Reason r1, std::optional<State> s2,
             std::optional<Reason> r2) {
  if (row.s1 != s1 || (row.r1 && *row.r1 != r1)) {
    return false;
  }
  if (!row.s2) {
    return true;
  }
  return s2 && *row.s2 == *s2 && (!row.r2 || (r2 && *row.r2 == *r2));
}

std::string fill(std::string text, const std::string& one, const std::string& two) {
  for (auto [key, value] : {std::pair<std::string_view, const std::string*>{"{1}", &one},
                            std::pair<std::string_view, const std::string*>{"{2}", &two}}) {
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
      text.replace(at, key.size(), *value);
      at += value->size();
    }
  }
  return text;
}

}  // namespace

std::string_view to_string(State state) {
  for (const auto& [s, name] : kStates) {
    if (s == state) {
      return name;
    }
  }
  return "Unknown";
}

std::string_view to_string(Reason reason) {
  for (const auto& [r, name] : kReasons) {
    if (r == reason) {
      return name;
    }
  }
  return "Unknown";
}

std::optional<State> state_from(std::string_view text) {
  for (const auto& [s, name] : kStates) {
    if (name == text) {
      return s;
    }
  }
  return std::nullopt;
}

std::optional<Reason> reason_from(std::string_view text) {
  for (const auto& [r, name] : kReasons) {
    if (name == text) {
      return r;
    }
  }
  return std::nullopt;
}

bool is_transient(State state) {
  return state == State::Initializing || state == State::TakingOver ||
         state == State::FailingOver || state == State::FallingBack || state == State::TakingBack;
}

bool is_failed_over(State state) {
  return state == State::Idle || state == State::FailedOver ||
         state == State::FailedOverServicesNotRunning || state == State::FailingOver;
}

Advice advise(State self, Reason self_reason, std::optional<State> peer,
              std::optional<Reason> peer_reason, const std::string& self_name,
              const std::string& peer_name) {
  // Rows name the node whose state is listed first; try this node first, then the peer.
  for (const Row& row : kTable) {
    if (matches(row, self, self_reason, peer, peer_reason)) {
      return {fill(row.cause, self_name, peer_name), fill(row.action, self_name, peer_name)};
    }
  }
  if (peer && peer_reason) {
    for (const Row& row : kTable) {
      if (row.s2 && matches(row, *peer, *peer_reason, self, self_reason)) {
        return {fill(row.cause, peer_name, self_name), fill(row.action, peer_name, self_name)};
      }
    }
  }
  if (self == State::RunningInBackupMode) {
    return {fill("{2} serves {1}'s users and rooms as well as its own.", peer_name, self_name),
            fill("When {1} is healthy, run a manual fallback of {1}.", peer_name, self_name)};
  }
  if (is_transient(self) || (peer && is_transient(*peer))) {
    return {"A transition is in progress.", "Wait for it to finish."};
  }
  return {"No row of the state table matches this pair of states.",
          "Check both nodes' logs; click Recover (tcctl ha recover GROUP) if they stay so."};
}

}  // namespace tc::broker::ha
