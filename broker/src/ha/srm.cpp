// SPDX-License-Identifier: Apache-2.0
#include "ha/srm.h"

#include <algorithm>
#include <charconv>
#include <random>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "storage/store.h"
#include "xmpp/namespaces.h"

#include "routing/stanzas.h"
#include "server_context.h"
#include "shard/store_worker.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::steady_clock;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {

constexpr std::string_view kSrmNs = "urn:tcbroker:srm:1";

std::int64_t ms(std::chrono::milliseconds d) {
  return d.count();
}

std::string fmt_seconds(std::chrono::milliseconds d) {
  const double s = static_cast<double>(d.count()) / 1000.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

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

Srm::Srm(asio::io_context& control, ServerContext& server, StoreWorker& store, ClusterView& view,
         Hooks hooks)
    : control_(control),
      server_(server),
      store_(store),
      view_(view),
      hooks_(std::move(hooks)),
      self_(server.config.node_name) {}

Srm::~Srm() {
  if (link_) {
    link_->stop();
  }
}

// ---- start-up ----

void Srm::configure() {
  auto job = [](storage::Store& s) { return s.list_groups(); };
  auto groups = store_.call_blocking(std::move(job));
  if (!groups) {
    throw std::runtime_error("cannot read the redundancy groups: " + groups.error().message());
  }
  for (const auto& g : *groups) {
    if (std::find(g.nodes.begin(), g.nodes.end(), self_) != g.nodes.end()) {
      group_ = g;
      clustered_ = true;
    }
  }
  if (!clustered_) {
    spdlog::info(
        "node {} belongs to no redundancy group: high availability is off (state "
        "Unknown)",
        self_);
    return;
  }
  std::string bad_key;
  auto settings_job = [&bad_key](storage::Store& s) { return ClusterSettings::load(s, &bad_key); };
  auto settings = store_.call_blocking(std::move(settings_job));
  if (!settings) {
    throw std::runtime_error("cluster setting " + bad_key + " in the database is not valid: " +
                             settings.error().message() + " (fix it with tcctl settings set)");
  }
  settings_ = *settings;
  ha_enabled_ = group_.ha_enabled && group_.nodes.size() == 2;
  for (const auto& n : group_.nodes) {
    if (n != self_) {
      peer_ = n;
    }
  }
  state_ = ha_enabled_ ? State::Initializing : State::Unknown;
  reason_ = ha_enabled_ ? Reason::Initialization : Reason::Unknown;
  spdlog::info(
      "node {} is in redundancy group {} with {} (HA {}, heartbeat {} s / timeout {} s, "
      "critical service delay {} s)",
      self_, group_.name, peer_.empty() ? "no peer" : peer_, ha_enabled_ ? "on" : "off",
      fmt_seconds(settings_.heartbeat_interval), fmt_seconds(settings_.heartbeat_timeout),
      fmt_seconds(settings_.critical_service_down_delay));
}

void Srm::start() {
  if (!clustered_) {
    return;
  }
  // The link secret: the cluster's own when set (tcctl settings), else derived from the group.
  std::string secret = "tc-link:" + group_.name;
  {
    auto job = [](storage::Store& s) { return s.list_settings(); };
    if (auto all = store_.call_blocking(std::move(job))) {
      for (const auto& [k, v] : *all) {
        if (k == "link_secret") {
          secret = v;
        }
      }
    }
  }
  link_ = std::make_unique<PeerLink>(control_, self_, secret);
  link_->listen(server_.config.srm_address, server_.config.srm_port);
  link_->set_connect_timeout(std::clamp(settings_.heartbeat_timeout, std::chrono::milliseconds(100),
                                        std::chrono::milliseconds(1000)));
  // The peer's name comes from the group, so its connections are accepted from the first
  // moment; where it listens is learnt from its registry row (tick).
  link_->set_peer(peer_, "");
  link_->on_element(
      [this](PeerLink::Channel c, XmlElement e) { on_link_element(c, std::move(e)); });
  link_->on_state([this](PeerLink::Channel c, bool up) {
    if (c == PeerLink::Channel::Data) {
      on_data_link(up);
    } else if (up) {
      srm_up_since_ = steady_clock::now();
    }
  });
  // Until the leases say otherwise, nobody serves anything: stanzas wait (parked).
  auto snapshot = std::make_shared<ClusterSnapshot>();
  snapshot->self = self_;
  snapshot->members = group_.nodes;
  snapshot->clustered = true;
  snapshot->mode = settings_.assignment_mode;
  snapshot->redirect_users = settings_.redirect_users;
  for (const auto& n : group_.nodes) {
    snapshot->partitions[n] = {"", 0};
  }
  view_.publish(snapshot);
  tick_timer_ = std::make_unique<asio::steady_timer>(control_);
  heartbeat_timer_ = std::make_unique<asio::steady_timer>(control_);
  asio::co_spawn(control_, run(), asio::detached);
  asio::co_spawn(control_, heartbeat_loop(), asio::detached);
}

// ---- the loop ----

net::Awaitable<void> Srm::run() {
  refresh_registry();
  while (!shutting_down_) {
    try {
      co_await tick();
    } catch (const std::exception& e) {
      spdlog::error("srm: internal error: {}", e.what());
      set_state(State::RunningInFailedMode, Reason::Unknown);
    }
    auto period = std::min(settings_.heartbeat_interval, settings_.heartbeat_timeout / 4);
    period = std::clamp(period, std::chrono::milliseconds(10), std::chrono::milliseconds(5000));
    tick_timer_->expires_after(period);
    co_await tick_timer_->async_wait(net::kAsTuple);
  }
}

void Srm::refresh_registry() {
  storage::NodeRecord row;
  row.node = self_;
  row.text_conference_running = service_running(Service::TextConference);
  row.heartbeat_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const std::string host = server_.config.advertised_host.empty() ? server_.config.client_address
                                                                  : server_.config.advertised_host;
  row.client_endpoint = host + ":" + std::to_string(server_.client_port_bound);
  row.srm_endpoint = server_.config.srm_address + ":" + std::to_string(service_port());
  row.admin_url = server_.admin_url;
  row.state = std::string(to_string(state_));
  row.reason = std::string(to_string(reason_));
  row.version = "tcbroker 0.1.0";
  auto job = [row](storage::Store& s) { return s.upsert_node(row); };
  store_.async_call(std::move(job), asio::bind_executor(control_, [](Result<void>) {}));
}

net::Awaitable<void> Srm::tick() {
  const auto now = steady_clock::now();
  const auto ttl = ms(settings_.heartbeat_timeout);

  // 1. Renew what we hold, first: a renewal that gets through is also the database's health
  //    check. Partitions are looked up again after each wait: the heartbeat loop may have
  //    self-fenced one meanwhile.
  bool renewed_any = false;
  bool db_error = false;
  std::vector<std::string> lost;
  if (!stopped_[static_cast<int>(Service::Database)]) {
    std::vector<std::pair<std::string, std::int64_t>> to_renew;
    for (const auto& [partition, held] : held_) {
      to_renew.emplace_back(partition, held.epoch);
    }
    for (const auto& [partition, epoch] : to_renew) {
      const auto sent = steady_clock::now();
      auto job = [f = storage::Fence{partition, self_, epoch}, ttl](storage::Store& s) {
        return s.renew_lease(f, ttl);
      };
      auto renewed = co_await store_.async_call(std::move(job), asio::use_awaitable);
      if (const auto took = steady_clock::now() - sent; took > settings_.heartbeat_timeout / 4) {
        spdlog::warn("srm: renewing the lease on partition {} took {} ms", partition,
                     ms(std::chrono::duration_cast<std::chrono::milliseconds>(took)));
      }
      auto it = held_.find(partition);
      if (renewed) {
        renewed_any = true;
        if (it != held_.end() && it->second.epoch == epoch) {
          it->second.renewed = sent;
        }
      } else if (renewed.error() == storage::Errc::StaleEpoch) {
        spdlog::error("srm: the lease on partition {} was taken by another node", partition);
        if (it != held_.end() && it->second.epoch == epoch) {
          lost.push_back(partition);
        }
      } else {
        db_error = true;
      }
    }
  }

  // 2. Health of the database (the one critical service with an outside dependency).
  if (stopped_[static_cast<int>(Service::Database)]) {
    db_ok_ = false;
  } else if (renewed_any) {
    db_ok_ = true;
  } else if (db_error) {
    db_ok_ = false;
  } else {
    auto job = [](storage::Store& s) { return s.ping(); };
    auto pinged = co_await store_.async_call(std::move(job), asio::use_awaitable);
    db_ok_ = static_cast<bool>(pinged);
  }
  for (const auto& p : lost) {
    if (held_.count(p) > 0) {
      co_await self_fence(p, Reason::DatabaseFailure);
    }
  }

  // 3. Where is the peer.
  if (db_ok_ && (peer_client_endpoint_.empty() || !link_->up(PeerLink::Channel::Srm))) {
    auto job = [](storage::Store& s) { return s.list_nodes(); };
    auto nodes = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (nodes) {
      for (const auto& n : *nodes) {
        client_endpoints_[n.node] = n.client_endpoint;
        if (n.node == peer_ && !n.srm_endpoint.empty()) {
          peer_client_endpoint_ = n.client_endpoint;
          link_->set_peer(peer_, n.srm_endpoint);
        }
      }
    }
  }

  // 4. The registry row.
  if (++ticks_ % 20 == 0 || now - state_since_ < std::chrono::seconds(1)) {
    refresh_registry();
  }

  if (!busy_) {
    co_await evaluate();
  }
  if (const auto took = steady_clock::now() - now; took > settings_.heartbeat_timeout / 2) {
    spdlog::warn("srm: one SRM tick took {} ms",
                 ms(std::chrono::duration_cast<std::chrono::milliseconds>(took)));
  }
}

net::Awaitable<void> Srm::heartbeat_loop() {
  // Its own timer, never behind a database call: a slow database must not look like a dead
  // node to the peer (the lease, not the heartbeat, says whether the database is usable).
  auto period = std::clamp(settings_.heartbeat_interval, std::chrono::milliseconds(10),
                           std::chrono::milliseconds(5000));
  for (;;) {
    // Self-fence well before the database would let the peer take over, even while a renewal
    // is still waiting on the database.
    const auto now = steady_clock::now();
    std::vector<std::string> expired;
    for (const auto& [partition, held] : held_) {
      if (now - held.renewed > settings_.heartbeat_timeout * 3 / 4) {
        expired.push_back(partition);
      }
    }
    for (const auto& p : expired) {
      if (held_.count(p) > 0) {
        spdlog::error(
            "srm: cannot renew the lease on partition {} in time (database unreachable or "
            "too slow); stopping to serve it",
            p);
        co_await self_fence(p, Reason::DatabaseFailure);
      }
    }
    check_link_liveness();
    send_heartbeat();
    heartbeat_timer_->expires_after(period);
    auto waited = co_await heartbeat_timer_->async_wait(net::kAsTuple);
    if (std::get<0>(waited)) {
      break;  // cancelled: the node stops (it beats through a clean handover until then)
    }
  }
}

net::Awaitable<void> Srm::self_fence(std::string partition, Reason reason) {
  held_.erase(partition);
  holders_[partition] = "";
  publish();
  co_await asio::post(control_, asio::use_awaitable);
  server_.muc->release_partition(partition, nullptr);
  if (partition == self_) {
    hooks_.move_users("", "");
    if (state_ == State::RunningInBackupMode) {
      // Still backing up the peer? Hand its partition back too: both are failed.
      set_state(State::RunningInFailedMode, reason);
    } else if (!is_failed_over(state_)) {
      set_state(State::RunningInFailedMode, reason);
    }
  } else if (state_ == State::RunningInBackupMode) {
    set_state(State::RunningInFailedMode, reason);
  }
}

bool Srm::peer_alive() const {
  if (!peer_info_.heard) {
    return false;
  }
  const auto timeout = state_ == State::Initializing ? settings_.init_heartbeat_timeout
                                                     : settings_.heartbeat_timeout;
  return steady_clock::now() - peer_info_.last_heard < timeout && link_ &&
         link_->up(PeerLink::Channel::Srm);
}

net::Awaitable<void> Srm::evaluate() {
  const auto now = steady_clock::now();
  const bool own_held = held_.count(self_) > 0;

  // Critical services: how long has one been down?
  const auto down = first_down_service();
  if (down && !down_since_) {
    down_since_ = now;
  } else if (!down) {
    down_since_.reset();
  }
  const bool down_too_long = down && now - *down_since_ >= settings_.critical_service_down_delay;
  const Reason down_reason =
      down == Service::Database ? Reason::DatabaseFailure : Reason::CriticalServiceDown;

  if (!ha_enabled_) {
    // No failover: serve our own partition, and the peer's only if nobody ever held it.
    if (!own_held && db_ok_) {
      co_await take_over(self_, Reason::Unknown, false);
    }
    if (state_ != State::Unknown) {
      set_state(State::Unknown, Reason::Unknown);
    }
    co_return;
  }

  const bool alive = peer_alive();
  if (alive) {
    unreachable_handled_ = false;
    peer_lease_seen_ = 0;
  }

  // Where is our own partition?
  if (!own_held && db_ok_ && !is_failed_over(state_) && state_ != State::TakingBack) {
    auto job = [p = self_](storage::Store& s) { return s.read_lease(p); };
    auto lease = co_await store_.async_call(std::move(job), asio::use_awaitable);
    const bool free = !lease || lease->holder == self_ || lease->expires_at < lease->db_now;
    if (free) {
      const bool was_failed = state_ == State::RunningInFailedMode;
      if (co_await take_over(self_, Reason::Normal, false)) {
        if (was_failed) {
          set_state(State::Normal, Reason::DatabaseFailureAutoRecovery);
        } else if (state_ == State::Initializing && alive) {
          set_state(State::Normal, Reason::Normal);
        }
      }
    } else if (lease && lease->holder == peer_) {
      // The peer took over while we were away: wait for a fallback.
      if (state_ == State::Initializing || state_ == State::RunningInFailedMode) {
        hooks_.set_router(true);
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
      } else if (own_held && now - started_ >= settings_.init_heartbeat_timeout) {
        // The peer never showed up while we started: take its users and rooms if its lease
        // lapsed (or it never had one).
        if (co_await take_over(peer_, Reason::PeerDownDuringInitialization, false)) {
          set_state(State::RunningInBackupMode, Reason::PeerDownDuringInitialization);
        } else {
          set_state(State::Normal, Reason::Normal);
        }
      }
      break;
    case State::Normal:
      if (down_too_long) {
        if (alive && peer_info_.state == State::Normal) {
          co_await fail_over(down_reason, false);
        } else if (state_ != State::RunningInFailedMode && !alive) {
          // Nobody to fail over to.
          spdlog::error("srm: critical service {} is down and the peer is not available",
                        to_string(*down));
        }
        break;
      }
      if (!alive && peer_info_.heard) {
        // Heartbeat lost. Take over only once the peer's lease has lapsed on the database's
        // clock: a peer that is merely unreachable still holds it, and no split brain follows.
        const Reason why = peer_info_.rebooting ? Reason::PeerReboot : Reason::PeerDown;
        if (co_await take_over(peer_, why, false)) {
          set_state(State::RunningInBackupMode, why);
          break;
        }
        // Still held: is the peer alive (it renewed since we lost it) or about to lapse?
        auto job = [p = peer_](storage::Store& s) { return s.read_lease(p); };
        auto lease = co_await store_.async_call(std::move(job), asio::use_awaitable);
        if (!lease) {
          break;
        }
        if (peer_lease_seen_ == 0) {
          peer_lease_seen_ = lease->expires_at;
        }
        if (lease->expires_at > peer_lease_seen_ && !unreachable_handled_) {
          unreachable_handled_ = true;
          spdlog::warn("srm: peer {} is unreachable but holds its lease: no takeover", peer_);
          server_.muc->evict_unreachable(peer_);
          server_.muc->drop_peer_occupants();
          publish();  // its rooms now answer at once instead of parking stanzas
        }
      } else if (!alive && !peer_info_.heard &&
                 now - started_ >= settings_.init_heartbeat_timeout) {
        if (co_await take_over(peer_, Reason::PeerDown, false)) {
          set_state(State::RunningInBackupMode, Reason::PeerDown);
        }
      }
      break;
    case State::RunningInBackupMode:
      if (down_too_long) {
        spdlog::error("srm: critical service {} stopped on the backup node: both nodes failed",
                      to_string(*down));
        set_state(State::RunningInFailedMode, Reason::CriticalServiceDown);
        break;
      }
      // An automatic fallback is asked for by the failed-over node itself (below).
      break;
    case State::FailedOverServicesNotRunning:
      if (!down) {
        set_state(State::FailedOver, reason_);
      }
      break;
    case State::FailedOver:
      if (down) {
        set_state(State::FailedOverServicesNotRunning, down_reason);
      } else if (settings_.auto_fallback && alive &&
                 peer_info_.state == State::RunningInBackupMode &&
                 now - state_since_ >= settings_.auto_fallback_delay) {
        co_await fall_back(Reason::AutomaticFallback);
      }
      break;
    default:
      break;
  }
}

// ---- transitions ----

net::Awaitable<bool> Srm::take_over(std::string partition, Reason reason, bool handed) {
  if (partition.empty()) {
    co_return false;
  }
  const auto ttl = ms(settings_.heartbeat_timeout);
  const bool foreign = partition != self_;
  const State before = state_;
  const Reason before_reason = reason_;
  if (foreign && !handed) {
    // Only a lapsed (or never taken) lease may be taken.
    auto job = [p = partition](storage::Store& s) { return s.read_lease(p); };
    auto lease = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (lease && lease->holder != self_ && lease->expires_at >= lease->db_now) {
      co_return false;
    }
    if (!lease && lease.error() != storage::Errc::NotFound) {
      co_return false;
    }
  }
  if (foreign) {
    set_state(State::TakingOver, reason);
  }
  busy_ = true;
  const auto sent = steady_clock::now();
  auto job = [p = partition, n = self_, ttl](storage::Store& s) {
    return s.acquire_lease(p, n, ttl);
  };
  auto acquired = co_await store_.async_call(std::move(job), asio::use_awaitable);
  busy_ = false;
  if (!acquired) {
    if (foreign) {
      if (acquired.error() == storage::Errc::AlreadyExists) {
        set_state(before, before_reason);
      } else {
        spdlog::error("srm: takeover of partition {} failed: {}", partition,
                      acquired.error().message());
        set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeover);
      }
    }
    co_return false;
  }
  held_[partition] = {acquired->epoch, sent};
  holders_[partition] = self_;
  publish();
  if (foreign) {
    // The peer is gone or has handed over: its users leave our rooms, ours stay in its
    // rooms, which all load here from the database at once (joins replayed meanwhile wait
    // for their room's batch).
    if (!handed) {
      server_.muc->drop_peer_occupants();
    }
    server_.muc->preload_partition(partition);
    server_.muc->replay_joins(partition);
    spdlog::warn("srm: took over partition {} at epoch {} ({})", partition, acquired->epoch,
                 to_string(reason));
  } else {
    spdlog::info("srm: serving partition {} at epoch {}", partition, acquired->epoch);
  }
  co_return true;
}

net::Awaitable<void> Srm::fail_over(Reason reason, bool admin) {
  busy_ = true;
  set_state(State::FailingOver, reason);
  spdlog::warn("srm: failing over to {} ({})", peer_, to_string(reason));
  // Stop serving our partition here: new stanzas for it wait while it moves.
  const std::int64_t epoch = held_.count(self_) ? held_[self_].epoch : 0;
  holders_[self_] = "";
  held_.erase(self_);
  publish();
  server_.muc->release_partition(self_, nullptr);
  const bool db = db_ok_ && !stopped_[static_cast<int>(Service::Database)];
  bool transferred = false;
  if (db && epoch > 0) {
    auto job = [f = storage::Fence{self_, self_, epoch}, to = peer_,
                ttl = ms(settings_.heartbeat_timeout)](storage::Store& s) {
      return s.transfer_lease(f, to, ttl);
    };
    auto moved = co_await store_.async_call(std::move(job), asio::use_awaitable);
    transferred = static_cast<bool>(moved);
  }
  // Tell the peer to adopt it (when the lease was not handed over, it waits for the lapse).
  XmlElement ctl("ctl", std::string(kSrmNs));
  ctl.set_attr("op", "adopt").set_attr("partition", self_);
  ctl.set_attr("reason", std::string(to_string(reason)));
  ctl.set_attr("handed", transferred ? "1" : "0");
  const CtlResult result = co_await await_ctl(std::move(ctl));
  if (result.ok) {
    holders_[self_] = peer_;
  }
  publish();
  // Every user here (ours, and others' that chose this node) logs in again on the peer.
  hooks_.move_users("", peer_client_endpoint_);
  if (admin) {
    // SPEC.md section 4: the services stay stopped until a manual fallback.
    set_service(Service::Router, false);
    set_service(Service::TextConference, false);
    set_state(State::Idle, Reason::OnAdminRequest);
  } else {
    set_state(State::FailedOverServicesNotRunning, reason);
  }
  if (!result.ok) {
    spdlog::error("srm: the peer did not confirm the takeover: {}", result.error);
  }
  busy_ = false;
}

net::Awaitable<void> Srm::fall_back(Reason reason) {
  // Runs on the node taking its users and rooms back.
  busy_ = true;
  set_state(State::TakingBack, reason);
  XmlElement ctl("ctl", std::string(kSrmNs));
  ctl.set_attr("op", "release").set_attr("partition", self_);
  ctl.set_attr("reason", std::string(to_string(reason)));
  const CtlResult result = co_await await_ctl(std::move(ctl));
  if (!result.ok) {
    spdlog::error("srm: fallback failed: {}", result.error);
    set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeback);
    busy_ = false;
    co_return;
  }
  held_[self_] = {std::atoll(std::string(result.reply.attr("epoch")).c_str()), steady_clock::now()};
  holders_[self_] = self_;
  server_.muc->preload_partition(self_);
  // SPEC.md section 4: the fallback restarts the primary's critical services.
  for (const Service sv : kServices) {
    if (stopped_[static_cast<int>(sv)]) {
      set_service(sv, true);
    }
  }
  set_service(Service::Router, true);
  set_service(Service::TextConference, true);
  publish();
  // The peer may now route our rooms to us again (and replay its users' joins).
  XmlElement hosting("ctl", std::string(kSrmNs));
  hosting.set_attr("op", "hosting").set_attr("partition", self_);
  send_ctl(hosting, [](bool, std::string, const XmlElement&) {});
  set_state(State::Normal, Reason::Normal);
  busy_ = false;
}

