// SPDX-License-Identifier: Apache-2.0
#include "ha/srm_machine.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "ha/srm_machine_detail.h"

namespace tc::broker::ha {

using std::chrono::milliseconds;
using Level = srm::Log::Level;
using detail::backup_reason;
using detail::count_ms;
using detail::describe;
using detail::kRefusedBusy;

std::string_view to_string(Service s) {
  switch (s) {
    case Service::Router:
      return "router";
    case Service::TextConference:
      return "text-conference";
    case Service::Database:
      return "database";
    case Service::Authentication:
      return "authentication";
  }
  return "?";
}

std::optional<Service> service_from(std::string_view name) {
  for (const Service s : kServices) {
    if (to_string(s) == name) {
      return s;
    }
  }
  return std::nullopt;
}

// ---- the coroutine plumbing ----

template <class A>
SrmMachine::Effect SrmMachine::await(A action) {
  action.op = next_op();
  const auto op = action.op;
  emit(std::move(action));
  return Effect(this, op);
}

SrmMachine::Effect SrmMachine::read_lease(const std::string& partition) {
  return await(srm::ReadLease{0, partition});
}

SrmMachine::Effect SrmMachine::acquire_lease(const std::string& partition) {
  return await(srm::AcquireLease{0, partition, config_.settings.heartbeat_timeout.count()});
}

SrmMachine::Effect SrmMachine::renew_lease(const std::string& partition, std::int64_t epoch) {
  return await(srm::RenewLease{0, storage::Fence{partition, config_.self, epoch},
                               config_.settings.heartbeat_timeout.count()});
}

SrmMachine::Effect SrmMachine::transfer_lease(const std::string& partition, std::int64_t epoch,
                                              const std::string& to) {
  return await(srm::TransferLease{0, storage::Fence{partition, config_.self, epoch}, to,
                                  config_.settings.heartbeat_timeout.count()});
}

SrmMachine::Effect SrmMachine::release_lease(const std::string& partition, std::int64_t epoch) {
  return await(srm::ReleaseLease{0, storage::Fence{partition, config_.self, epoch}});
}

SrmMachine::Effect SrmMachine::ping_database() {
  return await(srm::PingDatabase{});
}

SrmMachine::Effect SrmMachine::send_control(const proto::Control& ctl) {
  return await(srm::SendControl{0, ctl});
}

SrmMachine::Effect SrmMachine::sleep(milliseconds d) {
  return await(srm::Sleep{0, now_ + std::max(d, milliseconds(1))});
}

void SrmMachine::spawn(Task task) {
  auto h = task.release();
  running_.push_back(h);
  h.resume();
  reap();
}

void SrmMachine::reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (!it->done()) {
      ++it;
      continue;
    }
    const auto error = it->promise().error;
    it->destroy();
    it = running_.erase(it);
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        log(Level::Error, fmt::format("srm: internal error: {}", e.what()));
      }
      set_state(State::RunningInFailedMode, Reason::Unknown);
    }
  }
}

void SrmMachine::log(Level level, std::string text) {
  emit(srm::Log{level, std::move(text)});
}

// ---- construction and inputs ----

SrmMachine::SrmMachine(MachineConfig config, TimePoint now)
    : config_(std::move(config)), now_(now), state_since_(now), started_(now) {
  if (config_.clustered && config_.ha_enabled) {
    state_ = State::Initializing;
    reason_ = Reason::Initialization;
  }
  for (const auto& n : config_.nodes) {
    holders_[n] = "";
  }
}

SrmMachine::~SrmMachine() {
  // Destroying a top-level frame destroys the transitions it awaits (their Proc objects live
  // in it); waiters only point into those frames.
  waiters_.clear();
  for (auto h : running_) {
    h.destroy();
  }
}

void SrmMachine::start(TimePoint now) {
  now_ = now;
  started_ = now;
  state_since_ = now;
  if (!config_.clustered) {
    return;
  }
  spawn(run_loop());
  spawn(heartbeat_loop());
}

