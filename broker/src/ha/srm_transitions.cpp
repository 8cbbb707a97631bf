// SPDX-License-Identifier: Apache-2.0
// SrmMachine: the transitions (take over, fail over, fall back, give back, adopt, release,
// recover, stop) and the admission of admin requests (SPEC.md section 4: which request fits
// which state).
#include <algorithm>

#include <fmt/format.h>

#include "ha/srm_machine.h"
#include "ha/srm_machine_detail.h"

namespace tc::broker::ha {

using std::chrono::milliseconds;
using Level = srm::Log::Level;
using detail::describe;
using detail::kRefusedBusy;

// ---- transitions ----

SrmMachine::Proc<bool> SrmMachine::take_over(const std::string& partition, Reason reason,
                                             bool handed) {
  if (partition.empty()) {
    co_return false;
  }
  const bool foreign = partition != config_.self;
  const State before = state_;
  const Reason before_reason = reason_;
  if (foreign && !handed) {
    // Only a lapsed (or never taken) lease may be taken.
    const Outcome lease = co_await read_lease(partition);
    if (lease.ok() && lease.lease.holder != config_.self &&
        lease.lease.expires_at >= lease.lease.db_now) {
      co_return false;
    }
    if (!lease.ok() && lease.status != Outcome::Status::NotFound) {
      co_return false;
    }
  }
  if (foreign) {
    set_state(State::TakingOver, reason);
  }
  busy_ = true;
  const auto sent = now_;
  const Outcome acquired = co_await acquire_lease(partition);
  busy_ = false;
  if (!acquired.ok()) {
    if (foreign) {
      if (acquired.status == Outcome::Status::AlreadyExists) {
        set_state(before, before_reason);
      } else {
        log(Level::Error,
            fmt::format("srm: takeover of partition {} failed: {}", partition, acquired.error));
        set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeover);
      }
    }
    co_return false;
  }
  held_[partition] = {acquired.lease.epoch, sent};
  holders_[partition] = config_.self;
  emit(srm::Publish{});
  if (foreign) {
    // The peer is gone or has handed over: its users leave our rooms (unless it handed over,
    // then they are moving), ours stay in its rooms, which all load here from the database
    // at once (joins replayed meanwhile wait for their room's batch).
    emit(srm::LoadPartition{partition, !handed, true});
    log(Level::Warn, fmt::format("srm: took over partition {} at epoch {} ({})", partition,
                                 acquired.lease.epoch, to_string(reason)));
  } else {
    log(Level::Info,
        fmt::format("srm: serving partition {} at epoch {}", partition, acquired.lease.epoch));
  }
  co_return true;
}

SrmMachine::Task SrmMachine::fail_over(Reason reason, bool admin) {
  busy_ = true;
  set_state(State::FailingOver, reason);
  log(Level::Warn, fmt::format("srm: failing over to {} ({})", config_.peer, to_string(reason)));
  // Stop serving our partition here: new stanzas for it wait while it moves.
  const std::int64_t epoch = own_epoch();
  holders_[config_.self] = "";
  held_.erase(config_.self);
  emit(srm::Publish{});
  emit(srm::UnloadPartition{config_.self});
  bool transferred = false;
  if (db_ok_ && !stopped(Service::Database) && epoch > 0) {
    const Outcome moved = co_await transfer_lease(config_.self, epoch, config_.peer);
    transferred = moved.ok();
  }
  // Tell the peer to adopt it (when the lease was not handed over, it waits for the lapse).
  proto::Control ctl;
  ctl.op = "adopt";
  ctl.partition = config_.self;
  ctl.reason = reason;
  ctl.handed = transferred;
  const Outcome adopted = co_await send_control(ctl);
  if (adopted.ok()) {
    holders_[config_.self] = config_.peer;
  }
  emit(srm::Publish{});
  // Every user here (ours, and others' that chose this node) logs in again on the peer.
  emit(srm::MoveUsers{"", config_.peer});
  // The peer answered no (it is failing over itself): nobody serves our partition, and the
  // lease we handed lapses unused. Both nodes failed; each takes its own partition back once
  // free (the auto-recovery in evaluate()), or the operator recovers the group.
  const bool refused = !adopted.ok() && adopted.reply.status == kRefusedBusy;
  if (refused && !shutting_down_) {
    log(Level::Error, "srm: the peer refused the takeover: " + adopted.error);
    set_state(State::RunningInFailedMode, admin ? Reason::UserMoveFailedDuringTakeover : reason);
    busy_ = false;
    co_return;
  }
  if (admin) {
    // SPEC.md section 4: the services stay stopped until a manual fallback.
    apply_service(Service::Router, false);
    apply_service(Service::TextConference, false);
    set_state(State::Idle, Reason::OnAdminRequest);
  } else {
    set_state(State::FailedOverServicesNotRunning, reason);
  }
  if (!adopted.ok()) {
    log(Level::Error, "srm: the peer did not confirm the takeover: " + adopted.error);
  }
  busy_ = false;
}