net::Awaitable<void> Srm::give_back(std::string partition, Reason reason,
                                    std::function<void(bool, std::string)> reply) {
  // Runs on the backup when its peer takes back `partition`.
  auto it = held_.find(partition);
  if (it == held_.end()) {
    reply(false, self_ + " does not serve partition " + partition);
    co_return;
  }
  busy_ = true;
  set_state(State::FallingBack, reason);
  const std::int64_t epoch = it->second.epoch;
  held_.erase(it);
  holders_[partition] = "";
  publish();
  server_.muc->release_partition(partition, nullptr);
  auto job = [f = storage::Fence{partition, self_, epoch}, to = partition,
              ttl = ms(settings_.heartbeat_timeout)](storage::Store& s) {
    return s.transfer_lease(f, to, ttl);
  };
  auto moved = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!moved) {
    spdlog::error("srm: cannot hand partition {} back: {}", partition, moved.error().message());
    set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeback);
    busy_ = false;
    reply(false, "cannot hand the lease back: " + moved.error().message());
    co_return;
  }
  holders_[partition] = "";  // parked until the owner says it hosts again
  hooks_.move_users(partition, client_endpoint_of(partition));
  set_state(State::Normal, Reason::Normal);
  busy_ = false;
  reply(true, std::to_string(moved->epoch));
}

