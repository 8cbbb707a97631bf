// SPDX-License-Identifier: Apache-2.0
// SRM's side of the admin API: status, failover, fallback, recover, services, rooms.
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "admin/http_codec.h"
#include "ha/srm.h"
#include "server_context.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

using admin::error_response;
using admin::ok_response;

std::string describe(State s, Reason r) {
  return std::string(to_string(s)) + " (" + std::string(to_string(r)) + ")";
}

}  // namespace

void Srm::handle(const admin::Request& request, admin::Respond respond) {
  auto decoded = admin::decode_call(request);
  if (auto* refused = std::get_if<admin::Response>(&decoded)) {
    respond(std::move(*refused));
    return;
  }
  const auto& call = std::get<admin::ApiCall>(decoded);
  using Op = admin::ApiCall::Op;
  switch (call.op) {
    case Op::HaStatus:
      admin_status(std::move(respond));
      return;
    case Op::Rooms:
      admin_rooms(std::move(respond));
      return;
    case Op::ClusterStatus:
      if (!clustered_ || !mesh_) {
        respond(error_response(409, "this node is not in a redundancy group"));
        return;
      }
      admin_cluster_status(std::move(respond));
      return;
    case Op::Metrics: {
      admin::Response r;
      r.text = metrics_text();
      r.content_type = "text/plain; version=0.0.4";
      respond(std::move(r));
      return;
    }
    case Op::Failover:
    case Op::Fallback:
      admin_action(call.op == Op::Failover ? "failover" : "fallback", call.node, "",
                   std::move(respond));
      return;
    case Op::Recover: {
      auto refused = machine_ ? machine_->refuse_recover(clock_.now(), call.group)
                              : "no redundancy group " + call.group + " (this node is in no group)";
      if (refused) {
        respond(
            error_response(refused->rfind("no redundancy group", 0) == 0 ? 404 : 409, *refused));
        return;
      }
      machine_->admin_recover(clock_.now());
      perform();
      respond(ok_response("recovering group " + group_.name + ": SRM restarts on both nodes"));
      return;
    }
    case Op::ServiceStop:
    case Op::ServiceStart:
      admin_action(call.op == Op::ServiceStop ? "service-stop" : "service-start", call.node,
                   call.service, std::move(respond));
      return;
    case Op::Link:
      if (!link_) {
        respond(error_response(409, "this node is not in a redundancy group"));
        return;
      }
      link_->set_cut(call.cut);
      spdlog::warn("srm: node-to-node link {} by the admin", call.cut ? "cut" : "restored");
      publish();
      respond(ok_response(call.cut ? "link cut" : "link restored"));
      return;
  }
}

void Srm::admin_rooms(admin::Respond respond) {
  server_.muc->list_live(
      [this, respond = std::move(respond)](std::vector<muc::MucService::LiveRoom> rooms) {
        asio::post(control_, [this, respond, rooms = std::move(rooms)]() mutable {
          std::sort(rooms.begin(), rooms.end(),
                    [](const auto& a, const auto& b) { return a.jid < b.jid; });
          const auto view = view_.get();
          json::array list;
          json::array details;
          for (auto& r : rooms) {
            const std::string& partition = view->room_partition(r.jid);
            const auto it = view->partitions.find(partition);
            const std::int64_t epoch = it == view->partitions.end() ? 0 : it->second.epoch;
            details.emplace_back(json::object{{"jid", r.jid},
                                              {"occupants", r.occupants},
                                              {"partition", partition},
                                              {"epoch", epoch}});
            list.emplace_back(std::move(r.jid));
          }
          admin::Response r;
          r.body = json::object{
              {"node", self_}, {"rooms", std::move(list)}, {"details", std::move(details)}};
          respond(std::move(r));
        });
      });
}

