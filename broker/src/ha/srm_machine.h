// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SRM's decision core: the state machine of SPEC.md section 3 with no sockets, no
// database and no clock of its own. Observations come in with the current time (a heartbeat,
// the outcome of a lease operation, a timer, an admin request); actions come out (renew this
// lease, send this heartbeat, load that partition, change state). The node's driver (Srm)
// performs the actions on the real database and link; the simulation test performs them on
// a simulated lease store and network, so the very same decisions are checked under seeded
// faults (LevelDB's Env and FoundationDB's simulation are the models).
//
// Transitions are written as sequential coroutines (take over = read the lease, then acquire
// it, then load the partition), but they only ever wait for an action's outcome, which the
// driver hands back through on_outcome(). Nothing runs between two inputs.

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "storage/records.h"

#include "ha/cluster_settings.h"
#include "ha/srm_protocol.h"
#include "ha/states.h"

namespace tc::broker::ha {

/// The critical services of a node (SPEC.md section 2).
enum class Service { Router, TextConference, Database, Authentication };
inline constexpr Service kServices[] = {Service::Router, Service::TextConference, Service::Database,
                                        Service::Authentication};
std::string_view to_string(Service s);
std::optional<Service> service_from(std::string_view name);

using TimePoint = std::chrono::steady_clock::time_point;

/// Where HA code reads the time (Envoy's TimeSource): the node reads the steady clock, the
/// simulation its own.
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  /// Monotonic time: every HA decision and timeout.
  virtual TimePoint now() const = 0;
  /// Wall-clock time: only what is shown to people (the registry's "last heartbeat").
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

class SteadyTimeSource final : public TimeSource {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
};

/// What the machine asks for. Effects carry an `op`: the machine waits for their Outcome
/// (on_outcome with the same op). Commands are done and forgotten.
namespace srm {
// ---- effects ----
struct ReadLease {
  std::uint64_t op = 0;
  std::string partition;
};
struct AcquireLease {
  std::uint64_t op = 0;
  std::string partition;
  std::int64_t ttl_ms = 0;
};
struct RenewLease {
  std::uint64_t op = 0;
  storage::Fence fence;
  std::int64_t ttl_ms = 0;
};
struct TransferLease {
  std::uint64_t op = 0;
  storage::Fence fence;
  std::string to;
  std::int64_t ttl_ms = 0;
};
struct ReleaseLease {
  std::uint64_t op = 0;
  storage::Fence fence;
};
struct PingDatabase {
  std::uint64_t op = 0;
};
/// To the peer; its reply, or a failure when it cannot be sent or is not answered within
/// twice the heartbeat timeout plus 3 s (the driver's bound), is the outcome.
struct SendControl {
  std::uint64_t op = 0;
  proto::Control ctl;
};
struct Sleep {
  std::uint64_t op = 0;
  TimePoint until;
};
// ---- commands ----
/// The driver fills in what only the node knows: rooms, users, client endpoint.
struct SendHeartbeat {
  proto::Heartbeat hb;
};
struct ReplyControl {
  proto::ControlReply reply;
};
/// Holders, epochs or serving flags changed: publish the cluster view.
struct Publish {};
/// Load the rooms of a partition this node now holds.
struct LoadPartition {
  std::string partition;
  bool drop_peer_occupants = false;  // the peer is gone: its users leave our rooms
  bool replay_joins = false;         // our users in that partition's rooms join them here
};
/// Stop serving a partition: its rooms unload, stanzas for them wait (parked).
struct UnloadPartition {
  std::string partition;
};
/// Our users in `partition`'s rooms join them again (the partition's host changed).
struct ReplayJoins {
  std::string partition;
};
/// Disconnect users with a re-login hint naming `to_node`'s client endpoint ("": none).
/// `partition` "": every session of this node; else those that came because of it.
struct MoveUsers {
  std::string partition;
  std::string to_node;
};
struct SetRouter {
  bool on = false;
};
struct SetConference {
  bool on = false;
};
struct SetAuthentication {
  bool on = false;
};
/// The peer is unreachable yet holds its lease: its occupants leave our rooms and our users
/// leave its rooms, whose stanzas are answered at once instead of waiting.
struct EvictPeer {};
/// Drop the link's connections and dial again.
struct ResetLink {};
/// Look up where the peer listens (the node registry) if not known or the link is down.
struct DiscoverPeer {};
/// Write this node's registry row (state, endpoints, heartbeat time).
struct RefreshRegistry {};
struct StateChanged {
  State from = State::Unknown;
  Reason from_reason = Reason::Unknown;
  State to = State::Unknown;
  Reason to_reason = Reason::Unknown;
};
/// An admin failover or fallback asked with `ticket` is over; `ok` when it reached its goal.
struct AdminDone {
  std::uint64_t ticket = 0;
  bool ok = false;
};
/// A clean stop is done: the node may exit.
struct Stopped {};
struct Log {
  enum class Level { Info, Warn, Error };
  Level level = Level::Info;
  std::string text;
};
}  // namespace srm

using Action = std::variant<srm::ReadLease, srm::AcquireLease, srm::RenewLease, srm::TransferLease,
                            srm::ReleaseLease, srm::PingDatabase, srm::SendControl, srm::Sleep,
                            srm::SendHeartbeat, srm::ReplyControl, srm::Publish, srm::LoadPartition,
                            srm::UnloadPartition, srm::ReplayJoins, srm::MoveUsers, srm::SetRouter,
                            srm::SetConference, srm::SetAuthentication, srm::EvictPeer,
                            srm::ResetLink, srm::DiscoverPeer, srm::RefreshRegistry,
                            srm::StateChanged, srm::AdminDone, srm::Stopped, srm::Log>;

/// How an effect ended.
struct Outcome {
  enum class Status { Ok, NotFound, StaleEpoch, AlreadyExists, Failed };
  Status status = Status::Ok;
  std::string error;           // why, when not Ok
  storage::LeaseRecord lease;  // lease effects
  proto::ControlReply reply;   // SendControl
  bool ok() const { return status == Status::Ok; }
};

struct MachineConfig {
  std::string group;
  std::string self;
  std::string peer;  // "" without one
  std::vector<std::string> nodes;
  bool clustered = false;
  bool ha_enabled = false;
  ClusterSettings settings;
  /// When an unrenewed partition is given up, in quarters of the lease: 3 (75%) leaves a
  /// quarter of the lease for the database's and the peer's clocks. The simulation sets 5 to
  /// show the split brain a late fence allows.
  int fence_quarters = 3;
};

namespace detail {

template <class T>
struct ReturnSlot {
  std::optional<T> value;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() { return std::move(*value); }
};
template <>
struct ReturnSlot<void> {
  void return_void() {}
  void take() {}
};

/// A lazily started coroutine returning T, awaitable from another; the machine's transitions.
template <class T>
class Proc {
 public:
  struct promise_type : ReturnSlot<T> {
    std::exception_ptr error;
    std::coroutine_handle<> continuation;
    Proc get_return_object() { return Proc(Handle::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct Final {
        bool await_ready() noexcept { return false; }
        std::coroutine_handle<> await_suspend(Handle h) noexcept {
          auto next = h.promise().continuation;
          return next ? next : std::noop_coroutine();
        }
        void await_resume() noexcept {}
      };
      return Final{};
    }
    void unhandled_exception() { error = std::current_exception(); }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Proc(Proc&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Proc& operator=(Proc&& o) = delete;
  ~Proc() {
    if (h_) {
      h_.destroy();
    }
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
    h_.promise().continuation = caller;
    return h_;
  }
  T await_resume() {
    if (h_.promise().error) {
      std::rethrow_exception(h_.promise().error);
    }
    return h_.promise().take();
  }
  Handle release() { return std::exchange(h_, {}); }

 private:
  explicit Proc(Handle h) : h_(h) {}
  Handle h_;
};

}  // namespace detail

class SrmMachine {
 public:
  template <class T>
  using Proc = detail::Proc<T>;
  using Task = detail::Proc<void>;