net::Awaitable<void> Srm::recover_local() {
  spdlog::warn("srm: recovering (restarting SRM state on this node)");
  for (auto& s : stopped_) {
    s = false;
  }
  hooks_.set_router(true);
  server_.muc->set_serving(true);
  // Give back what is not ours when its owner is alive; then start over.
  std::vector<std::string> foreign;
  for (const auto& [p, h] : held_) {
    if (p != self_) {
      foreign.push_back(p);
    }
  }
  for (const auto& p : foreign) {
    if (peer_alive()) {
      co_await give_back(p, Reason::Normal, [](bool, std::string) {});
    }
  }
  down_since_.reset();
  started_ = steady_clock::now();
  set_state(State::Initializing, Reason::Initialization);
}

// ---- state, view, heartbeat ----

void Srm::set_state(State s, Reason r) {
  if (s == state_ && r == reason_) {
    return;
  }
  spdlog::info("srm: {} / {} -> {} / {}", to_string(state_), to_string(reason_), to_string(s),
               to_string(r));
  state_ = s;
  reason_ = r;
  state_since_ = steady_clock::now();
  send_heartbeat();
  refresh_registry();
}

void Srm::publish() {
  auto snapshot = std::make_shared<ClusterSnapshot>(*view_.get());
  for (const auto& n : group_.nodes) {
    auto& p = snapshot->partitions[n];
    auto held = held_.find(n);
    if (held != held_.end()) {
      p = {self_, held->second.epoch};
    } else {
      auto h = holders_.find(n);
      p = {h == holders_.end() ? "" : h->second, 0};
      // Held by a peer we are cut off from that still renews its lease: nothing will move.
      p.unreachable = p.holder == peer_ && ((unreachable_handled_ && !peer_alive()) || one_way_);
    }
  }
  snapshot->client_endpoints = {client_endpoints_.begin(), client_endpoints_.end()};
  snapshot->peer_linked = link_ && link_->up(PeerLink::Channel::Data) && peer_alive();
  snapshot->muc_serving = service_running(Service::TextConference);
  snapshot->router_serving = service_running(Service::Router);
  view_.publish(std::move(snapshot));
  server_.muc->on_view_changed();
}

