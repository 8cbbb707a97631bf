// SPDX-License-Identifier: Apache-2.0
// The simulation's model of the world around an SRM node: the lease store (the database's
// tc_leases rules, on the database's own clock), the bugs it can plant, and the state/reason
// pairs SPEC.md allows. Only srm_simulation_test.cpp includes it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "ha/srm_machine.h"

namespace tc::broker::ha::sim {

using Status = Outcome::Status;

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

/// A bug planted on purpose (TC_SIM_PLANT), to show that the simulation catches it.
enum class Plant { None, NoFence, NoEpochCheck, StealUnexpired, LateFence };

inline Plant planted() {
  const std::string p = env("TC_SIM_PLANT");
  if (p == "no-fence") {
    return Plant::NoFence;
  }
  if (p == "no-epoch-check") {
    return Plant::NoEpochCheck;
  }
  if (p == "steal-unexpired") {
    return Plant::StealUnexpired;
  }
  if (p == "late-fence") {
    return Plant::LateFence;
  }
  return Plant::None;
}

struct Lease {
  std::string holder;
  std::int64_t epoch = 0;
  std::int64_t expires_at = 0;
};

/// The lease table, as tc_leases behaves in PostgreSQL and SQLite (storage/src/*/..._ha.cpp):
/// each call is one atomic statement on the database's clock.
class LeaseStore {
 public:
  explicit LeaseStore(Plant plant) : plant_(plant) {}

  Outcome read(const std::string& p, std::int64_t now) const {
    auto it = leases_.find(p);
    if (it == leases_.end()) {
      return fail(Status::NotFound);
    }
    return ok(p, it->second, now);
  }
  Outcome acquire(const std::string& p, const std::string& node, std::int64_t ttl,
                  std::int64_t now) {
    auto it = leases_.find(p);
    if (it == leases_.end()) {
      leases_[p] = {node, 1, now + ttl};
      return ok(p, leases_[p], now);
    }
    Lease& l = it->second;
    if (l.holder != node && l.expires_at > now && plant_ != Plant::StealUnexpired) {
      return fail(Status::AlreadyExists);
    }
    if (l.holder != node) {
      ++l.epoch;
    }
    l.holder = node;
    l.expires_at = now + ttl;
    return ok(p, l, now);
  }
  Outcome renew(const storage::Fence& f, std::int64_t ttl, std::int64_t now) {
    Lease* l = holding(f);
    if (l == nullptr) {
      return fail(Status::StaleEpoch);
    }
    l->expires_at = now + ttl;
    return ok(f.partition, *l, now);
  }
  Outcome transfer(const storage::Fence& f, const std::string& to, std::int64_t ttl,
                   std::int64_t now) {
    Lease* l = holding(f);
    if (l == nullptr) {
      return fail(Status::StaleEpoch);
    }
    l->holder = to;
    ++l->epoch;
    l->expires_at = now + ttl;
    return ok(f.partition, *l, now);
  }
  Outcome release(const storage::Fence& f, std::int64_t now) {
    Lease* l = holding(f);
    if (l == nullptr) {
      return fail(Status::StaleEpoch);
    }
    l->expires_at = now;
    return ok(f.partition, *l, now);
  }
  /// A fenced write (a room's message): refused unless `f` still holds the lease.
  bool write(const storage::Fence& f) {
    if (plant_ == Plant::NoFence) {
      // The bug: a room write does not check the lease at all.
      return true;
    }
    if (plant_ == Plant::NoEpochCheck) {
      // The bug: the holder is checked, its epoch not (a write from before a failover and
      // fallback lands after them).
      auto it = leases_.find(f.partition);
      return it != leases_.end() && it->second.holder == f.holder;
    }
    return holding(f) != nullptr;
  }
  const Lease* lease(const std::string& p) const {
    auto it = leases_.find(p);
    return it == leases_.end() ? nullptr : &it->second;
  }

 private:
  Lease* holding(const storage::Fence& f) {
    auto it = leases_.find(f.partition);
    if (it == leases_.end() || it->second.holder != f.holder || it->second.epoch != f.epoch) {
      return nullptr;
    }
    return &it->second;
  }
  static Outcome ok(const std::string& p, const Lease& l, std::int64_t now) {
    Outcome o;
    o.lease = {p, l.holder, l.epoch, l.expires_at, now};
    return o;
  }
  static Outcome fail(Status s) {
    Outcome o;
    o.status = s;
    o.error = "simulated";
    return o;
  }

  Plant plant_;
  std::map<std::string, Lease> leases_;
};

/// The (state, reason) pairs SPEC.md section 3 and its table allow a node to show.
inline bool allowed(State s, Reason r) {
  switch (s) {
    case State::Initializing:
      return r == Reason::Initialization;
    case State::Idle:
      return r == Reason::OnAdminRequest;
    case State::Normal:
      return r == Reason::Normal || r == Reason::DatabaseFailureAutoRecovery ||
             r == Reason::CriticalServiceDownAutoRecovery;
    case State::RunningInBackupMode:
    case State::TakingOver:
      return r == Reason::PeerDown || r == Reason::PeerReboot ||
             r == Reason::PeerDownDuringInitialization || r == Reason::OnAdminRequest ||
             r == Reason::CriticalServiceDown || r == Reason::DatabaseFailure;
    case State::FailingOver:
    case State::FailedOverServicesNotRunning:
      return r == Reason::OnAdminRequest || r == Reason::CriticalServiceDown ||
             r == Reason::DatabaseFailure || r == Reason::PeerReboot;
    case State::FailedOver:
      return r == Reason::Initialization || r == Reason::CriticalServiceDown ||
             r == Reason::DatabaseFailure || r == Reason::PeerReboot || r == Reason::OnAdminRequest;
    case State::FallingBack:
    case State::TakingBack:
      return r == Reason::OnAdminRequest || r == Reason::AutomaticFallback || r == Reason::Normal;
    case State::RunningInFailedMode:
      return r == Reason::StartOfCriticalServicesFailed || r == Reason::CriticalServiceDown ||
             r == Reason::DatabaseFailure || r == Reason::UserMoveFailedDuringTakeover ||
             r == Reason::UserMoveFailedDuringTakeback || r == Reason::Unknown;
    case State::Unknown:
      return r == Reason::Unknown;
  }
  return false;
}

}  // namespace tc::broker::ha::sim