void SrmMachine::on_outcome(TimePoint now, std::uint64_t op, Outcome outcome) {
  now_ = now;
  auto it = waiters_.find(op);
  if (it == waiters_.end()) {
    return;  // nobody waits for it (a control request sent without awaiting the reply)
  }
  const auto handle = it->second;
  waiters_.erase(it);
  outcomes_[op] = std::move(outcome);
  handle.resume();
  reap();
}

std::vector<Action> SrmMachine::drain() {
  std::vector<Action> out;
  out.swap(out_);
  return out;
}

void SrmMachine::on_link(TimePoint now, Channel channel, bool up) {
  now_ = now;
  if (channel == Channel::Data) {
    data_up_ = up;
    return;
  }
  const bool was_alive = peer_alive(now);
  srm_up_ = up;
  if (up) {
    srm_up_since_ = now;
  }
  // The peer's heartbeats may come back (on its connection) before ours is up again after a
  // cut: it is alive only from now on, and nothing else would say so (the next heartbeats find
  // it alive already). Without this the rooms kept answering "unreachable" after a heal.
  if (!was_alive && peer_alive(now)) {
    peer_came_back();
  }
}

void SrmMachine::peer_came_back() {
  emit(srm::Publish{});
  // Our users in the peer's rooms: make sure the rooms know them.
  for (const auto& n : config_.nodes) {
    if (holders_[n] == config_.peer) {
      emit(srm::ReplayJoins{n});
    }
  }
}

void SrmMachine::on_heartbeat(TimePoint now, const proto::Heartbeat& hb) {
  now_ = now;
  const bool was_alive = peer_alive(now);
  peer_.heard = true;
  peer_.last_heard = now;
  if (hb.state != peer_.state || hb.reason != peer_.reason) {
    peer_.state_since = now;
  }
  peer_.state = hb.state;
  peer_.reason = hb.reason;
  peer_.epoch = hb.epoch;
  peer_.rooms = hb.rooms;
  peer_.users = hb.users;
  peer_.rebooting = hb.rebooting;
  peer_.services = hb.services;
  if (!hb.hears && peer_.hears_us) {
    peer_.deaf_since = now;
  }
  peer_.hears_us = hb.hears;
  if (hb.hears && one_way_) {
    one_way_ = false;
    log(Level::Info, fmt::format("peer link: {} hears this node again", config_.peer));
    emit(srm::Publish{});
  }
  // What the peer holds is routed to it.
  bool changed = false;
  for (const auto& n : config_.nodes) {
    const bool peer_holds = std::find(hb.holds.begin(), hb.holds.end(), n) != hb.holds.end();
    auto& holder = holders_[n];
    if (peer_holds && holder != config_.peer && held_.count(n) == 0) {
      holder = config_.peer;
      changed = true;
    } else if (!peer_holds && holder == config_.peer) {
      holder = "";
      changed = true;
    }
  }
  if (!was_alive && peer_alive(now)) {
    peer_came_back();
  } else if (changed || !was_alive) {
    emit(srm::Publish{});
  }
}

void SrmMachine::on_control(TimePoint now, const proto::Control& ctl) {
  now_ = now;
  if (ctl.op == "adopt") {
    // The peer fails over to us: its lease is ours already ("handed") or lapses soon.
    spawn(adopt(ctl.id, ctl.partition, ctl.reason, ctl.handed));
  } else if (ctl.op == "release") {
    spawn(release_for_peer(ctl.id, ctl.partition, ctl.reason));
  } else if (ctl.op == "hosting") {
    holders_[ctl.partition] = config_.peer;
    emit(srm::Publish{});
    emit(srm::ReplayJoins{ctl.partition});
    reply(ctl.id, true, "");
  } else if (ctl.op == "recover") {
    spawn(recover_local());
    reply(ctl.id, true, "");
  } else {
    emit(srm::ReplyControl{{ctl.id, false, "unknown operation " + ctl.op, 400, 0}});
  }
}

void SrmMachine::admin_failover(TimePoint now, std::uint64_t ticket) {
  now_ = now;
  spawn(admin_failover_task(ticket));
}