void Srm::send_heartbeat() {
  if (!link_) {
    return;
  }
  XmlElement hb("hb", std::string(kSrmNs));
  hb.set_attr("node", self_);
  hb.set_attr("state", std::string(to_string(state_)));
  hb.set_attr("reason", std::string(to_string(reason_)));
  hb.set_attr("epoch", std::to_string(held_.count(self_) ? held_.at(self_).epoch : 0));
  std::string holds;
  for (const auto& [p, h] : held_) {
    holds += (holds.empty() ? "" : ",") + p;
  }
  hb.set_attr("holds", holds);
  for (const Service s : kServices) {
    hb.set_attr(std::string(to_string(s)), service_status(s));
  }
  hb.set_attr("rooms", std::to_string(server_.muc->live_rooms()));
  hb.set_attr("users", std::to_string(hooks_.users_connected ? hooks_.users_connected() : 0));
  hb.set_attr("client", client_endpoint_of(self_));
  if (shutting_down_) {
    hb.set_attr("rebooting", "1");
  }
  // Whether we hear the peer: lets it notice a one-way cut (its heartbeats arrive, ours not).
  hb.set_attr("hears", peer_alive() ? "1" : "0");
  link_->send(PeerLink::Channel::Srm, hb);
}

std::string Srm::client_endpoint_of(const std::string& node) const {
  if (node == self_) {
    const std::string host = server_.config.advertised_host.empty()
                                 ? server_.config.client_address
                                 : server_.config.advertised_host;
    return host + ":" + std::to_string(server_.client_port_bound);
  }
  if (node == peer_ && !peer_client_endpoint_.empty()) {
    return peer_client_endpoint_;
  }
  auto it = client_endpoints_.find(node);
  return it == client_endpoints_.end() ? std::string() : it->second;
}