  /// What the machine knows of its peer, from its heartbeats.
  struct PeerInfo {
    bool heard = false;
    TimePoint last_heard{};
    State state = State::Unknown;
    Reason reason = Reason::Unknown;
    TimePoint state_since{};  // when its heartbeats first said this state and reason
    std::map<std::string, std::string> services;
    std::uint64_t rooms = 0;
    std::uint64_t users = 0;
    std::int64_t epoch = 0;
    bool rebooting = false;  // it said it is shutting down cleanly
    bool hears_us = true;    // its last heartbeat said it hears ours
    TimePoint deaf_since{};  // since when it does not
  };
  struct Held {
    std::int64_t epoch = 0;
    TimePoint renewed{};  // when the last successful renewal was sent
  };
  enum class Channel { Control, Data };

  SrmMachine(MachineConfig config, TimePoint now);
  ~SrmMachine();
  SrmMachine(const SrmMachine&) = delete;
  SrmMachine& operator=(const SrmMachine&) = delete;

  // ---- inputs (each may queue actions; take them with drain()) ----
  /// Starts the lease loop and the heartbeat loop.
  void start(TimePoint now);
  void on_outcome(TimePoint now, std::uint64_t op, Outcome outcome);
  void on_heartbeat(TimePoint now, const proto::Heartbeat& hb);
  /// adopt, release, hosting, recover (admin requests go through the admin_* inputs).
  void on_control(TimePoint now, const proto::Control& ctl);
  void on_link(TimePoint now, Channel channel, bool up);
  /// Admin failover / fallback of this node; ends with AdminDone{ticket}. Check refuse_*
  /// and busy() first.
  void admin_failover(TimePoint now, std::uint64_t ticket);
  void admin_fallback(TimePoint now, std::uint64_t ticket);
  /// Restarts SRM state here and asks the peer to do the same.
  void admin_recover(TimePoint now);
  /// An admin stop or start of a critical service.
  void set_service(TimePoint now, Service s, bool run);
  /// A clean stop: hands this node's partition to a healthy peer, or releases its leases;
  /// ends with Stopped.
  void shutdown(TimePoint now);