void Srm::admin_status(admin::Respond respond) {
  const auto now = clock_.now();
  const SrmMachine& m = *machine_;
  const auto& peer_info = m.peer_info();
  json::object out;
  out["group"] =
      clustered_
          ? json::object{{"name", group_.name},
                         {"description", group_.description},
                         {"ha_enabled", ha_enabled_},
                         {"assignment_mode", std::string(to_string(settings_.assignment_mode))}}
          : json::object{{"name", ""},
                         {"description", ""},
                         {"ha_enabled", false},
                         {"assignment_mode", "balanced"}};
  json::array nodes;
  auto services_of_self = [&m] {
    json::object s;
    for (const Service sv : kServices) {
      s[std::string(to_string(sv))] = m.service_status(sv);
    }
    return s;
  };
  json::array held;
  for (const auto& [p, h] : m.held()) {
    held.emplace_back(p);
  }
  nodes.push_back(
      json::object{{"name", self_},
                   {"self", true},
                   {"state", std::string(to_string(m.state()))},
                   {"reason", std::string(to_string(m.reason()))},
                   {"reachable", true},
                   {"lease_epoch", m.own_epoch()},
                   {"partitions", std::move(held)},
                   {"rooms_hosted", server_.muc->live_rooms()},
                   {"users_connected", hooks_.users_connected ? hooks_.users_connected() : 0},
                   {"client_endpoint", client_endpoint_of(self_)},
                   {"services", services_of_self()}});
  const bool alive = m.peer_alive(now);
  std::optional<State> peer_state;
  std::optional<Reason> peer_reason;
  if (!peer_.empty()) {
    json::object s;
    for (const auto& [k, v] : peer_info.services) {
      s[k] = alive ? v : "unknown";
    }
    json::array peer_held;
    for (const auto& [p, h] : m.holders()) {
      if (h == peer_) {
        peer_held.emplace_back(p);
      }
    }
    if (alive) {
      peer_state = peer_info.state;
      peer_reason = peer_info.reason;
    }
    // Unreachable but still holding its own lease (we have not taken its partition): the link
    // is cut, not the node. Show what it last said, marked unreachable ("Normal (peer
    // unreachable)" in the operator guide); a node that is gone shows Unknown.
    const auto own = m.holders().find(peer_);
    const bool still_holds = own != m.holders().end() && own->second == peer_;
    const bool last_known = alive || (peer_info.heard && still_holds);
    json::object peer_entry{
        {"name", peer_},
        {"self", false},
        {"state", last_known ? std::string(to_string(peer_info.state)) : std::string("Unknown")},
        {"reason", last_known ? std::string(to_string(peer_info.reason)) : std::string("Unknown")},
        {"reachable", alive},
        {"lease_epoch", peer_info.epoch},
        {"partitions", std::move(peer_held)},
        {"rooms_hosted", peer_info.rooms},
        {"users_connected", peer_info.users},
        {"client_endpoint", client_endpoint_of(peer_)},
        {"services", std::move(s)}};
    if (!alive && peer_info.heard) {
      peer_entry["last_heard_ms_ago"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - peer_info.last_heard).count();
    }
    nodes.push_back(std::move(peer_entry));
  }
  out["nodes"] = std::move(nodes);
  const Advice advice = advise(m.state(), m.reason(), peer_state, peer_reason, self_,
                               peer_.empty() ? std::string("the peer") : peer_);
  out["cause"] = advice.cause;
  out["recommended_action"] = advice.action;
  json::array can_failover;
  json::array can_fallback;
  for (const auto& n : group_.nodes) {
    if (!m.refuse_failover(now, n)) {
      can_failover.emplace_back(n);
    }
    if (!m.refuse_fallback(now, n)) {
      can_fallback.emplace_back(n);
    }
  }
  out["allowed"] = json::object{{"failover", std::move(can_failover)},
                                {"fallback", std::move(can_fallback)},
                                {"recover", !m.refuse_recover(now, group_.name).has_value()}};
  json::array warnings;
  if (!clustered_) {
    warnings.emplace_back("this node belongs to no redundancy group: high availability is off");
  } else if (!ha_enabled_) {
    warnings.emplace_back("high availability is off for group " + group_.name +
                          (group_.nodes.size() < 2 ? " (it has one node)" : ""));
  }
  if (clustered_ && !peer_.empty() && !alive) {
    warnings.emplace_back("the peer " + peer_ + " does not answer heartbeats");
  }
  if (auto down = m.first_down_service()) {
    warnings.emplace_back("critical service " + std::string(to_string(*down)) + " is " +
                          m.service_status(*down) + " on " + self_);
  }
  if (clustered_ && !ha_enabled_ && group_.nodes.size() == 2 && m.first_down_service()) {
    warnings.emplace_back("enabling HA now would fail " + self_ +
                          " over at once: a critical service is not running");
  }
  out["warnings"] = std::move(warnings);
  json::object settings;
  for (const auto& [k, v] : settings_.to_pairs()) {
    settings[k] = v;
  }
  out["settings"] = std::move(settings);
  admin::Response r;
  r.body = std::move(out);
  respond(std::move(r));
}