bool Srm::service_running(Service s) const {
  if (stopped_[static_cast<int>(s)]) {
    return false;
  }
  if (s == Service::Database) {
    return db_ok_;
  }
  return true;
}

std::string Srm::service_status(Service s) const {
  if (stopped_[static_cast<int>(s)]) {
    return "stopped";
  }
  return service_running(s) ? "running" : "failed";
}

std::optional<Service> Srm::first_down_service() const {
  for (const Service s : kServices) {
    if (s == Service::Authentication && !settings_.monitor_authentication) {
      continue;
    }
    if (!service_running(s)) {
      return s;
    }
  }
  return std::nullopt;
}

void Srm::set_service(Service s, bool run) {
  stopped_[static_cast<int>(s)] = !run;
  switch (s) {
    case Service::Router:
      hooks_.set_router(run);
      break;
    case Service::TextConference:
      server_.muc->set_serving(run);
      break;
    case Service::Database:
    case Service::Authentication:
      break;
  }
  server_.auth_serving = !stopped_[static_cast<int>(Service::Authentication)];
  publish();
}

// ---- the link ----

void Srm::on_link_element(PeerLink::Channel channel, XmlElement element) {
  if (channel == PeerLink::Channel::Data) {
    on_data(std::move(element));
    return;
  }
  if (element.name() == "hb") {
    const bool was_alive = peer_alive();
    peer_info_.heard = true;
    peer_info_.last_heard = steady_clock::now();
    peer_info_.state = state_from(element.attr("state")).value_or(State::Unknown);
    peer_info_.reason = reason_from(element.attr("reason")).value_or(Reason::Unknown);
    peer_info_.epoch = std::atoll(std::string(element.attr("epoch")).c_str());
    peer_info_.rooms = std::strtoull(std::string(element.attr("rooms")).c_str(), nullptr, 10);
    peer_info_.users = std::strtoull(std::string(element.attr("users")).c_str(), nullptr, 10);
    peer_info_.rebooting = element.attr("rebooting") == "1";
    const bool hears_us = element.attr("hears") != "0";  // absent: an older peer, assume so
    if (!hears_us && peer_info_.hears_us) {
      peer_info_.deaf_since = steady_clock::now();
    }
    peer_info_.hears_us = hears_us;
    if (hears_us && one_way_) {
      one_way_ = false;
      spdlog::info("peer link: {} hears this node again", peer_);
      publish();
    }
    for (const Service s : kServices) {
      peer_info_.services[std::string(to_string(s))] = std::string(element.attr(to_string(s)));
    }
    if (!element.attr("client").empty()) {
      peer_client_endpoint_ = std::string(element.attr("client"));
      client_endpoints_[peer_] = peer_client_endpoint_;
    }
    // What the peer holds is routed to it.
    std::string holds(element.attr("holds"));
    bool changed = false;
    for (const auto& n : group_.nodes) {
      const bool peer_holds = ("," + holds + ",").find("," + n + ",") != std::string::npos;
      if (peer_holds && holders_[n] != peer_ && !held_.count(n)) {
        holders_[n] = peer_;
        changed = true;
      } else if (!peer_holds && holders_[n] == peer_) {
        holders_[n] = "";
        changed = true;
      }
    }
    if (changed || !was_alive) {
      publish();
      if (!was_alive) {
        // Our users in the peer's rooms: make sure the rooms know them.
        for (const auto& n : group_.nodes) {
          if (holders_[n] == peer_) {
            server_.muc->replay_joins(n);
          }
        }
      }
    }
    return;
  }
  if (element.name() == "ctl") {
    on_control(element);
    return;
  }
  if (element.name() == "ctl-reply") {
    auto it = ctl_pending_.find(std::string(element.attr("id")));
    if (it != ctl_pending_.end()) {
      auto reply = std::move(it->second);
      ctl_pending_.erase(it);
      reply(element.attr("ok") == "1", std::string(element.attr("error")), element);
    }
  }
}

