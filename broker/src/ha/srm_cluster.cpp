// SPDX-License-Identifier: Apache-2.0
// Srm across the cluster's groups (docs/architecture.md, "Cluster"): the groups and nodes in
// the cluster database, the mesh to the other groups' nodes, and who holds their partitions.
#include <algorithm>
#include <charconv>

#include <boost/asio/bind_executor.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "storage/store.h"

#include "ha/srm.h"
#include "server_context.h"
#include "shard/store_worker.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
namespace json = boost::json;
using xmpp::XmlElement;

namespace {
constexpr std::string_view kDataNs = "urn:tcbroker:data:1";

struct ClusterRows {
  std::vector<storage::GroupRecord> groups;
  std::vector<storage::NodeRecord> nodes;
};
}  // namespace

void Srm::refresh_cluster() {
  if (refreshing_cluster_) {
    return;
  }
  refreshing_cluster_ = true;
  cluster_refreshed_ = clock_.now();
  auto job = [](storage::Store& s) -> Result<ClusterRows> {
    ClusterRows rows;
    auto groups = s.list_groups();
    if (!groups) {
      return groups.error();
    }
    auto nodes = s.list_nodes();
    if (!nodes) {
      return nodes.error();
    }
    rows.groups = std::move(*groups);
    rows.nodes = std::move(*nodes);
    return rows;
  };
  cluster_store_.async_call(
      std::move(job), asio::bind_executor(control_, [this](Result<ClusterRows> rows) {
        refreshing_cluster_ = false;
        if (!rows) {
          spdlog::warn("srm: cannot read the cluster's groups: {}", rows.error().message());
          return;
        }
        apply_cluster(rows->groups, rows->nodes);
      }));
}

void Srm::backfill_placements() {
  auto rooms = store_.call_blocking([](storage::Store& s) { return s.list_rooms(); });
  if (!rooms) {
    throw std::runtime_error("cannot list this group's rooms: " + rooms.error().message());
  }
  std::vector<std::string> jids;
  jids.reserve(rooms->size());
  for (const auto& r : *rooms) {
    jids.push_back(r.jid);
  }
  auto job = [&jids, group = group_.name](storage::Store& s) {
    return s.claim_room_groups(jids, group);
  };
  auto placed = cluster_store_.call_blocking(std::move(job));
  if (!placed) {
    throw std::runtime_error("cannot record this group's rooms in the cluster database: " +
                             placed.error().message());
  }
  if (*placed > 0) {
    spdlog::info("cluster: recorded {} room(s) of this group's database as hosted by group {}",
                 *placed, group_.name);
  }
}

void Srm::apply_cluster(const std::vector<storage::GroupRecord>& groups,
                        const std::vector<storage::NodeRecord>& nodes) {
  std::map<std::string, storage::GroupRecord> rows;
  std::map<std::string, std::string> others;  // node -> group, other groups only
  for (const auto& g : groups) {
    rows[g.name] = g;
    if (g.name == group_.name) {
      continue;
    }
    for (const auto& n : g.nodes) {
      others[n] = g.name;
    }
  }
  // Membership changed (descriptions and HA flags only show in the status).
  const bool changed = !std::equal(rows.begin(), rows.end(), cluster_groups_.begin(),
                                   cluster_groups_.end(), [](const auto& a, const auto& b) {
                                     return a.first == b.first && a.second.nodes == b.second.nodes;
                                   });
  if (changed && (rows.size() > 1 || cluster_groups_.size() > 1)) {
    std::string text;
    for (const auto& [name, g] : rows) {
      text += (text.empty() ? "" : ", ") + name + " (";
      for (std::size_t i = 0; i < g.nodes.size(); ++i) {
        text += (i ? ", " : "") + g.nodes[i];
      }
      text += ")";
    }
    spdlog::info("cluster: {} group(s): {}", rows.size(), text);
  }
  cluster_groups_ = std::move(rows);
  if (changed) {
    // A partition of a group that left the cluster has no holder any more.
    for (auto it = remote_holders_.begin(); it != remote_holders_.end();) {
      it = others.count(it->first) == 0 ? remote_holders_.erase(it) : std::next(it);
    }
  }
  mesh_->set_nodes(others);
  registry_.clear();
  for (const auto& n : nodes) {
    registry_[n.node] = n;
    if (n.node == self_) {
      continue;
    }
    if (!n.client_endpoint.empty()) {
      client_endpoints_[n.node] = n.client_endpoint;
    }
    if (others.count(n.node) > 0 && !n.srm_endpoint.empty()) {
      mesh_->set_endpoint(n.node, n.srm_endpoint);
    }
  }
  if (changed) {
    publish();
  }
}

void Srm::send_serving(const std::string& node) {
  if (!mesh_ || !machine_) {
    return;
  }
  XmlElement frame("serving", std::string(kDataNs));
  frame.set_attr("group", group_.name);
  for (const auto& [partition, held] : machine_->held()) {
    frame.add_child("p", std::string(kDataNs))
        .set_attr("name", partition)
        .set_attr("epoch", std::to_string(held.epoch));
  }
  std::string xml = frame.to_string("jabber:client");
  if (!node.empty()) {
    mesh_->send_raw(node, std::move(xml));
    return;
  }
  if (xml == last_serving_) {
    return;
  }
  last_serving_ = xml;
  for (const auto& n : mesh_->up_nodes()) {
    mesh_->send_raw(n, xml);
  }
}