void SrmMachine::admin_fallback(TimePoint now, std::uint64_t ticket) {
  now_ = now;
  spawn(admin_fallback_task(ticket));
}

void SrmMachine::admin_recover(TimePoint now) {
  now_ = now;
  proto::Control ctl;
  ctl.op = "recover";
  emit(srm::SendControl{next_op(), ctl});  // its reply is not awaited
  spawn(recover_local());
}

void SrmMachine::set_service(TimePoint now, Service s, bool run) {
  now_ = now;
  apply_service(s, run);
}

void SrmMachine::shutdown(TimePoint now) {
  now_ = now;
  if (!config_.clustered || shutting_down_) {
    emit(srm::Stopped{});
    return;
  }
  spawn(shutdown_task());
}

// ---- the loops ----

SrmMachine::Task SrmMachine::run_loop() {
  emit(srm::RefreshRegistry{});
  while (!shutting_down_) {
    try {
      co_await tick();
    } catch (const std::exception& e) {
      log(Level::Error, fmt::format("srm: internal error: {}", e.what()));
      set_state(State::RunningInFailedMode, Reason::Unknown);
    }
    const auto& s = config_.settings;
    auto period = std::min(s.heartbeat_interval, s.heartbeat_timeout / 4);
    co_await sleep(std::clamp(period, milliseconds(10), milliseconds(5000)));
  }
}

SrmMachine::Task SrmMachine::tick() {
  const auto began = now_;
  const auto& settings = config_.settings;

  // 1. Renew what we hold, first: a renewal that gets through is also the database's health
  //    check. Partitions are looked up again after each wait: the heartbeat loop may have
  //    self-fenced one meanwhile.
  bool renewed_any = false;
  bool db_error = false;
  std::vector<std::string> lost;
  if (!stopped(Service::Database)) {
    std::vector<std::pair<std::string, std::int64_t>> to_renew;
    for (const auto& [partition, held] : held_) {
      to_renew.emplace_back(partition, held.epoch);
    }
    for (const auto& [partition, epoch] : to_renew) {
      const auto sent = now_;
      const Outcome renewed = co_await renew_lease(partition, epoch);
      if (now_ - sent > settings.heartbeat_timeout / 4) {
        log(Level::Warn, fmt::format("srm: renewing the lease on partition {} took {} ms",
                                     partition, count_ms(now_ - sent)));
      }
      auto it = held_.find(partition);
      const bool current = it != held_.end() && it->second.epoch == epoch;
      if (renewed.ok()) {
        renewed_any = true;
        if (current) {
          it->second.renewed = sent;
        }
      } else if (renewed.status == Outcome::Status::StaleEpoch) {
        log(Level::Error,
            fmt::format("srm: the lease on partition {} was taken by another node", partition));
        if (current) {
          lost.push_back(partition);
        }
      } else {
        db_error = true;
      }
    }
  }

  // 2. Health of the database (the one critical service with an outside dependency).
  if (stopped(Service::Database)) {
    db_ok_ = false;
  } else if (renewed_any) {
    db_ok_ = true;
  } else if (db_error) {
    db_ok_ = false;
  } else {
    const Outcome pinged = co_await ping_database();
    db_ok_ = pinged.ok();
  }
  for (const auto& p : lost) {
    if (held_.count(p) > 0) {
      self_fence(p, Reason::DatabaseFailure);
    }
  }

  // 3. Where is the peer; 4. the registry row.
  if (db_ok_) {
    emit(srm::DiscoverPeer{});
  }
  if (++ticks_ % 20 == 0 || now_ - state_since_ < std::chrono::seconds(1)) {
    emit(srm::RefreshRegistry{});
  }

  if (!busy_) {
    co_await evaluate();
  }
  if (now_ - began > settings.heartbeat_timeout / 2) {
    log(Level::Warn, fmt::format("srm: one SRM tick took {} ms", count_ms(now_ - began)));
  }
}