void Srm::send_ctl(XmlElement ctl, CtlReply reply) {
  const std::string id = std::to_string(next_id_++);
  ctl.set_attr("id", id);
  if (!link_ || !link_->send(PeerLink::Channel::Srm, ctl)) {
    reply(false, "the peer " + peer_ + " is not reachable", XmlElement());
    return;
  }
  ctl_pending_[id] = std::move(reply);
  auto timer = std::make_shared<asio::steady_timer>(
      control_, settings_.heartbeat_timeout * 2 + std::chrono::seconds(3));
  timer->async_wait([this, id, timer](boost::system::error_code) {
    auto it = ctl_pending_.find(id);
    if (it != ctl_pending_.end()) {
      auto r = std::move(it->second);
      ctl_pending_.erase(it);
      r(false, "the peer did not answer in time", XmlElement());
    }
  });
}

net::Awaitable<Srm::CtlResult> Srm::await_ctl(XmlElement ctl) {
  // send_ctl answers exactly once, at the latest when its own timeout fires; this timer only
  // bounds the wait should that ever not happen.
  auto done = std::make_shared<asio::steady_timer>(control_, steady_clock::time_point::max());
  auto result = std::make_shared<CtlResult>();
  auto answered = std::make_shared<bool>(false);
  send_ctl(std::move(ctl),
           [done, result, answered](bool ok, std::string error, const XmlElement& reply) {
             result->ok = ok;
             result->error = ok || !error.empty() ? std::move(error)
                                                  : std::string("the peer refused (no reason)");
             result->reply = reply;
             *answered = true;
             done->cancel();
           });
  if (!*answered) {
    done->expires_after(settings_.heartbeat_timeout * 2 + std::chrono::seconds(5));
    co_await done->async_wait(net::kAsTuple);
  }
  if (!*answered) {
    result->error = "no answer from the peer";
  }
  co_return std::move(*result);
}