  /// The actions queued since the last call, in order.
  std::vector<Action> drain();

  // ---- what it knows ----
  const MachineConfig& config() const { return config_; }
  State state() const { return state_; }
  Reason reason() const { return reason_; }
  bool busy() const { return busy_; }
  bool shutting_down() const { return shutting_down_; }
  const std::map<std::string, Held>& held() const { return held_; }
  /// Partition -> the node last known to serve it ("" while it moves).
  const std::map<std::string, std::string>& holders() const { return holders_; }
  const PeerInfo& peer_info() const { return peer_; }
  bool peer_alive(TimePoint now) const;
  /// The peer holds its partitions but cannot be reached (cut): its rooms answer at once.
  bool peer_cut_off(TimePoint now) const;
  bool service_running(Service s) const;
  std::string service_status(Service s) const;
  bool peer_serves() const;  // its critical services all run (a failover target)
  /// What failover and fallback requests refuse alike (HA off, unknown node, peer unreachable);
  /// `what` names the request in the message.
  std::optional<std::string> refuse_move(TimePoint now, const std::string& node,
                                         std::string_view what) const;
  bool orphaned() const;  // our partition has nobody: the peer is failed over as well
  std::optional<Service> first_down_service() const;
  std::int64_t own_epoch() const;

  /// Why an admin request would be refused now (nullopt: allowed).
  std::optional<std::string> refuse_failover(TimePoint now, const std::string& node) const;
  std::optional<std::string> refuse_fallback(TimePoint now, const std::string& node) const;
  std::optional<std::string> refuse_recover(TimePoint now, const std::string& group) const;