SrmMachine::Task SrmMachine::heartbeat_loop() {
  // Its own timer, never behind a database call: a slow database must not look like a dead
  // node to the peer (the lease, not the heartbeat, says whether the database is usable).
  const auto& settings = config_.settings;
  const auto period = std::clamp(settings.heartbeat_interval, milliseconds(10), milliseconds(5000));
  // The lease guard below must run well inside the lease: an interval close to the timeout
  // (allowed) would otherwise check a lease only after it lapsed on the database.
  const auto guard = std::clamp(std::min(period, settings.heartbeat_timeout / 8), milliseconds(5),
                                milliseconds(5000));
  TimePoint last_sent = now_ - period;  // the first pass sends at once
  while (!halted_) {
    // Self-fence well before the database would let the peer take over, even while a renewal
    // is still waiting on the database.
    std::vector<std::string> expired;
    for (const auto& [partition, held] : held_) {
      if (now_ - held.renewed > settings.heartbeat_timeout * config_.fence_quarters / 4) {
        expired.push_back(partition);
      }
    }
    for (const auto& p : expired) {
      if (held_.count(p) > 0) {
        log(Level::Error,
            fmt::format("srm: cannot renew the lease on partition {} in time (database "
                        "unreachable or too slow); stopping to serve it",
                        p));
        self_fence(p, Reason::DatabaseFailure);
      }
    }
    if (now_ - last_sent >= period) {
      check_link_liveness();
      send_heartbeat();
      last_sent = now_;
    }
    const auto to_next = std::chrono::duration_cast<milliseconds>(last_sent + period - now_);
    co_await sleep(std::clamp(to_next, milliseconds(1), guard));
  }
}

void SrmMachine::self_fence(const std::string& partition, Reason reason) {
  held_.erase(partition);
  holders_[partition] = "";
  emit(srm::Publish{});
  emit(srm::UnloadPartition{partition});
  if (partition == config_.self) {
    emit(srm::MoveUsers{"", ""});
    // Still backing up the peer? Its partition is failed too.
    if (state_ == State::RunningInBackupMode || !is_failed_over(state_)) {
      set_state(State::RunningInFailedMode, reason);
    }
  } else if (state_ == State::RunningInBackupMode) {
    set_state(State::RunningInFailedMode, reason);
  }
}

void SrmMachine::check_link_liveness() {
  const auto& settings = config_.settings;
  const auto timeout =
      state_ == State::Initializing ? settings.init_heartbeat_timeout : settings.heartbeat_timeout;
  // A connection gets a whole timeout to carry a heartbeat: resetting a younger one (the one
  // the peer just dialled after its own reset) would have the two nodes kill each other's
  // fresh connections in turn for ever (the simulation found this livelock).
  if (peer_.heard && now_ - peer_.last_heard >= timeout && now_ - link_reset_at_ >= timeout &&
      (!srm_up_ || now_ - srm_up_since_ >= timeout) && (srm_up_ || data_up_)) {
    log(Level::Warn, fmt::format("peer link: nothing heard from {} for {} ms; dropping the "
                                 "connections and dialling again",
                                 config_.peer, count_ms(now_ - peer_.last_heard)));
    link_reset_at_ = now_;
    emit(srm::ResetLink{});
  }
  // One-way cut: the peer's heartbeats arrive, ours do not (it says so). What we send it is
  // lost, so drop our connections (their redials fail while the cut lasts: the data link is
  // then down), tell our users they are out of its rooms and answer stanzas for them at once.
  // Deaf for the whole timeout since our current connection came up: a "not heard" that
  // predates it (sent before a cut healed) proves nothing about the new connection.
  if (!one_way_ && peer_alive(now_) && !peer_.hears_us &&
      now_ - std::max(peer_.deaf_since, srm_up_since_) >= settings.heartbeat_timeout &&
      now_ - link_reset_at_ >= settings.heartbeat_timeout) {
    log(Level::Warn,
        fmt::format("peer link: {} has not heard this node for {} ms while this node hears "
                    "it (one-way cut); dropping the connections and dialling again",
                    config_.peer, count_ms(now_ - peer_.deaf_since)));
    one_way_ = true;
    link_reset_at_ = now_;
    emit(srm::ResetLink{});
    emit(srm::EvictPeer{});
    emit(srm::Publish{});
  }
}