void Srm::reply_ctl(const std::string& id, bool ok, const std::string& error, unsigned status) {
  XmlElement r("ctl-reply", std::string(kSrmNs));
  r.set_attr("id", id).set_attr("ok", ok ? "1" : "0");
  if (!error.empty()) {
    r.set_attr("error", error);
  }
  r.set_attr("status", std::to_string(status));
  link_->send(PeerLink::Channel::Srm, r);
}

void Srm::on_control(const XmlElement& ctl) {
  const std::string id(ctl.attr("id"));
  const std::string op(ctl.attr("op"));
  const std::string partition(ctl.attr("partition"));
  const Reason reason = reason_from(ctl.attr("reason")).value_or(Reason::Unknown);
  if (op == "adopt") {
    // The peer fails over to us: its lease is ours already ("handed") or lapses soon.
    const bool handed = ctl.attr("handed") == "1";
    asio::co_spawn(control_, adopt(id, partition, reason, handed), asio::detached);
    return;
  }
  if (op == "release") {
    asio::co_spawn(control_, release_for_peer(id, partition, reason), asio::detached);
    return;
  }
  if (op == "hosting") {
    holders_[partition] = peer_;
    publish();
    server_.muc->replay_joins(partition);
    reply_ctl(id, true, "");
    return;
  }
  if (op == "recover") {
    asio::co_spawn(control_, recover_local(), asio::detached);
    reply_ctl(id, true, "");
    return;
  }
  if (op == "admin") {
    const std::string action(ctl.attr("action"));
    admin_action(action, self_, std::string(ctl.attr("service")), [this, id](admin::Response r) {
      std::string error;
      if (const auto* o = r.body.if_object()) {
        if (const auto* e = o->if_contains("error"); e && e->is_string()) {
          error = std::string(e->as_string());
        }
      }
      reply_ctl(id, r.status < 300, error, r.status);
    });
    return;
  }
  reply_ctl(id, false, "unknown operation " + op, 400);
}