SrmMachine::Task SrmMachine::fall_back(Reason reason) {
  // Runs on the node taking its users and rooms back.
  const State before = state_;
  const Reason before_reason = reason_;
  busy_ = true;
  set_state(State::TakingBack, reason);
  if (orphaned()) {
    // Nobody serves our partition (the peer is failed over too): take the lease itself.
    const bool taken = co_await take_over(config_.self, reason, false);
    busy_ = true;
    if (!taken) {
      log(Level::Error, "srm: fallback failed: the lease of partition " + config_.self +
                            " is still held (it lapses within the heartbeat timeout)");
      set_state(before, before_reason);
      busy_ = false;
      co_return;
    }
  } else {
    proto::Control ctl;
    ctl.op = "release";
    ctl.partition = config_.self;
    ctl.reason = reason;
    const Outcome released = co_await send_control(ctl);
    if (!released.ok()) {
      log(Level::Error, "srm: fallback failed: " + released.error);
      set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeback);
      busy_ = false;
      co_return;
    }
    held_[config_.self] = {released.reply.epoch, now_};
    holders_[config_.self] = config_.self;
  }
  emit(srm::LoadPartition{config_.self, false, false});
  // SPEC.md section 4: the fallback restarts the primary's critical services.
  for (const Service sv : kServices) {
    if (stopped(sv)) {
      apply_service(sv, true);
    }
  }
  apply_service(Service::Router, true);
  apply_service(Service::TextConference, true);
  emit(srm::Publish{});
  // The peer may now route our rooms to us again (and replay its users' joins).
  proto::Control hosting;
  hosting.op = "hosting";
  hosting.partition = config_.self;
  emit(srm::SendControl{next_op(), hosting});  // its reply is not awaited
  set_state(State::Normal, Reason::Normal);
  busy_ = false;
}

SrmMachine::Proc<std::pair<bool, std::string>> SrmMachine::give_back(const std::string& partition,
                                                                     Reason reason) {
  auto it = held_.find(partition);
  if (it == held_.end()) {
    co_return std::pair{false, config_.self + " does not serve partition " + partition};
  }
  busy_ = true;
  set_state(State::FallingBack, reason);
  const std::int64_t epoch = it->second.epoch;
  held_.erase(it);
  holders_[partition] = "";
  emit(srm::Publish{});
  emit(srm::UnloadPartition{partition});
  const Outcome moved = co_await transfer_lease(partition, epoch, partition);
  if (!moved.ok()) {
    log(Level::Error,
        fmt::format("srm: cannot hand partition {} back: {}", partition, moved.error));
    set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeback);
    busy_ = false;
    co_return std::pair{false, "cannot hand the lease back: " + moved.error};
  }
  holders_[partition] = "";  // parked until the owner says it hosts again
  emit(srm::MoveUsers{partition, partition});
  set_state(State::Normal, Reason::Normal);
  busy_ = false;
  co_return std::pair{true, std::to_string(moved.lease.epoch)};
}

SrmMachine::Task SrmMachine::adopt(std::string id, std::string partition, Reason reason,
                                   bool handed) {
  // Only a node that serves can back the peer up. Two nodes failing over to each other at
  // once (both decided within one heartbeat) would otherwise each adopt the other's partition
  // while giving up its own; refused, each ends in Running in Failed Mode (SPEC.md section 3:
  // both failed) and recovers once its own lease is free again.
  if (is_failed_over(state_) || state_ == State::TakingBack || state_ == State::FallingBack ||
      state_ == State::RunningInFailedMode) {
    log(Level::Warn, fmt::format("srm: refusing to take over partition {}: this node is {}",
                                 partition, describe(state_, reason_)));
    emit(srm::ReplyControl{{id, false,
                            config_.self + " cannot take over: it is " + describe(state_, reason_),
                            kRefusedBusy, 0}});
    co_return;
  }
  const auto deadline = now_ + config_.settings.heartbeat_timeout * 2;
  bool ok = false;
  set_state(State::TakingOver, reason);
  while (!ok && now_ < deadline) {
    ok = co_await take_over(partition, reason, handed);
    if (!ok) {
      co_await sleep(config_.settings.heartbeat_interval / 2);
    }
  }
  if (ok) {
    set_state(State::RunningInBackupMode, reason);
    reply(id, true, "");
  } else {
    set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeover);
    reply(id, false, "could not take the lease of " + partition);
  }
}

SrmMachine::Task SrmMachine::release_for_peer(std::string id, std::string partition,
                                              Reason reason) {
  const auto [ok, detail] = co_await give_back(partition, reason);
  if (ok) {
    reply(id, true, "", std::stoll(detail));
  } else {
    reply(id, false, detail);
  }
}