// ---- the decisions ----

bool SrmMachine::peer_alive(TimePoint now) const {
  if (!peer_.heard || !srm_up_) {
    return false;
  }
  const auto timeout = state_ == State::Initializing ? config_.settings.init_heartbeat_timeout
                                                     : config_.settings.heartbeat_timeout;
  return now - peer_.last_heard < timeout;
}

bool SrmMachine::peer_cut_off(TimePoint now) const {
  return (unreachable_handled_ && !peer_alive(now)) || one_way_;
}

SrmMachine::Task SrmMachine::evaluate() {
  const auto& settings = config_.settings;
  const bool own_held = held_.count(config_.self) > 0;

  // Critical services: how long has one been down?
  const auto down = first_down_service();
  if (down && !down_since_) {
    down_since_ = now_;
  } else if (!down) {
    down_since_.reset();
  }
  const bool down_too_long = down && now_ - *down_since_ >= settings.critical_service_down_delay;
  const Reason down_reason =
      down == Service::Database ? Reason::DatabaseFailure : Reason::CriticalServiceDown;

  if (!config_.ha_enabled) {
    // No failover: serve our own partition.
    if (!own_held && db_ok_) {
      co_await take_over(config_.self, Reason::Unknown, false);
    }
    if (state_ != State::Unknown) {
      set_state(State::Unknown, Reason::Unknown);
    }
    co_return;
  }

  const bool alive = peer_alive(now_);
  if (alive) {
    unreachable_handled_ = false;
    peer_lease_seen_ = 0;
  }

  // Where is our own partition?
  if (!own_held && db_ok_ && !is_failed_over(state_) && state_ != State::TakingBack) {
    const Outcome lease = co_await read_lease(config_.self);
    // Unreadable counts as free: the acquisition then says whether it is.
    const bool free = !lease.ok() || lease.lease.holder == config_.self ||
                      lease.lease.expires_at < lease.lease.db_now;
    if (free) {
      const bool was_failed = state_ == State::RunningInFailedMode;
      if (co_await take_over(config_.self, Reason::Normal, false)) {
        if (was_failed && held_.count(config_.peer) > 0) {
          // Only our own lease lapsed: we still serve the failed-over peer.
          set_state(State::RunningInBackupMode, backup_reason(peer_.reason));
        } else if (was_failed) {
          set_state(State::Normal, Reason::DatabaseFailureAutoRecovery);
        } else if (state_ == State::Initializing && alive) {
          set_state(State::Normal, Reason::Normal);
        }
      }
    } else if (lease.ok() && lease.lease.holder == config_.peer) {
      // The peer took over while we were away: wait for a fallback.
      if (state_ == State::Initializing || state_ == State::RunningInFailedMode) {
        emit(srm::SetRouter{true});
        set_state(down ? State::FailedOverServicesNotRunning : State::FailedOver,
                  down ? down_reason : Reason::Initialization);
      }
    }
    co_return;
  }

  switch (state_) {
    case State::Initializing:
      if (own_held && alive) {
        set_state(State::Normal, Reason::Normal);
      } else if (own_held && now_ - started_ >= settings.init_heartbeat_timeout) {
        // The peer never showed up while we started: take its users and rooms if its lease
        // lapsed (or it never had one).
        if (co_await take_over(config_.peer, Reason::PeerDownDuringInitialization, false)) {
          set_state(State::RunningInBackupMode, Reason::PeerDownDuringInitialization);
        } else {
          set_state(State::Normal, Reason::Normal);
        }
      }
      break;
    case State::Normal:
      if (down_too_long) {
        if (alive && peer_.state == State::Normal && peer_serves()) {
          co_await fail_over(down_reason, false);
        } else if (!alive) {
          log(Level::Error,
              fmt::format("srm: critical service {} is down and the peer is not available",
                          to_string(*down)));
        }
        break;
      }
      if (held_.count(config_.peer) > 0) {
        // We serve the peer's partition (kept through a recovery or an auto-recovery): we are
        // its backup, and its fallback takes it back from us.
        set_state(State::RunningInBackupMode, backup_reason(peer_.reason));
        break;
      }
      if (alive && is_failed_over(peer_.state) && peer_.state != State::FailingOver) {
        // The peer is failed over (Idle, Failed Over) yet nobody serves its users and rooms:
        // we lost them while we were failed ourselves (a database outage on the backup lapses
        // both leases). Back it up again, so that its fallback has something to take back.
        if (co_await take_over(config_.peer, backup_reason(peer_.reason), false)) {
          set_state(State::RunningInBackupMode, backup_reason(peer_.reason));
        }
        break;
      }
      if (alive && reason_ == Reason::Normal && db_ok_ &&
          peer_.state == State::RunningInFailedMode && peer_.reason == Reason::DatabaseFailure &&
          now_ - peer_.state_since >= settings.critical_service_down_delay &&
          holders_[config_.peer] != config_.peer) {
        // The peer alone lost the database (SPEC.md section 3: "DB service on 1 stopped;
        // automatic failover"): it stopped serving its partition when it could not renew the
        // lease, before its own failover could hand it over (that needs the database too).
        // We still reach the database: serve its partition once the lease has lapsed on the
        // database's clock (take_over checks), until a fallback gives it back. Not while we
        // recover from a database failure ourselves (an outage of the database for both
        // ends with each taking its own partition back), and only once the peer has been
        // failed for the critical-service delay (a slow database fails both nodes within
        // moments; the simulation found the crossing takeovers this caused).
        if (co_await take_over(config_.peer, Reason::DatabaseFailure, false)) {
          set_state(State::RunningInBackupMode, Reason::DatabaseFailure);
        }
        break;
      }
      if (!alive && peer_.heard) {
        // Heartbeat lost. Take over only once the peer's lease has lapsed on the database's
        // clock: a peer that is merely unreachable still holds it, and no split brain follows.
        const Reason why = peer_.rebooting ? Reason::PeerReboot : Reason::PeerDown;
        if (co_await take_over(config_.peer, why, false)) {
          set_state(State::RunningInBackupMode, why);
          break;
        }
        // Still held: is the peer alive (it renewed since we lost it) or about to lapse?
        const Outcome lease = co_await read_lease(config_.peer);
        if (!lease.ok()) {
          break;
        }
        if (peer_lease_seen_ == 0) {
          peer_lease_seen_ = lease.lease.expires_at;
        }
        if (lease.lease.expires_at > peer_lease_seen_ && !unreachable_handled_) {
          unreachable_handled_ = true;
          log(Level::Warn,
              fmt::format("srm: peer {} is unreachable but holds its lease: no takeover",
                          config_.peer));
          emit(srm::EvictPeer{});
          emit(srm::Publish{});  // its rooms now answer at once instead of parking stanzas
        }
      } else if (!alive && !peer_.heard && now_ - started_ >= settings.init_heartbeat_timeout) {
        if (co_await take_over(config_.peer, Reason::PeerDown, false)) {
          set_state(State::RunningInBackupMode, Reason::PeerDown);
        }
      }
      break;
    case State::RunningInBackupMode:
      if (down_too_long) {
        log(Level::Error, fmt::format("srm: critical service {} stopped on the backup node: "
                                      "both nodes failed",
                                      to_string(*down)));
        set_state(State::RunningInFailedMode, Reason::CriticalServiceDown);
      }
      // An automatic fallback is asked for by the failed-over node itself (below).
      break;
    case State::FailedOverServicesNotRunning:
      if (!down) {
        set_state(State::FailedOver, reason_);
      }
      break;
    case State::RunningInFailedMode:
      if (reason_ == Reason::DatabaseFailure && alive && held_.empty() &&
          holders_[config_.self] == config_.peer) {
        // We lost the database and the peer, which still reaches it, serves our partition
        // now: we are failed over, and wait for a fallback once the database is back.
        set_state(down ? State::FailedOverServicesNotRunning : State::FailedOver,
                  Reason::DatabaseFailure);
      }
      break;
    case State::FailedOver:
      if (down) {
        set_state(State::FailedOverServicesNotRunning, down_reason);
      } else if (settings.auto_fallback && alive && peer_.state == State::RunningInBackupMode &&
                 now_ - state_since_ >= settings.auto_fallback_delay) {
        co_await fall_back(Reason::AutomaticFallback);
      }
      break;
    default:
      break;
  }
}