net::Awaitable<void> Srm::adopt(std::string id, std::string partition, Reason reason, bool handed) {
  const auto deadline = steady_clock::now() + settings_.heartbeat_timeout * 2;
  bool ok = false;
  set_state(State::TakingOver, reason);
  while (!ok && steady_clock::now() < deadline) {
    ok = co_await take_over(partition, reason, handed);
    if (!ok) {
      asio::steady_timer t(control_, settings_.heartbeat_interval / 2);
      co_await t.async_wait(net::kAsTuple);
    }
  }
  if (ok) {
    set_state(State::RunningInBackupMode, reason);
    reply_ctl(id, true, "");
  } else {
    set_state(State::RunningInFailedMode, Reason::UserMoveFailedDuringTakeover);
    reply_ctl(id, false, "could not take the lease of " + partition);
  }
}

net::Awaitable<void> Srm::release_for_peer(std::string id, std::string partition, Reason reason) {
  auto reply = [this, id](bool ok, std::string detail) {
    XmlElement r("ctl-reply", std::string(kSrmNs));
    r.set_attr("id", id).set_attr("ok", ok ? "1" : "0");
    if (ok) {
      r.set_attr("epoch", detail);
    } else {
      r.set_attr("error", detail);
    }
    link_->send(PeerLink::Channel::Srm, r);
  };
  co_await give_back(partition, reason, reply);
}

// ---- shutdown ----

void Srm::shutdown(std::function<void()> then) {
  if (!clustered_ || shutting_down_) {
    then();
    return;
  }
  asio::co_spawn(control_, shutdown_task(std::move(then)), asio::detached);
}

net::Awaitable<void> Srm::shutdown_task(std::function<void()> then) {
  // A clean stop hands our partition to a healthy peer at once (it reports Peer Reboot)
  // instead of letting it wait for the heartbeat timeout.
  if (ha_enabled_ && peer_alive() && held_.count(self_) > 0 &&
      (peer_info_.state == State::Normal || peer_info_.state == State::RunningInBackupMode)) {
    shutting_down_ = true;
    send_heartbeat();
    while (busy_) {
      asio::steady_timer t(control_, std::chrono::milliseconds(10));
      co_await t.async_wait(net::kAsTuple);
    }
    co_await fail_over(Reason::PeerReboot, false);
  } else {
    shutting_down_ = true;
    for (const auto& [p, h] : held_) {
      auto job = [f = storage::Fence{p, self_, h.epoch}](storage::Store& s) {
        return s.release_lease(f);
      };
      co_await store_.async_call(std::move(job), asio::use_awaitable);
    }
    held_.clear();
    send_heartbeat();
  }
  tick_timer_->cancel();
  heartbeat_timer_->cancel();
  then();
}

}  // namespace tc::broker::ha