void Srm::admin_action(const std::string& action, const std::string& node,
                       const std::string& service, admin::Respond respond) {
  if (node.empty()) {
    respond(error_response(400, "the request needs a \"node\""));
    return;
  }
  const bool is_service = action == "service-stop" || action == "service-start";
  std::optional<Service> which;
  if (is_service) {
    which = service_from(service);
    if (!which) {
      respond(error_response(400, "no critical service \"" + service +
                                      "\" (router, text-conference, database, authentication)"));
      return;
    }
  }
  if (node != self_) {
    if (!clustered_ || node != peer_) {
      respond(error_response(
          404, "no node " + node + (clustered_ ? " in group " + group_.name : " here")));
      return;
    }
    if (action == "failover" || action == "fallback") {
      auto refused = action == "failover" ? machine_->refuse_failover(clock_.now(), node)
                                          : machine_->refuse_fallback(clock_.now(), node);
      if (refused) {
        respond(error_response(409, *refused));
        return;
      }
    }
    // The peer carries it out.
    proto::Control ctl;
    ctl.op = "admin";
    ctl.action = action;
    ctl.service = service;
    send_ctl(ctl,
             [respond, node, action](bool ok, std::string error, const proto::ControlReply& reply) {
               if (ok) {
                 respond(ok_response(action + " of " + node + " done"));
               } else {
                 const unsigned status = reply.status;
                 if (error.empty()) {
                   error = node + " refused " + action + " without saying why (see its log)";
                 }
                 respond(error_response(status >= 400 ? status : 502, error));
               }
             });
    return;
  }
  if (is_service) {
    const bool start = action == "service-start";
    machine_->set_service(clock_.now(), *which, start);
    perform();
    spdlog::warn("srm: critical service {} {} by the admin", to_string(*which),
                 start ? "started" : "stopped");
    respond(ok_response(std::string(to_string(*which)) + (start ? " started" : " stopped") +
                        " on " + self_));
    return;
  }
  if (machine_->busy()) {
    respond(error_response(409, "a transition is in progress on " + self_ + "; try again"));
    return;
  }
  if (action == "failover" || action == "fallback") {
    const bool failover = action == "failover";
    auto refused = failover ? machine_->refuse_failover(clock_.now(), node)
                            : machine_->refuse_fallback(clock_.now(), node);
    if (refused) {
      respond(error_response(409, *refused));
      return;
    }
    const auto ticket = next_ticket_++;
    admin_tickets_[ticket] = {failover, std::move(respond)};
    if (failover) {
      machine_->admin_failover(clock_.now(), ticket);
    } else {
      machine_->admin_fallback(clock_.now(), ticket);
    }
    perform();
    return;
  }
  respond(error_response(400, "unknown action " + action));
}

void Srm::execute(srm::AdminDone& a) {
  auto it = admin_tickets_.find(a.ticket);
  if (it == admin_tickets_.end()) {
    return;
  }
  auto ticket = std::move(it->second);
  admin_tickets_.erase(it);
  const std::string now_is = describe(machine_->state(), machine_->reason());
  if (ticket.failover) {
    ticket.respond(
        a.ok ? ok_response(self_ + " failed over to " + peer_ + "; it is Idle until a fallback")
             : error_response(500, "failover did not complete: " + self_ + " is " + now_is));
  } else {
    ticket.respond(
        a.ok ? ok_response(self_ + " took its users and rooms back from " + peer_)
             : error_response(500, "fallback did not complete: " + self_ + " is " + now_is));
  }
}

std::string Srm::metrics_text() const {
  std::string out;
  auto line = [&out](const std::string& name, const std::string& labels, double value) {
    out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
  };
  const auto& m = server_.metrics;
  out += "# TYPE tc_connections_open gauge\n";
  line("tc_connections_open", "", static_cast<double>(m.connections_open.load()));
  out += "# TYPE tc_connections_accepted_total counter\n";
  line("tc_connections_accepted_total", "", static_cast<double>(m.connections_accepted.load()));
  out += "# TYPE tc_auth_total counter\n";
  line("tc_auth_total", "result=\"success\"", static_cast<double>(m.auth_success.load()));
  line("tc_auth_total", "result=\"failure\"", static_cast<double>(m.auth_failure.load()));
  out += "# TYPE tc_limited_total counter\n";
  line("tc_limited_total", "limit=\"rate\"", static_cast<double>(m.throttled.load()));
  line("tc_limited_total", "limit=\"connections_per_ip\"",
       static_cast<double>(m.refused_per_ip.load()));
  line("tc_limited_total", "limit=\"login_failures\"",
       static_cast<double>(m.logins_throttled.load()));
  out += "# TYPE tc_stanzas_in_total counter\n";
  line("tc_stanzas_in_total", "", static_cast<double>(m.stanzas_in.load()));
  out += "# TYPE tc_rooms_live gauge\n";
  line("tc_rooms_live", "", static_cast<double>(server_.muc->live_rooms()));
  out += "# TYPE tc_srm_state gauge\n";
  line("tc_srm_state",
       "group=\"" + group_.name + "\",node=\"" + self_ + "\",state=\"" +
           std::string(to_string(state())) + "\",reason=\"" + std::string(to_string(reason())) +
           "\"",
       1);
  out += "# TYPE tc_srm_lease_epoch gauge\n";
  for (const auto& [p, h] : machine_->held()) {
    line("tc_srm_lease_epoch", "partition=\"" + p + "\"", static_cast<double>(h.epoch));
  }
  out += "# TYPE tc_srm_peer_reachable gauge\n";
  line("tc_srm_peer_reachable", "", machine_->peer_alive(clock_.now()) ? 1 : 0);
  // Latencies (docs/operator-guide.md, "Metrics"; docs/grafana-dashboard.json graphs them).
  const auto& muc = server_.muc->metrics();
  muc.commit.append_prometheus(out, "tc_room_commit_seconds", "");
  muc.archive.append_prometheus(out, "tc_mam_query_seconds", "");
  muc.fanout.append_prometheus(out, "tc_fanout_seconds", "");
  out += "# TYPE tc_srm_phase_seconds histogram\n";
  for (const auto& [phase, timing] : phase_timing_) {
    timing.append_prometheus(out, "tc_srm_phase_seconds",
                             "phase=\"" + std::string(to_string(phase)) + "\"", false);
  }
  return out;
}

}  // namespace tc::broker::ha