// ---- state, services, heartbeat ----

void SrmMachine::set_state(State s, Reason r) {
  if (s == state_ && r == reason_) {
    return;
  }
  emit(srm::StateChanged{state_, reason_, s, r});
  state_ = s;
  reason_ = r;
  state_since_ = now_;
  send_heartbeat();
  emit(srm::RefreshRegistry{});
}

void SrmMachine::apply_service(Service s, bool run) {
  stopped_[static_cast<int>(s)] = !run;
  switch (s) {
    case Service::Router:
      emit(srm::SetRouter{run});
      break;
    case Service::TextConference:
      emit(srm::SetConference{run});
      break;
    case Service::Database:
    case Service::Authentication:
      break;
  }
  emit(srm::SetAuthentication{!stopped(Service::Authentication)});
  emit(srm::Publish{});
}

void SrmMachine::send_heartbeat() {
  if (!config_.clustered) {
    return;
  }
  proto::Heartbeat hb;
  hb.node = config_.self;
  hb.state = state_;
  hb.reason = reason_;
  hb.epoch = own_epoch();
  for (const auto& [p, h] : held_) {
    hb.holds.push_back(p);
  }
  for (const Service s : kServices) {
    hb.services[std::string(to_string(s))] = service_status(s);
  }
  hb.rebooting = shutting_down_;
  // Whether we hear the peer: lets it notice a one-way cut (its heartbeats arrive, ours not).
  hb.hears = peer_alive(now_);
  emit(srm::SendHeartbeat{std::move(hb)});
}

