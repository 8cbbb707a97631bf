// SPDX-License-Identifier: Apache-2.0
// Deterministic simulation of a redundancy group (FoundationDB / TigerBeetle style): the real
// SRM decision core (SrmMachine) of each node, driven by a simulated clock, a simulated lease
// store that behaves like the database (its own clock, atomic acquire/renew/transfer/release,
// fencing epochs, slow or failing calls) and a simulated link (silent cuts, one-way cuts,
// resets, crashes that leave half-open connections). Each schedule is drawn from one seed:
// settings, faults (kill -9, clean stop, link cuts, database cuts and outages, slow database,
// critical-service stops, admin failover/fallback/recover at random moments) and a stream of
// fenced room writes. After every event the invariants are checked; after the faults heal,
// an operator (recover, fallback) must bring the group back to Normal/Normal in a bound.
//
//   TC_SIM_SEED=N      replay one seed (its trace is printed on failure)
//   TC_SIM_SCHEDULES=N how many seeds each shard runs (default below)
//   TC_SIM_PLANT=name  plant a bug to see the simulation catch it: no-fence (room writes
//                      unchecked), no-epoch-check (holder checked, epoch not), steal-unexpired
//                      (acquire ignores the expiry), late-fence (self-fence at 125% of the
//                      lease instead of 75%)
//   TC_SIM_LOG=1       the machines' log lines go into the trace; TC_SIM_TRACE=N shows N lines
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ha/srm_machine.h"
#include "srm_sim_model.h"

namespace tc::broker::ha {
namespace {

using std::chrono::milliseconds;
using Status = Outcome::Status;
using sim::allowed;
using sim::env;
using sim::Lease;
using sim::LeaseStore;
using sim::Plant;
using sim::planted;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(24);

std::int64_t at_ms(TimePoint t) {
  return std::chrono::duration_cast<milliseconds>(t - kT0).count();
}

/// How much of the trace a failure shows (TC_SIM_TRACE overrides, e.g. 2000 for a replay).
const std::size_t kTraceLines = [] {
  const std::string t = env("TC_SIM_TRACE");
  return t.empty() ? std::size_t{80} : static_cast<std::size_t>(std::stoul(t));
}();

class Simulation {
 public:
  Simulation(std::uint64_t seed, Plant plant) : seed_(seed), rng_(seed), store_(plant) {
    draw_settings();
  }

  /// Runs the schedule; "" when every invariant held, else what broke (with the trace).
  std::string run() {
    for (int i = 0; i < 2; ++i) {
      boot(i);
    }
    draw_faults();
    schedule(kT0 + milliseconds(50), [this] { write_tick(); });
    while (!queue_.empty() && failure_.empty()) {
      Event e = queue_.top();
      queue_.pop();
      now_ = e.at;
      if (now_ > end_) {
        break;
      }
      e.fn();
      check_invariants();
      if (now_ >= heal_ && failure_.empty() && settled()) {
        if (!settled_since_) {
          settled_since_ = now_;
        } else if (now_ - *settled_since_ >= settings_.heartbeat_timeout * 2) {
          break;
        }
      } else {
        settled_since_.reset();
      }
    }
    if (failure_.empty() && !settled_since_) {
      fail("the group did not return to Normal/Normal within " +
           std::to_string(at_ms(end_) - at_ms(heal_)) + " ms of the faults healing; " +
           describe_nodes());
    }
    if (failure_.empty()) {
      check_archive();
    }
    if (failure_.empty()) {
      return "";
    }
    std::ostringstream out;
    out << "seed " << seed_ << ": " << failure_ << "\nsettings: timeout "
        << settings_.heartbeat_timeout.count() << " ms, interval "
        << settings_.heartbeat_interval.count() << " ms, init "
        << settings_.init_heartbeat_timeout.count() << " ms, service delay "
        << settings_.critical_service_down_delay.count() << " ms, auto fallback "
        << settings_.auto_fallback << "\ntrace (last " << kTraceLines << "):\n";
    const std::size_t from = trace_.size() > kTraceLines ? trace_.size() - kTraceLines : 0;
    for (std::size_t i = from; i < trace_.size(); ++i) {
      out << "  " << trace_[i] << "\n";
    }
    return out.str();
  }

