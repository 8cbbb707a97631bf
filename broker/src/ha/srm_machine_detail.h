// SPDX-License-Identifier: Apache-2.0
// What the SRM machine's source files share (srm_machine.cpp, srm_transitions.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "ha/srm_machine.h"
#include "ha/states.h"

namespace tc::broker::ha::detail {

inline std::int64_t count_ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

inline std::string describe(State s, Reason r) {
  return std::string(to_string(s)) + " (" + std::string(to_string(r)) + ")";
}

/// An adopt refused because the peer is not serving itself (failing over, failed over).
constexpr unsigned kRefusedBusy = 409;

/// The reason a backup shows for a peer that is failed over for `peer_reason` (SPEC §3's
/// pairs: Idle / On Admin Request goes with Backup / On Admin Request, and so on).
inline Reason backup_reason(Reason peer_reason) {
  switch (peer_reason) {
    case Reason::OnAdminRequest:
    case Reason::CriticalServiceDown:
    case Reason::DatabaseFailure:
    case Reason::PeerReboot:
      return peer_reason;
    default:
      return Reason::CriticalServiceDown;
  }
}

}  // namespace tc::broker::ha::detail

namespace tc::broker::ha {

/// Awaiting an effect whose action is queued already: sleep until on_outcome() brings its
/// outcome. It holds nothing but trivially copyable members (GCC 12 may copy an awaiter
/// bitwise, which would break a std::string's small-buffer pointer).
class SrmMachine::Effect {
 public:
  Effect(SrmMachine* machine, std::uint64_t op) : machine_(machine), op_(op) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { machine_->waiters_[op_] = h; }
  Outcome await_resume() {
    auto it = machine_->outcomes_.find(op_);
    Outcome outcome = std::move(it->second);
    machine_->outcomes_.erase(it);
    return outcome;
  }

 private:
  SrmMachine* machine_;
  std::uint64_t op_;
};

}  // namespace tc::broker::ha