 private:
  /// The peer is alive again (a heartbeat, or our SRM connection back): republish the view
  /// and replay our users' joins to its rooms.
  void peer_came_back();
  // Effects to co_await. GCC 12 may copy a co_await operand's temporaries bitwise, which
  // breaks a std::string's small buffer: so a co_await expression holds no temporary with a
  // string. These build the action outside it; coroutines take strings by const reference
  // (every one is awaited at once, so the referent outlives it) or, when spawned, by value.
  class Effect;
  template <class A>
  Effect await(A action);
  Effect read_lease(const std::string& partition);
  Effect acquire_lease(const std::string& partition);
  Effect renew_lease(const std::string& partition, std::int64_t epoch);
  Effect transfer_lease(const std::string& partition, std::int64_t epoch, const std::string& to);
  Effect release_lease(const std::string& partition, std::int64_t epoch);
  Effect ping_database();
  Effect send_control(const proto::Control& ctl);
  Effect sleep(std::chrono::milliseconds d);

  void spawn(Task task);
  void reap();
  void emit(Action action) { out_.push_back(std::move(action)); }
  void log(srm::Log::Level level, std::string text);
  std::uint64_t next_op() { return next_op_++; }

  Task run_loop();
  Task heartbeat_loop();
  Task tick();
  Task evaluate();
  Proc<bool> take_over(const std::string& partition, Reason reason, bool handed);
  Task fail_over(Reason reason, bool admin);
  Task fall_back(Reason reason);
  /// On the backup: hands `partition` back to its owner. (ok, error or the new epoch)
  Proc<std::pair<bool, std::string>> give_back(const std::string& partition, Reason reason);
  Task adopt(std::string id, std::string partition, Reason reason, bool handed);
  Task release_for_peer(std::string id, std::string partition, Reason reason);
  Task recover_local();
  Task admin_failover_task(std::uint64_t ticket);
  Task admin_fallback_task(std::uint64_t ticket);
  Task shutdown_task();

  void self_fence(const std::string& partition, Reason reason);
  void check_link_liveness();
  void set_state(State s, Reason r);
  void apply_service(Service s, bool run);
  void send_heartbeat();
  void reply(const std::string& id, bool ok, std::string error, std::int64_t epoch = 0);
  bool stopped(Service s) const { return stopped_[static_cast<int>(s)]; }

  MachineConfig config_;
  TimePoint now_;
  State state_ = State::Unknown;
  Reason reason_ = Reason::Unknown;
  TimePoint state_since_;
  TimePoint started_;
  PeerInfo peer_;
  std::map<std::string, Held> held_;                // partitions this node holds
  std::map<std::string, std::string> holders_;      // partition -> holder as last published
  bool stopped_[4] = {false, false, false, false};  // stopped by the admin or by failover
  bool db_ok_ = true;
  std::optional<TimePoint> down_since_;
  bool busy_ = false;        // a transition is running
  std::uint64_t ticks_ = 0;  // the registry row is refreshed every 20 ticks
  bool unreachable_handled_ = false;
  storage::UnixMillis peer_lease_seen_ = 0;  // the peer's lease expiry when we lost it
  bool shutting_down_ = false;
  bool halted_ = false;  // a clean stop is over: the loops end
  bool srm_up_ = false;
  bool data_up_ = false;
  TimePoint srm_up_since_{};   // our control connection's last dial
  TimePoint link_reset_at_{};  // the last reset of a silent link
  /// A one-way cut: we hear the peer, it has not heard us for the heartbeat timeout (what we
  /// send is lost). Its rooms then answer at once, as in a full cut.
  bool one_way_ = false;

  std::uint64_t next_op_ = 1;
  std::vector<Action> out_;
  std::map<std::uint64_t, std::coroutine_handle<>> waiters_;  // effects awaited, by op
  std::map<std::uint64_t, Outcome> outcomes_;  // outcomes handed to a waiter, until it reads

  std::vector<Task::Handle> running_;  // top-level transitions and loops
};

}  // namespace tc::broker::ha