SrmMachine::Task SrmMachine::recover_local() {
  log(Level::Warn, "srm: recovering (restarting SRM state on this node)");
  for (auto& s : stopped_) {
    s = false;
  }
  emit(srm::SetRouter{true});
  emit(srm::SetConference{true});
  emit(srm::SetAuthentication{true});
  // Give back what is not ours when its owner is alive; then start over.
  std::vector<std::string> foreign;
  for (const auto& [p, h] : held_) {
    if (p != config_.self) {
      foreign.push_back(p);
    }
  }
  for (const auto& p : foreign) {
    if (peer_alive(now_)) {
      co_await give_back(p, Reason::Normal);
    }
  }
  down_since_.reset();
  started_ = now_;
  set_state(State::Initializing, Reason::Initialization);
}

SrmMachine::Task SrmMachine::admin_failover_task(std::uint64_t ticket) {
  co_await fail_over(Reason::OnAdminRequest, true);
  emit(srm::AdminDone{ticket, state_ == State::Idle});
}

SrmMachine::Task SrmMachine::admin_fallback_task(std::uint64_t ticket) {
  co_await fall_back(Reason::OnAdminRequest);
  emit(srm::AdminDone{ticket, state_ == State::Normal});
}

SrmMachine::Task SrmMachine::shutdown_task() {
  // A clean stop hands our partition to a healthy peer at once (it reports Peer Reboot)
  // instead of letting it wait for the heartbeat timeout.
  if (config_.ha_enabled && peer_alive(now_) && held_.count(config_.self) > 0 &&
      (peer_.state == State::Normal || peer_.state == State::RunningInBackupMode)) {
    shutting_down_ = true;
    send_heartbeat();
    while (busy_) {
      co_await sleep(milliseconds(10));
    }
    co_await fail_over(Reason::PeerReboot, false);
  } else {
    shutting_down_ = true;
    const auto held = held_;
    for (const auto& [p, h] : held) {
      const Outcome released = co_await release_lease(p, h.epoch);
      (void)released;
    }
    held_.clear();
    send_heartbeat();
  }
  halted_ = true;
  emit(srm::Stopped{});
}

// ---- admin refusals ----

std::optional<std::string> SrmMachine::refuse_move(TimePoint now, const std::string& node,
                                                   std::string_view what) const {
  if (!config_.clustered || !config_.ha_enabled) {
    return std::string("high availability is not enabled") +
           (config_.clustered ? " for group " + config_.group : " (this node is in no group)");
  }
  if (node != config_.self && node != config_.peer) {
    return "no node " + node + " in group " + config_.group;
  }
  if (!peer_alive(now)) {
    return std::string(what) + " of " + node + " is refused: the peer is not reachable";
  }
  return std::nullopt;
}

std::optional<std::string> SrmMachine::refuse_failover(TimePoint now,
                                                       const std::string& node) const {
  if (auto why = refuse_move(now, node, "failover")) {
    return why;
  }
  const bool self = node == config_.self;
  const State s = self ? state_ : peer_.state;
  const Reason r = self ? reason_ : peer_.reason;
  const State other = self ? peer_.state : state_;
  if (s != State::Normal || other != State::Normal) {
    return "failover of " + node + " is refused: it needs both nodes Normal, but " + node + " is " +
           describe(s, r) + " and the other node is " + std::string(to_string(other));
  }
  return std::nullopt;
}

std::optional<std::string> SrmMachine::refuse_fallback(TimePoint now,
                                                       const std::string& node) const {
  if (auto why = refuse_move(now, node, "fallback")) {
    return why;
  }
  const bool self = node == config_.self;
  const State s = self ? state_ : peer_.state;
  const Reason r = self ? reason_ : peer_.reason;
  const State other = self ? peer_.state : state_;
  if (s != State::Idle && s != State::FailedOver) {
    return "fallback of " + node + " is refused: it must be Idle or Failed Over, but it is " +
           describe(s, r) +
           (s == State::FailedOverServicesNotRunning ? "; start its stopped critical services first"
                                                     : "");
  }
  // Seen from the other side: we do not hold the peer's partition and are failed over.
  const bool orphan = self ? orphaned()
                           : held_.count(config_.peer) == 0 &&
                                 (is_failed_over(state_) || state_ == State::RunningInFailedMode);
  if (other != State::RunningInBackupMode && !orphan) {
    return "fallback of " + node + " is refused: the other node is " +
           std::string(to_string(other)) +
           ", not Running in Backup Mode (nor failed over itself, which would leave " + node +
           "'s users and rooms with nobody)";
  }
  return std::nullopt;
}

std::optional<std::string> SrmMachine::refuse_recover(TimePoint now,
                                                      const std::string& group) const {
  if (!config_.clustered) {
    return "no redundancy group " + group + " (this node is in no group)";
  }
  if (group != config_.group) {
    return "no redundancy group " + group + " here (this node is in " + config_.group + ")";
  }
  if (!config_.ha_enabled) {
    return "high availability is not enabled for group " + config_.group;
  }
  const bool failed = state_ == State::RunningInFailedMode ||
                      (peer_alive(now) && peer_.state == State::RunningInFailedMode);
  if (!failed) {
    return "recover is refused: no node of " + config_.group +
           " is Running in Failed Mode (this node is " + describe(state_, reason_) + ")";
  }
  return std::nullopt;
}

}  // namespace tc::broker::ha