void Srm::on_serving(const std::string& node, const XmlElement& element) {
  const std::string group = mesh_->group_of(node);
  auto members = cluster_groups_.find(group);
  if (group.empty() || members == cluster_groups_.end()) {
    return;  // not (yet) known as a node of another group
  }
  std::map<std::string, std::int64_t> said;
  for (const XmlElement* child : element.children("p", kDataNs)) {
    const std::string name(child->attr("name"));
    const std::string epoch_text(child->attr("epoch"));
    std::int64_t epoch = 0;
    const char* end = epoch_text.data() + epoch_text.size();
    if (std::from_chars(epoch_text.data(), end, epoch).ptr != end) {
      spdlog::warn("cluster: ignoring a serving frame with a bad epoch from {}", node);
      return;
    }
    said[name] = epoch;
  }
  bool changed = false;
  std::vector<std::string> moved;   // partitions whose holder changed from one node to another
  std::vector<std::string> failed;  // nodes whose own partition another node holds now
  for (const auto& partition : members->second.nodes) {
    auto& current = remote_holders_[partition];
    auto it = said.find(partition);
    if (it != said.end()) {
      // Lease epochs grow with every change of holder: the higher one is the newer news.
      if (current.node != node && (current.node.empty() || it->second >= current.epoch)) {
        if (current.had_holder) {
          moved.push_back(partition);  // its rooms were unloaded where they were
        }
        if (partition != node) {
          failed.push_back(partition);
        }
        current = {node, it->second, true};
        changed = true;
      } else if (current.node == node && current.epoch != it->second) {
        current.epoch = it->second;
      }
    } else if (current.node == node) {
      current.node.clear();  // given up: the next holder loads its rooms afresh
      changed = true;
    }
  }
  if (!changed) {
    return;
  }
  publish();
  for (const auto& gone : failed) {
    // That node failed over (or stopped): its users' occupancies of rooms here end.
    server_.muc->drop_node_occupants(gone);
  }
  for (const auto& partition : moved) {
    // This node's users stay occupants of that partition's rooms on the new holder.
    server_.muc->replay_joins(partition);
  }
}

std::string Srm::ping_frame() const {
  XmlElement ping("ping", std::string(kDataNs));
  ping.set_attr("state", std::string(to_string(state())))
      .set_attr("reason", std::string(to_string(reason())))
      .set_attr("users", std::to_string(hooks_.users_connected ? hooks_.users_connected() : 0))
      .set_attr("rooms", std::to_string(server_.muc->live_rooms()));
  return ping.to_string("jabber:client");
}

void Srm::admin_cluster_status(admin::Respond respond) {
  const auto now = clock_.now();
  const auto view = view_.get();
  json::object out;
  out["self"] = self_;
  out["group"] = group_.name;
  // Who holds each partition, as this node knows it: its own group from the leases, the
  // others from their holders' announcements.
  std::map<std::string, std::vector<std::string>> held_by;
  for (const auto& [partition, p] : view->partitions) {
    if (!p.holder.empty()) {
      held_by[p.holder].push_back(partition);
    }
  }
  json::array groups;
  json::array nodes;
  const auto& peer = machine_->peer_info();
  for (const auto& [name, g] : cluster_groups_) {
    groups.push_back(json::object{{"name", g.name},
                                  {"description", g.description},
                                  {"ha_enabled", g.ha_enabled},
                                  {"nodes", json::value_from(g.nodes)},
                                  {"self", g.name == group_.name}});
    for (const auto& n : g.nodes) {
      json::object e{{"node", n}, {"group", g.name}, {"self", n == self_}};
      const auto reg = registry_.find(n);
      std::string state = reg == registry_.end() ? "" : reg->second.state;
      std::string reason = reg == registry_.end() ? "" : reg->second.reason;
      std::uint64_t users = 0;
      std::uint64_t rooms = 0;
      bool linked = false;
      std::string source = "registry";
      if (n == self_) {
        state = std::string(to_string(this->state()));
        reason = std::string(to_string(this->reason()));
        users = hooks_.users_connected ? hooks_.users_connected() : 0;
        rooms = server_.muc->live_rooms();
        linked = true;
        source = "self";
      } else if (n == peer_) {
        linked = data_up(peer_) && machine_->peer_alive(now);
        if (linked) {
          state = std::string(to_string(peer.state));
          reason = std::string(to_string(peer.reason));
          users = peer.users;
          rooms = peer.rooms;
          source = "heartbeat";
        }
      } else if (auto info = mesh_info_.find(n); info != mesh_info_.end() && mesh_->up(n)) {
        linked = true;
        state = info->second.state;
        reason = info->second.reason;
        users = info->second.users;
        rooms = info->second.rooms;
        source = "mesh";
      }
      e["linked"] = linked;
      e["state"] = state.empty() ? "Unknown" : state;
      e["reason"] = reason.empty() ? "Unknown" : reason;
      e["source"] = source;
      e["users_connected"] = users;
      e["rooms_hosted"] = rooms;
      e["partitions"] = json::value_from(held_by[n]);
      e["client_endpoint"] = client_endpoint_of(n);
      if (reg != registry_.end()) {
        e["version"] = reg->second.version;
      }
      nodes.push_back(std::move(e));
    }
  }
  out["groups"] = std::move(groups);
  out["nodes"] = std::move(nodes);
  admin::Response r;
  r.body = std::move(out);
  respond(std::move(r));
}

}  // namespace tc::broker::ha