void SrmMachine::reply(const std::string& id, bool ok, std::string error, std::int64_t epoch) {
  emit(srm::ReplyControl{{id, ok, std::move(error), 0, epoch}});
}

std::int64_t SrmMachine::own_epoch() const {
  auto it = held_.find(config_.self);
  return it == held_.end() ? 0 : it->second.epoch;
}

bool SrmMachine::service_running(Service s) const {
  if (stopped(s)) {
    return false;
  }
  return s != Service::Database || db_ok_;
}

bool SrmMachine::orphaned() const {
  // Both nodes failed over (two failovers crossed, or the backup failed meanwhile): the peer
  // does not hold our partition and will not take it.
  const auto it = holders_.find(config_.self);
  const bool peer_holds = it != holders_.end() && it->second == config_.peer;
  return !peer_holds && (is_failed_over(peer_.state) || peer_.state == State::RunningInFailedMode);
}

bool SrmMachine::peer_serves() const {
  // As its last heartbeat said; a service it does not report is not held against it, nor is
  // authentication when it is not monitored.
  const auto monitored_auth = config_.settings.monitor_authentication;
  return std::all_of(peer_.services.begin(), peer_.services.end(), [&](const auto& kv) {
    return kv.second == "running" ||
           (!monitored_auth && kv.first == to_string(Service::Authentication));
  });
}

std::string SrmMachine::service_status(Service s) const {
  if (stopped(s)) {
    return "stopped";
  }
  return service_running(s) ? "running" : "failed";
}

std::optional<Service> SrmMachine::first_down_service() const {
  for (const Service s : kServices) {
    if (s == Service::Authentication && !config_.settings.monitor_authentication) {
      continue;
    }
    if (!service_running(s)) {
      return s;
    }
  }
  return std::nullopt;
}

}  // namespace tc::broker::ha