  std::uint64_t events() const { return events_; }

 private:
  struct Event {
    TimePoint at;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator<(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct Node {
    std::string name;
    std::unique_ptr<SrmMachine> machine;
    bool alive = false;
    std::uint64_t incarnation = 0;
    bool link_up = false;  // this node's view of its connection to the peer
    bool db_cut = false;   // cut from the database
    std::set<std::string> loaded;
    std::map<std::uint64_t, bool> ctl_pending;  // control requests awaiting a reply
  };

  // ---- plumbing ----

  void schedule(TimePoint at, std::function<void()> fn) {
    queue_.push({at, seq_++, std::move(fn)});
  }
  /// Runs `fn` on node `i` later, if it is still the same process.
  void later(int i, milliseconds d, std::function<void(Node&)> fn) {
    const auto inc = nodes_[i].incarnation;
    schedule(now_ + d, [this, i, inc, fn = std::move(fn)] {
      Node& n = nodes_[i];
      if (n.alive && n.incarnation == inc) {
        ++events_;
        fn(n);
        perform(i);
      }
    });
  }
  milliseconds uniform(milliseconds lo, milliseconds hi) {
    return milliseconds(std::uniform_int_distribution<std::int64_t>(lo.count(), hi.count())(rng_));
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  void note(const std::string& text) { trace_.push_back(std::to_string(at_ms(now_)) + " " + text); }
  void fail(const std::string& what) {
    if (failure_.empty()) {
      failure_ = "at " + std::to_string(at_ms(now_)) + " ms: " + what;
    }
  }
  std::int64_t db_now() const { return at_ms(now_); }
  const std::string& name(int i) const { return nodes_[i].name; }

  // ---- the schedule ----

  void draw_settings() {
    auto& s = settings_;
    s.heartbeat_timeout = uniform(milliseconds(300), milliseconds(1000));
    // Validation allows any interval below the timeout; drills use a fifth, the default a
    // quarter. Draw across what operators set.
    s.heartbeat_interval = chance(0.15)
                               ? uniform(s.heartbeat_timeout / 4, s.heartbeat_timeout / 2)
                               : uniform(s.heartbeat_timeout / 10, s.heartbeat_timeout / 4);
    s.init_heartbeat_timeout = uniform(s.heartbeat_timeout, s.heartbeat_timeout * 3);
    s.critical_service_down_delay = uniform(s.heartbeat_timeout / 2, s.heartbeat_timeout * 2);
    s.auto_fallback = chance(0.3);
    s.auto_fallback_delay = uniform(s.heartbeat_timeout, s.heartbeat_timeout * 4);
    s.monitor_authentication = chance(0.5);
    db_latency_max_ = uniform(milliseconds(1), s.heartbeat_timeout / 20);
    net_latency_max_ = uniform(milliseconds(1), milliseconds(5));
    heal_ = kT0 + s.init_heartbeat_timeout + s.heartbeat_timeout * 6;
    end_ = heal_ + s.init_heartbeat_timeout + s.auto_fallback_delay + s.heartbeat_timeout * 30;
  }

  void draw_faults() {
    const auto& T = settings_.heartbeat_timeout;
    const int count = std::uniform_int_distribution<int>(1, 5)(rng_);
    for (int k = 0; k < count; ++k) {
      const auto at =
          kT0 + uniform(milliseconds(0), std::chrono::duration_cast<milliseconds>(heal_ - kT0 - T));
      const int i = std::uniform_int_distribution<int>(0, 1)(rng_);
      const auto lasts = uniform(T / 2, T * 4);
      const int kind = std::uniform_int_distribution<int>(0, 10)(rng_);
      schedule(at, [this, kind, i, lasts] { fault(kind, i, lasts); });
    }
    schedule(heal_, [this] { heal(); });
  }

  void fault(int kind, int i, milliseconds lasts) {
    Node& n = nodes_[i];
    switch (kind) {
      case 0:  // kill -9, restarted later
        if (n.alive) {
          note("kill -9 " + n.name);
          crash(i);
          schedule(now_ + lasts, [this, i] { boot(i); });
        }
        break;
      case 1:  // clean stop, restarted later
        if (n.alive && !n.machine->shutting_down()) {
          note("clean stop of " + n.name);
          n.machine->shutdown(now_);
          perform(i);
          restart_after_stop_[i] = lasts;
        }
        break;
      case 2:
        note("link cut both ways for " + std::to_string(lasts.count()) + " ms");
        path_[0] = path_[1] = false;
        schedule(now_ + lasts, [this] {
          path_[0] = path_[1] = true;
          note("link back");
        });
        break;
      case 3:
        note("link cut one way, " + n.name + " -> peer, for " + std::to_string(lasts.count()) +
             " ms");
        path_[i] = false;
        schedule(now_ + lasts, [this, i] {
          path_[i] = true;
          note("link back");
        });
        break;
      case 4:
        note(n.name + " cut from the database for " + std::to_string(lasts.count()) + " ms");
        n.db_cut = true;
        schedule(now_ + lasts, [this, i] { nodes_[i].db_cut = false; });
        break;
      case 5:
        note("database down for " + std::to_string(lasts.count()) + " ms");
        db_down_ = true;
        schedule(now_ + lasts, [this] { db_down_ = false; });
        break;
      case 6:
        note("database slow for " + std::to_string(lasts.count()) + " ms");
        db_slow_ = true;
        schedule(now_ + lasts, [this] { db_slow_ = false; });
        break;
      case 7: {  // a critical service stops, starts again later
        if (!n.alive) {
          break;
        }
        const Service s = kServices[std::uniform_int_distribution<int>(0, 3)(rng_)];
        note("admin stops " + std::string(to_string(s)) + " on " + n.name);
        n.machine->set_service(now_, s, false);
        perform(i);
        later(i, lasts, [this, s](Node& node) {
          note("admin starts " + std::string(to_string(s)) + " on " + node.name);
          node.machine->set_service(now_, s, true);
        });
        break;
      }
      case 8:
        admin(i, "failover");
        break;
      case 9:
        admin(i, "fallback");
        break;
      default:
        admin(i, "recover");
        break;
    }
  }

  /// An admin request as the admin API makes it: refused unless the state allows it.
  void admin(int i, const std::string& what) {
    Node& n = nodes_[i];
    if (!n.alive || n.machine->busy() || n.machine->shutting_down()) {
      return;
    }
    SrmMachine& m = *n.machine;
    if (what == "failover" && !m.refuse_failover(now_, n.name)) {
      note("admin failover of " + n.name);
      m.admin_failover(now_, ++tickets_);
    } else if (what == "fallback" && !m.refuse_fallback(now_, n.name)) {
      note("admin fallback of " + n.name);
      m.admin_fallback(now_, ++tickets_);
    } else if (what == "recover" && !m.refuse_recover(now_, "g1")) {
      note("admin recover via " + n.name);
      m.admin_recover(now_);
    }
    perform(i);
  }

  void heal() {
    note("faults heal");
    path_[0] = path_[1] = true;
    db_down_ = db_slow_ = false;
    for (int i = 0; i < 2; ++i) {
      nodes_[i].db_cut = false;
      if (!nodes_[i].alive) {
        boot(i);
      } else {
        for (const Service s : kServices) {
          nodes_[i].machine->set_service(now_, s, true);
        }
        perform(i);
      }
    }
    restart_after_stop_.clear();
    operator_tick();
  }

  /// After the heal the operator does what the status page recommends.
  void operator_tick() {
    for (int i = 0; i < 2; ++i) {
      const Node& n = nodes_[i];
      if (!n.alive) {
        // A node that stopped after the heal (a clean stop still waiting when it came) is
        // started again, as its service manager would.
        note("operator starts " + name(i));
        boot(i);
        continue;
      }
      const State s = n.machine->state();
      if (s == State::RunningInFailedMode) {
        admin(i, "recover");
      } else if (s == State::Idle || s == State::FailedOver) {
        admin(i, "fallback");
      } else if (s == State::FailedOverServicesNotRunning) {
        for (const Service sv : kServices) {
          nodes_[i].machine->set_service(now_, sv, true);
        }
        perform(i);
      }
    }
    schedule(now_ + settings_.heartbeat_timeout, [this] { operator_tick(); });
  }

  // ---- processes ----

  void boot(int i) {
    Node& n = nodes_[i];
    n.name = i == 0 ? "n1" : "n2";
    MachineConfig config;
    config.group = "g1";
    config.self = n.name;
    config.peer = i == 0 ? "n2" : "n1";
    config.nodes = {"n1", "n2"};
    config.clustered = true;
    config.ha_enabled = true;
    config.settings = settings_;
    if (planted_ == Plant::LateFence) {
      config.fence_quarters = 5;
    }
    n.machine = std::make_unique<SrmMachine>(config, now_);
    n.alive = true;
    ++n.incarnation;
    n.link_up = false;
    n.loaded.clear();
    n.ctl_pending.clear();
    note("start " + n.name);
    n.machine->start(now_);
    perform(i);
    dial();
  }

  void crash(int i) {
    Node& n = nodes_[i];
    n.alive = false;
    n.machine.reset();
    n.loaded.clear();
    n.link_up = false;
    // The kernel closes its sockets: the peer sees it if the path lets the FIN through.
    Node& p = nodes_[1 - i];
    if (p.alive && p.link_up && path_[i]) {
      link_down(1 - i);
    }
  }

  // ---- the link ----

  bool deliverable(int from) const {
    const int to = 1 - from;
    return nodes_[from].alive && nodes_[to].alive && nodes_[from].link_up && nodes_[to].link_up &&
           path_[from];
  }

  void link_down(int i) {
    Node& n = nodes_[i];
    if (!n.link_up) {
      return;
    }
    n.link_up = false;
    n.machine->on_link(now_, SrmMachine::Channel::Control, false);
    n.machine->on_link(now_, SrmMachine::Channel::Data, false);
    perform(i);
    dial();
  }

  /// Redials every 100 ms while a side is down; a connection needs both paths.
  void dial() {
    if (dialling_) {
      return;
    }
    dialling_ = true;
    schedule(now_ + milliseconds(100), [this] {
      dialling_ = false;
      Node& a = nodes_[0];
      Node& b = nodes_[1];
      if (a.alive && b.alive && a.link_up && b.link_up) {
        return;
      }
      if (!(a.alive && b.alive && path_[0] && path_[1])) {
        if (a.alive || b.alive) {
          dial();
        }
        return;
      }
      for (int i = 0; i < 2; ++i) {
        nodes_[i].link_up = true;
        nodes_[i].machine->on_link(now_, SrmMachine::Channel::Control, true);
        nodes_[i].machine->on_link(now_, SrmMachine::Channel::Data, true);
        perform(i);
      }
    });
  }

  /// Sends to the peer: FIFO per direction (the link is TCP), lost while the path is cut.
  void send(int from, std::function<void(Node&)> fn) {
    if (!deliverable(from)) {
      return;
    }
    const int to = 1 - from;
    auto at = std::max(now_ + uniform(milliseconds(0), net_latency_max_), fifo_[from]);
    fifo_[from] = at;
    const auto inc = nodes_[to].incarnation;
    schedule(at, [this, from, to, inc, fn = std::move(fn)] {
      Node& n = nodes_[to];
      if (!n.alive || n.incarnation != inc || !path_[from] || !n.link_up) {
        return;
      }
      ++events_;
      fn(n);
      perform(to);
    });
  }

  // ---- the database ----

  milliseconds db_latency() {
    if (db_slow_ && chance(0.5)) {
      return uniform(settings_.heartbeat_timeout / 10, settings_.heartbeat_timeout * 6 / 10);
    }
    return uniform(milliseconds(0), db_latency_max_);
  }

  /// A store call: applied when it reaches the database, answered after the way back.
  void db_call(int i, std::uint64_t op, std::function<Outcome()> apply) {
    const auto there = db_latency();
    const auto back = db_latency();
    const auto inc = nodes_[i].incarnation;
    schedule(now_ + there, [this, i, op, inc, back, apply = std::move(apply)] {
      Outcome o;
      if (db_down_ || nodes_[i].db_cut) {
        o.status = Status::Failed;
        o.error = "database unreachable";
      } else {
        o = apply();
      }
      // The answer comes back to the same process only.
      schedule(now_ + back, [this, i, op, inc, o] {
        Node& n = nodes_[i];
        if (n.alive && n.incarnation == inc) {
          ++events_;
          n.machine->on_outcome(now_, op, o);
          perform(i);
        }
      });
    });
  }

  // ---- carrying out a node's actions ----

  void perform(int i) {
    for (;;) {
      Node& n = nodes_[i];
      if (!n.alive) {
        return;
      }
      auto actions = n.machine->drain();
      if (actions.empty()) {
        return;
      }
      for (auto& a : actions) {
        std::visit([this, i](auto& x) { act(i, x); }, a);
        if (!nodes_[i].alive) {
          return;
        }
      }
    }
  }

  void act(int i, srm::ReadLease& a) {
    db_call(i, a.op, [this, p = a.partition] { return store_.read(p, db_now()); });
  }
  void act(int i, srm::AcquireLease& a) {
    db_call(i, a.op, [this, p = a.partition, n = name(i), ttl = a.ttl_ms] {
      return store_.acquire(p, n, ttl, db_now());
    });
  }
  void act(int i, srm::RenewLease& a) {
    db_call(i, a.op,
            [this, f = a.fence, ttl = a.ttl_ms] { return store_.renew(f, ttl, db_now()); });
  }
  void act(int i, srm::TransferLease& a) {
    db_call(i, a.op, [this, f = a.fence, to = a.to, ttl = a.ttl_ms] {
      return store_.transfer(f, to, ttl, db_now());
    });
  }
  void act(int i, srm::ReleaseLease& a) {
    db_call(i, a.op, [this, f = a.fence] { return store_.release(f, db_now()); });
  }
  void act(int i, srm::PingDatabase& a) {
    db_call(i, a.op, [] { return Outcome{}; });
  }
  void act(int i, srm::SendControl& a) {
    Node& n = nodes_[i];
    if (!n.link_up) {
      // Not connected: the driver answers at once that the peer is not reachable.
      later(i, milliseconds(0), [this, op = a.op](Node& node) {
        Outcome o;
        o.status = Status::Failed;
        o.error = "the peer is not reachable";
        node.machine->on_outcome(now_, op, o);
      });
      return;
    }
    // Sent (it may still be lost on a cut path or to a dead peer): answered or timed out.
    n.ctl_pending[a.op] = true;
    proto::Control ctl = a.ctl;
    ctl.id = std::to_string(a.op);
    note(n.name + " -> " + ctl.op + " " + ctl.partition);
    send(i, [this, ctl](Node& peer) { peer.machine->on_control(now_, ctl); });
    later(i, settings_.heartbeat_timeout * 2 + std::chrono::seconds(3),
          [this, op = a.op](Node& node) {
            if (node.ctl_pending.erase(op) > 0) {
              Outcome o;
              o.status = Status::Failed;
              o.error = "the peer did not answer in time";
              node.machine->on_outcome(now_, op, o);
            }
          });
  }
  void act(int i, srm::Sleep& a) {
    later(i, std::chrono::duration_cast<milliseconds>(a.until - now_),
          [this, op = a.op](Node& n) { n.machine->on_outcome(now_, op, Outcome{}); });
  }
  void act(int i, srm::SendHeartbeat& a) {
    send(i, [this, hb = a.hb](Node& peer) { peer.machine->on_heartbeat(now_, hb); });
  }
  void act(int i, srm::ReplyControl& a) {
    send(i, [this, reply = a.reply](Node& peer) {
      const auto op = std::stoull(reply.id);
      if (peer.ctl_pending.erase(op) > 0) {
        Outcome o;
        o.status = reply.ok ? Status::Ok : Status::Failed;
        o.error = reply.error;
        o.reply = reply;
        peer.machine->on_outcome(now_, op, o);
      }
    });
  }
  void act(int i, srm::LoadPartition& a) { nodes_[i].loaded.insert(a.partition); }
  void act(int i, srm::UnloadPartition& a) { nodes_[i].loaded.erase(a.partition); }
  void act(int i, srm::ResetLink&) {
    note(name(i) + " resets the link");
    Node& n = nodes_[i];
    if (n.link_up) {
      n.link_up = false;
      n.machine->on_link(now_, SrmMachine::Channel::Control, false);
      n.machine->on_link(now_, SrmMachine::Channel::Data, false);
      Node& p = nodes_[1 - i];
      if (p.alive && p.link_up && path_[i]) {
        link_down(1 - i);
      }
      dial();
    }
  }
  void act(int i, srm::StateChanged& a) {
    note(name(i) + ": " + std::string(to_string(a.to)) + " / " +
         std::string(to_string(a.to_reason)));
    if (!allowed(a.to, a.to_reason)) {
      fail(name(i) + " shows " + std::string(to_string(a.to)) + " / " +
           std::string(to_string(a.to_reason)) + ", a pair SPEC.md section 3 does not have");
    }
  }
  void act(int i, srm::Stopped&) {
    note(name(i) + " stopped cleanly");
    crash(i);  // the process exits
    auto it = restart_after_stop_.find(i);
    if (it != restart_after_stop_.end()) {
      schedule(now_ + it->second, [this, i] {
        if (!nodes_[i].alive) {
          boot(i);
        }
      });
    }
  }
  void act(int i, srm::Log& a) {
    // TC_SIM_LOG=1 (with TC_SIM_SEED) puts the machines' own log lines into the trace.
    if (log_machines_) {
      note(name(i) + " log: " + a.text);
    }
  }
  template <class A>
  void act(int, A&) {}  // what only touches the node's own rooms and sessions

  // ---- room writes and invariants ----

  /// Every 50 ms a message for a random partition reaches the node serving it, which commits
  /// it with its fence; acknowledged once the commit is back.
  void write_tick() {
    const std::string p = chance(0.5) ? "n1" : "n2";
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      if (!n.alive) {
        continue;
      }
      auto held = n.machine->held().find(p);
      if (held == n.machine->held().end()) {
        continue;
      }
      const std::uint64_t id = next_message_++;
      const storage::Fence fence{p, n.name, held->second.epoch};
      const auto inc = n.incarnation;
      // Now and then a write waits seconds in the database (a lock, a checkpoint): it may
      // land after a failover and a fallback, where only the epoch tells it is stale.
      const auto there =
          chance(0.01) ? uniform(milliseconds(1000), milliseconds(6000)) : db_latency();
      const auto back = db_latency();
      schedule(now_ + there, [this, i, id, fence, inc, back] {
        if (db_down_ || nodes_[i].db_cut) {
          return;
        }
        const Lease* l = store_.lease(fence.partition);
        if (!store_.write(fence)) {
          return;
        }
        // The oracle: a committed write carries the lease's current holder and epoch.
        if (l == nullptr || l->holder != fence.holder || l->epoch != fence.epoch) {
          fail("a write of " + fence.holder + " at epoch " + std::to_string(fence.epoch) +
               " to partition " + fence.partition + " was committed, but the lease is at epoch " +
               std::to_string(l ? l->epoch : 0) + " held by " + (l ? l->holder : "nobody"));
        }
        archive_[id] += 1;
        schedule(now_ + back, [this, i, id, inc] {
          if (nodes_[i].alive && nodes_[i].incarnation == inc) {
            acked_.push_back(id);
          }
        });
      });
    }
    if (now_ < end_) {
      schedule(now_ + milliseconds(50), [this] { write_tick(); });
    }
  }

  void check_invariants() {
    // At most one node believes it holds each partition.
    for (const std::string p : {"n1", "n2"}) {
      int holders = 0;
      for (const Node& n : nodes_) {
        if (n.alive && n.machine->held().count(p) > 0) {
          ++holders;
        }
      }
      if (holders > 1) {
        fail("both nodes hold partition " + p + " (split brain)");
      }
    }
  }

  void check_archive() {
    for (const auto id : acked_) {
      auto it = archive_.find(id);
      if (it == archive_.end() || it->second != 1) {
        fail("acknowledged message " + std::to_string(id) + " is in the archive " +
             std::to_string(it == archive_.end() ? 0 : it->second) + " times");
        return;
      }
    }
  }

  /// Each node as it stands: state, what it holds, how it sees its peer.
  std::string describe_nodes() const {
    std::string out;
    for (int i = 0; i < 2; ++i) {
      const Node& n = nodes_[i];
      out += (i == 0 ? "" : "; ") + name(i) + ": ";
      if (!n.alive) {
        out += "down";
        continue;
      }
      const SrmMachine& m = *n.machine;
      out += std::string(to_string(m.state())) + " / " + std::string(to_string(m.reason()));
      out += ", holds {";
      for (const auto& [p, h] : m.held()) {
        out += " " + p;
      }
      const auto& peer = m.peer_info();
      out += " }, busy " + std::to_string(m.busy()) + ", peer " +
             (m.peer_alive(now_) ? "alive " : "not alive ") + std::string(to_string(peer.state)) +
             ", link " + std::to_string(n.link_up);
    }
    return out;
  }

  /// The documented end state: both nodes Normal, each holding its own partition.
  bool settled() const {
    for (const Node& n : nodes_) {
      if (!n.alive || n.machine->state() != State::Normal || n.machine->busy()) {
        return false;
      }
      const auto& held = n.machine->held();
      if (held.size() != 1 || held.count(n.name) == 0) {
        return false;
      }
    }
    return true;
  }

  std::uint64_t seed_;
  std::mt19937_64 rng_;
  Plant planted_ = planted();
  bool log_machines_ = !env("TC_SIM_LOG").empty();
  LeaseStore store_;
  ClusterSettings settings_;
  TimePoint now_ = kT0;
  TimePoint heal_;
  TimePoint end_;
  std::optional<TimePoint> settled_since_;
  std::priority_queue<Event> queue_;
  std::uint64_t seq_ = 0;
  std::uint64_t events_ = 0;
  Node nodes_[2];
  bool path_[2] = {true, true};  // path_[i]: what node i sends arrives
  TimePoint fifo_[2] = {kT0, kT0};
  bool dialling_ = false;
  bool db_down_ = false;
  bool db_slow_ = false;
  milliseconds db_latency_max_{1};
  milliseconds net_latency_max_{1};
  std::map<int, milliseconds> restart_after_stop_;
  std::uint64_t tickets_ = 0;
  std::uint64_t next_message_ = 1;
  std::map<std::uint64_t, int> archive_;
  std::vector<std::uint64_t> acked_;
  std::vector<std::string> trace_;
  std::string failure_;
};

std::uint64_t schedules_per_shard() {
  const std::string n = env("TC_SIM_SCHEDULES");
  return n.empty() ? 2500 : std::stoull(n);
}

constexpr int kShards = 4;

/// The seeded schedules, in shards that ctest runs in parallel (ctest -R simulat).
class SrmSchedules : public ::testing::TestWithParam<int> {};

TEST_P(SrmSchedules, InvariantsHoldAndTheGroupRecovers) {
  const int shard = GetParam();
  const std::string replay = env("TC_SIM_SEED");
  if (!replay.empty()) {
    if (shard != 0) {
      GTEST_SKIP() << "replaying seed " << replay << " in shard 0";
    }
    Simulation sim(std::stoull(replay), planted());
    const std::string failure = sim.run();
    std::cout << "[ simulation ] seed " << replay << ": " << sim.events() << " events, "
              << (failure.empty() ? "every invariant held" : "FAILED") << "\n";
    EXPECT_EQ(failure, "");
    return;
  }
  const std::uint64_t count = schedules_per_shard();
  const std::uint64_t first = 1 + static_cast<std::uint64_t>(shard) * count;
  std::uint64_t ran = 0;
  std::uint64_t events = 0;
  int failed = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    Simulation sim(seed, planted());
    const std::string failure = sim.run();
    ++ran;
    events += sim.events();
    if (!failure.empty()) {
      ADD_FAILURE() << failure << "replay: TC_SIM_SEED=" << seed
                    << " ctest -R simulat --output-on-failure";
      if (++failed == 3) {
        break;
      }
    }
  }
  std::cout << "[ simulation ] shard " << shard + 1 << " of " << kShards << ": " << ran
            << " schedules (seeds " << first << ".." << first + ran - 1 << "; " << count * kShards
            << " in all shards), " << events << " events, " << failed << " failed\n";
}

INSTANTIATE_TEST_SUITE_P(simulation, SrmSchedules, ::testing::Range(0, kShards));

}  // namespace
}  // namespace tc::broker::ha
