// SPDX-License-Identifier: Apache-2.0
#include "ha/srm.h"

#include <algorithm>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "storage/store.h"
#include "xmpp/namespaces.h"

#include "routing/stanzas.h"
#include "server_context.h"
#include "shard/store_worker.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
using xmpp::XmlElement;

namespace {

std::string fmt_seconds(std::chrono::milliseconds d) {
  const double s = static_cast<double>(d.count()) / 1000.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

const TimeSource& Srm::default_clock() {
  static const SteadyTimeSource clock;
  return clock;
}

Srm::Srm(asio::io_context& control, ServerContext& server, StoreWorker& store,
         StoreWorker& cluster_store, ClusterView& view, Hooks hooks, const TimeSource& clock)
    : control_(control),
      server_(server),
      store_(store),
      cluster_store_(cluster_store),
      view_(view),
      hooks_(std::move(hooks)),
      clock_(clock),
      self_(server.config.node_name) {
  // A node in no group keeps this one: state Unknown, nothing to decide.
  MachineConfig alone;
  alone.self = self_;
  machine_ = std::make_unique<SrmMachine>(std::move(alone), clock_.now());
}

Srm::~Srm() {
  if (mesh_) {
    mesh_->stop();
  }
  if (link_) {
    link_->stop();
  }
}

// ---- start-up ----

/// The address the peer dials for this node's SRM port: ha.advertised_host when set (a name
/// is resolved here, once: the peer link dials addresses, and a container's own name resolves
/// to its address on the compose network), else ha.address.
std::string Srm::srm_host() {
  if (!srm_host_.empty()) {
    return srm_host_;
  }
  const auto& advertised = server_.config.advertised_host;
  srm_host_ = advertised.empty() ? server_.config.srm_address : advertised;
  boost::system::error_code ec;
  if (!advertised.empty() && (asio::ip::make_address(advertised, ec), ec)) {
    asio::ip::tcp::resolver resolver(control_);
    const auto found = resolver.resolve(asio::ip::tcp::v4(), advertised, "", ec);
    if (!ec && !found.empty()) {
      srm_host_ = found.begin()->endpoint().address().to_string();
      spdlog::info("srm: advertising {} ({}) as this node's node-to-node address", srm_host_,
                   advertised);
    } else {
      spdlog::warn(
          "srm: cannot resolve ha.advertised_host \"{}\" ({}); the peer may not reach "
          "this node",
          advertised, ec.message());
    }
  }
  return srm_host_;
}

void Srm::configure() {
  auto job = [](storage::Store& s) { return s.list_groups(); };
  auto groups = cluster_store_.call_blocking(std::move(job));
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
  auto settings = cluster_store_.call_blocking(std::move(settings_job));
  if (!settings) {
    throw std::runtime_error("cluster setting " + bad_key + " in the database is not valid: " +
                             settings.error().message() + " (fix it with tcctl settings set)");
  }
  settings_ = *settings;
  check_cluster_membership();
  ha_enabled_ = group_.ha_enabled && group_.nodes.size() == 2;
  for (const auto& n : group_.nodes) {
    if (n != self_) {
      peer_ = n;
    }
  }
  MachineConfig machine;
  machine.group = group_.name;
  machine.self = self_;
  machine.peer = peer_;
  machine.nodes = group_.nodes;
  machine.clustered = true;
  machine.ha_enabled = ha_enabled_;
  machine.settings = settings_;
  machine_ = std::make_unique<SrmMachine>(std::move(machine), clock_.now());
  spdlog::info(
      "node {} is in redundancy group {} with {} (HA {}, heartbeat {} s / timeout {} s, "
      "critical service delay {} s)",
      self_, group_.name, peer_.empty() ? "no peer" : peer_, ha_enabled_ ? "on" : "off",
      fmt_seconds(settings_.heartbeat_interval), fmt_seconds(settings_.heartbeat_timeout),
      fmt_seconds(settings_.critical_service_down_delay));
}

namespace {

constexpr std::string_view kNodeVersion = "tcbroker 0.1.0";

/// The value of tc_settings' `key`, after recording `value` there when it has none.
Result<std::string> setting_or_record(storage::Store& s, std::string_view key,
                                      const std::string& value) {
  auto rows = s.list_settings();
  if (!rows) {
    return rows.error();
  }
  for (const auto& [k, v] : *rows) {
    if (k == key) {
      return v;
    }
  }
  if (auto set = s.set_setting(key, value); !set) {
    return set.error();
  }
  return value;
}

}  // namespace

void Srm::check_cluster_membership() {
  const auto& config = server_.config;
  // One domain per cluster: the first node to start records it in the cluster database.
  auto domain = cluster_store_.call_blocking(
      [&config](storage::Store& s) { return setting_or_record(s, "domain", config.domain); });
  if (!domain) {
    throw std::runtime_error("cannot read the cluster's domain: " + domain.error().message());
  }
  if (*domain != config.domain) {
    throw ConfigError("node.domain", "the cluster serves \"" + *domain + "\" but node " + self_ +
                                         " is configured for \"" + config.domain +
                                         "\"; every node of a cluster serves one domain");
  }
  // Each group has its own database: refuse one that another group already uses.
  auto owner = store_.call_blocking(
      [this](storage::Store& s) { return setting_or_record(s, "group_database_of", group_.name); });
  if (!owner) {
    throw std::runtime_error("cannot read the group database's owner: " + owner.error().message());
  }
  if (*owner != group_.name) {
    throw ConfigError("storage.url", "this database is redundancy group \"" + *owner +
                                         "\"'s, but node " + self_ + " is in group \"" +
                                         group_.name +
                                         "\"; each group has its own database (no node writes "
                                         "another group's)");
  }
  // Both nodes of a group run the same version (SPEC.md section 1): refuse to join a running
  // peer that runs another.
  auto nodes = cluster_store_.call_blocking([](storage::Store& s) { return s.list_nodes(); });
  if (!nodes) {
    return;  // the registry is informative; the lease decides who runs what
  }
  const auto wall =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch())
          .count();
  for (const auto& n : *nodes) {
    const bool peer = n.node != self_ && std::find(group_.nodes.begin(), group_.nodes.end(),
                                                   n.node) != group_.nodes.end();
    const bool fresh = wall - n.heartbeat_at < 15'000 && n.text_conference_running;
    if (peer && fresh && !n.version.empty() && n.version != kNodeVersion) {
      throw std::runtime_error("node " + n.node + " of group " + group_.name + " runs " +
                               n.version + ", this node " + std::string(kNodeVersion) +
                               "; both nodes of a group must run the same version");
    }
  }
}

void Srm::start() {
  if (!clustered_) {
    return;
  }
  // The link secret: the cluster's own when set (tcctl settings), else derived from the
  // cluster's domain (every group of the cluster must accept every other's nodes).
  std::string secret = "tc-link:" + server_.config.domain;
  {
    auto job = [](storage::Store& s) { return s.list_settings(); };
    if (auto all = cluster_store_.call_blocking(std::move(job))) {
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
  link_->on_element([this](PeerLink::Channel c, const std::string& node, XmlElement e) {
    if (node != peer_) {
      mesh_->heard(node, clock_.now());
      on_data(node, std::move(e));  // another group's node: data only (PeerLink checks)
      return;
    }
    on_link_element(c, std::move(e));
  });
  link_->on_state([this](PeerLink::Channel c, bool up) {
    const bool data = c == PeerLink::Channel::Data;
    machine_->on_link(clock_.now(), data ? SrmMachine::Channel::Data : SrmMachine::Channel::Control,
                      up);
    if (data) {
      on_data_link(peer_, up);
    }
    perform();
  });
  // The other groups' nodes (docs/architecture.md, "Cluster").
  mesh_ = std::make_unique<Mesh>(control_, self_, secret);
  mesh_->set_connect_timeout(std::clamp(settings_.heartbeat_timeout, std::chrono::milliseconds(100),
                                        std::chrono::milliseconds(1000)));
  mesh_->on_state([this](const std::string& node, bool up) { on_data_link(node, up); });
  link_->accept_from([this](const std::string& node) { return mesh_->known(node); });
  // Until the leases say otherwise, nobody serves anything: stanzas wait (parked).
  auto snapshot = std::make_shared<ClusterSnapshot>();
  snapshot->self = self_;
  snapshot->members = group_.nodes;
  snapshot->group = group_.name;
  snapshot->groups[group_.name] = group_.nodes;
  snapshot->clustered = true;
  snapshot->mode = settings_.assignment_mode;
  snapshot->redirect_users = settings_.redirect_users;
  for (const auto& n : group_.nodes) {
    snapshot->partitions[n] = {"", 0};
  }
  view_.publish(snapshot);
  backfill_placements();
  refresh_cluster();
  machine_->start(clock_.now());
  perform();
}

// ---- driving the machine ----

void Srm::perform() {
  if (performing_ || !machine_) {
    return;  // the outer call drains what this one would have
  }
  performing_ = true;
  for (auto actions = machine_->drain(); !actions.empty(); actions = machine_->drain()) {
    for (auto& action : actions) {
      std::visit([this](auto& a) { execute(a); }, action);
    }
  }
  performing_ = false;
}

template <class T>
void Srm::finish(std::uint64_t op, const Result<T>& result) {
  Outcome outcome;
  if (result) {
    if constexpr (std::is_same_v<T, storage::LeaseRecord>) {
      outcome.lease = *result;
    }
  } else {
    const auto& e = result.error();
    outcome.status = e == storage::Errc::NotFound        ? Outcome::Status::NotFound
                     : e == storage::Errc::StaleEpoch    ? Outcome::Status::StaleEpoch
                     : e == storage::Errc::AlreadyExists ? Outcome::Status::AlreadyExists
                                                         : Outcome::Status::Failed;
    outcome.error = e.message();
  }
  machine_->on_outcome(clock_.now(), op, std::move(outcome));
  perform();
}

void Srm::execute(srm::ReadLease& a) {
  auto job = [p = a.partition](storage::Store& s) { return s.read_lease(p); };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::AcquireLease& a) {
  auto job = [p = a.partition, n = self_, ttl = a.ttl_ms](storage::Store& s) {
    return s.acquire_lease(p, n, ttl);
  };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::RenewLease& a) {
  auto job = [f = a.fence, ttl = a.ttl_ms](storage::Store& s) { return s.renew_lease(f, ttl); };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::TransferLease& a) {
  auto job = [f = a.fence, to = a.to, ttl = a.ttl_ms](storage::Store& s) {
    return s.transfer_lease(f, to, ttl);
  };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::ReleaseLease& a) {
  auto job = [f = a.fence](storage::Store& s) { return s.release_lease(f); };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::PingDatabase& a) {
  auto job = [](storage::Store& s) { return s.ping(); };
  store_.async_call(std::move(job),
                    asio::bind_executor(control_, [this, op = a.op](auto r) { finish(op, r); }));
}

void Srm::execute(srm::SendControl& a) {
  send_ctl(a.ctl, [this, op = a.op](bool ok, std::string error, const proto::ControlReply& reply) {
    Outcome outcome;
    outcome.status = ok ? Outcome::Status::Ok : Outcome::Status::Failed;
    outcome.error = ok || !error.empty() ? std::move(error) : "the peer refused (no reason)";
    outcome.reply = reply;
    machine_->on_outcome(clock_.now(), op, std::move(outcome));
    perform();
  });
}

void Srm::execute(srm::Sleep& a) {
  auto timer = std::make_shared<asio::steady_timer>(control_, a.until);
  sleeps_[a.op] = timer;
  timer->async_wait([this, op = a.op](boost::system::error_code) {
    sleeps_.erase(op);
    machine_->on_outcome(clock_.now(), op, Outcome{});
    perform();
  });
}

void Srm::execute(srm::SendHeartbeat& a) {
  expire_in_flight();  // on the heartbeat's beat
  if (mesh_) {
    mesh_->tick(clock_.now(), settings_.heartbeat_timeout, ping_frame());
    if (!refreshing_cluster_ &&
        clock_.now() - cluster_refreshed_ >
            std::max(settings_.heartbeat_interval * 4, std::chrono::milliseconds(2000))) {
      refresh_cluster();
    }
  }
  if (!link_) {
    return;
  }
  a.hb.rooms = server_.muc->live_rooms();
  a.hb.users = hooks_.users_connected ? hooks_.users_connected() : 0;
  a.hb.client = client_endpoint_of(self_);
  link_->send(PeerLink::Channel::Srm, proto::encode(a.hb));
}

void Srm::execute(srm::ReplyControl& a) {
  if (link_) {
    link_->send(PeerLink::Channel::Srm, proto::encode(a.reply));
  }
}

void Srm::execute(srm::Publish&) {
  publish();
}

void Srm::execute(srm::LoadPartition& a) {
  if (a.drop_peer_occupants) {
    server_.muc->drop_node_occupants(peer_);
  }
  server_.muc->preload_partition(a.partition);
  if (a.replay_joins) {
    server_.muc->replay_joins(a.partition);
  }
}

void Srm::execute(srm::UnloadPartition& a) {
  server_.muc->release_partition(a.partition, nullptr);
}

void Srm::execute(srm::ReplayJoins& a) {
  server_.muc->replay_joins(a.partition);
}

void Srm::execute(srm::MoveUsers& a) {
  hooks_.move_users(a.partition, a.to_node.empty() ? std::string() : client_endpoint_of(a.to_node));
}

void Srm::execute(srm::SetRouter& a) {
  hooks_.set_router(a.on);
}

void Srm::execute(srm::SetConference& a) {
  server_.muc->set_serving(a.on);
}

void Srm::execute(srm::SetAuthentication& a) {
  server_.auth_serving = a.on;
}

void Srm::execute(srm::EvictPeer&) {
  server_.muc->evict_unreachable(peer_);
  server_.muc->drop_node_occupants(peer_);
}

void Srm::execute(srm::ResetLink&) {
  if (link_) {
    link_->reset();
  }
}

void Srm::execute(srm::DiscoverPeer&) {
  if (discovering_ || !link_ ||
      (!peer_client_endpoint_.empty() && link_->up(PeerLink::Channel::Srm))) {
    return;
  }
  discovering_ = true;
  auto job = [](storage::Store& s) { return s.list_nodes(); };
  cluster_store_.async_call(std::move(job), asio::bind_executor(control_, [this](auto nodes) {
                              discovering_ = false;
                              if (!nodes) {
                                return;
                              }
                              for (const auto& n : *nodes) {
                                client_endpoints_[n.node] = n.client_endpoint;
                                if (n.node == peer_ && !n.srm_endpoint.empty()) {
                                  peer_client_endpoint_ = n.client_endpoint;
                                  link_->set_peer(peer_, n.srm_endpoint);
                                }
                              }
                            }));
}

void Srm::execute(srm::RefreshRegistry&) {
  refresh_registry();
}

void Srm::execute(srm::StateChanged& a) {
  spdlog::info("srm: {} / {} -> {} / {}", to_string(a.from), to_string(a.from_reason),
               to_string(a.to), to_string(a.to_reason));
  // The failover phases (Taking Over, Failing Over, Falling Back, Taking Back, Initializing):
  // how long each lasted, for /metrics.
  const auto now = clock_.now();
  if (is_transient(a.from) && state_entered_ != TimePoint{}) {
    phase_timing_.try_emplace(a.from).first->second.observe(now - state_entered_);
  }
  state_entered_ = now;
}

void Srm::execute(srm::Stopped&) {
  for (auto& [op, timer] : sleeps_) {
    timer->cancel();  // the loops see the stop and end
  }
  if (auto then = std::exchange(stopped_then_, nullptr)) {
    then();
  }
}

void Srm::execute(srm::Log& a) {
  switch (a.level) {
    case srm::Log::Level::Info:
      spdlog::info("{}", a.text);
      break;
    case srm::Log::Level::Warn:
      spdlog::warn("{}", a.text);
      break;
    case srm::Log::Level::Error:
      spdlog::error("{}", a.text);
      break;
  }
}

// ---- what the node shows of the machine ----

void Srm::refresh_registry() {
  storage::NodeRecord row;
  row.node = self_;
  row.text_conference_running =
      machine_ ? machine_->service_running(Service::TextConference) : true;
  row.heartbeat_at =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch())
          .count();
  row.client_endpoint = client_endpoint_of(self_);
  row.srm_endpoint = srm_host() + ":" + std::to_string(service_port());
  row.admin_url = server_.admin_url;
  row.state = std::string(to_string(state()));
  row.reason = std::string(to_string(reason()));
  row.version = std::string(kNodeVersion);
  auto job = [row](storage::Store& s) { return s.upsert_node(row); };
  cluster_store_.async_call(std::move(job), asio::bind_executor(control_, [](Result<void>) {}));
}

void Srm::publish() {
  const auto now = clock_.now();
  auto snapshot = std::make_shared<ClusterSnapshot>(*view_.get());
  const auto& held = machine_->held();
  const auto& holders = machine_->holders();
  for (const auto& n : group_.nodes) {
    auto& p = snapshot->partitions[n];
    if (auto h = held.find(n); h != held.end()) {
      p = {self_, h->second.epoch};
    } else {
      auto h2 = holders.find(n);
      p = {h2 == holders.end() ? "" : h2->second, 0};
      // Held by a peer we are cut off from that still renews its lease: nothing will move.
      p.unreachable = p.holder == peer_ && machine_->peer_cut_off(now);
    }
  }
  // The other groups' partitions, as their holders last said (over the mesh).
  snapshot->groups.clear();
  for (const auto& [name, g] : cluster_groups_) {
    snapshot->groups[name] = g.nodes;
  }
  snapshot->groups[group_.name] = group_.nodes;
  snapshot->mesh_up.clear();
  if (mesh_) {
    for (const auto& n : mesh_->up_nodes()) {
      snapshot->mesh_up.insert(n);
    }
  }
  for (const auto& [name, g] : cluster_groups_) {
    if (name == group_.name) {
      continue;
    }
    for (const auto& m : g.nodes) {
      auto& p = snapshot->partitions[m];
      auto it = remote_holders_.find(m);
      p = {it == remote_holders_.end() ? "" : it->second.node, 0};
    }
  }
  snapshot->client_endpoints = {client_endpoints_.begin(), client_endpoints_.end()};
  snapshot->peer_linked = link_ && link_->up(PeerLink::Channel::Data) && machine_->peer_alive(now);
  snapshot->muc_serving = machine_->service_running(Service::TextConference);
  snapshot->router_serving = machine_->service_running(Service::Router);
  view_.publish(std::move(snapshot));
  server_.muc->on_view_changed();
  send_serving("");
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

// ---- the link ----

void Srm::on_link_element(PeerLink::Channel channel, XmlElement element) {
  if (channel == PeerLink::Channel::Data) {
    on_data(peer_, std::move(element));
    return;
  }
  std::string error;
  if (element.name() == "hb") {
    auto hb = proto::decode_heartbeat(element, &error);
    if (!hb) {
      spdlog::warn("peer link: dropped a heartbeat from {}: {}", peer_, error);
      return;
    }
    if (!hb->client.empty()) {
      peer_client_endpoint_ = hb->client;
      client_endpoints_[peer_] = peer_client_endpoint_;
    }
    machine_->on_heartbeat(clock_.now(), *hb);
    perform();
  } else if (element.name() == "ctl") {
    auto ctl = proto::decode_control(element, &error);
    if (!ctl) {
      spdlog::warn("peer link: dropped a control request from {}: {}", peer_, error);
      return;
    }
    on_control(*ctl);
  } else if (element.name() == "ctl-reply") {
    auto reply = proto::decode_reply(element, &error);
    if (!reply) {
      spdlog::warn("peer link: dropped a control reply from {}: {}", peer_, error);
      return;
    }
    auto it = ctl_pending_.find(reply->id);
    if (it != ctl_pending_.end()) {
      auto done = std::move(it->second);
      ctl_pending_.erase(it);
      done(reply->ok, reply->error, *reply);
    }
  }
}

void Srm::on_control(const proto::Control& ctl) {
  if (ctl.op != "admin") {
    machine_->on_control(clock_.now(), ctl);
    perform();
    return;
  }
  // The peer's admin API asks this node to carry out an action on itself.
  admin_action(ctl.action, self_, ctl.service, [this, id = ctl.id](admin::Response r) {
    proto::ControlReply reply;
    reply.id = id;
    reply.ok = r.status < 300;
    reply.status = r.status;
    if (const auto* o = r.body.if_object()) {
      if (const auto* e = o->if_contains("error"); e && e->is_string()) {
        reply.error = std::string(e->as_string());
      }
    }
    if (link_) {
      link_->send(PeerLink::Channel::Srm, proto::encode(reply));
    }
  });
}

void Srm::send_ctl(proto::Control ctl, CtlReply reply) {
  ctl.id = std::to_string(next_id_++);
  if (!link_ || !link_->send(PeerLink::Channel::Srm, proto::encode(ctl))) {
    reply(false, "the peer " + peer_ + " is not reachable", proto::ControlReply{});
    return;
  }
  const std::string id = ctl.id;
  ctl_pending_[id] = std::move(reply);
  auto timer = std::make_shared<asio::steady_timer>(
      control_, settings_.heartbeat_timeout * 2 + std::chrono::seconds(3));
  timer->async_wait([this, id, timer](boost::system::error_code) {
    auto it = ctl_pending_.find(id);
    if (it != ctl_pending_.end()) {
      auto done = std::move(it->second);
      ctl_pending_.erase(it);
      done(false, "the peer did not answer in time", proto::ControlReply{});
    }
  });
}

// ---- shutdown ----

void Srm::shutdown(std::function<void()> then) {
  if (!clustered_ || !machine_ || machine_->shutting_down()) {
    then();
    return;
  }
  stopped_then_ = std::move(then);
  machine_->shutdown(clock_.now());
  perform();
}

}  // namespace tc::broker::ha
