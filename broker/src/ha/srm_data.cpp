// SPDX-License-Identifier: Apache-2.0
// Srm's data channel: room stanzas forwarded to the peer and their answers, deliveries, the
// sessions directory, stanzas for users on the peer (split from srm.cpp by feature).
#include <algorithm>
#include <charconv>

#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "xmpp/namespaces.h"

#include "ha/srm.h"
#include "routing/stanzas.h"
#include "server_context.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {
constexpr std::string_view kDataNs = "urn:tcbroker:data:1";
}  // namespace

bool Srm::send_data(const std::string& node, std::string xml) {
  if (node == peer_) {
    return link_ && link_->send_raw(PeerLink::Channel::Data, std::move(xml));
  }
  return mesh_ && mesh_->send_raw(node, std::move(xml));
}

bool Srm::data_up(const std::string& node) const {
  if (node == peer_) {
    return link_ && link_->up(PeerLink::Channel::Data);
  }
  return mesh_ && mesh_->up(node);
}

void Srm::broadcast_data(const std::string& xml) {
  if (!peer_.empty() && data_up(peer_)) {
    send_data(peer_, xml);
  }
  if (mesh_) {
    for (const auto& node : mesh_->up_nodes()) {
      mesh_->send_raw(node, xml);
    }
  }
}

void Srm::on_data_link(const std::string& node, bool up) {
  if (up) {
    // Each side is authoritative for its own sessions: send ours, ask for the other's (its
    // outbound connection may have stayed up while ours was down, so it would not resend).
    send_sessions(node);
    send_data(node, XmlElement("sessions-query", std::string(kDataNs)).to_string("jabber:client"));
    if (node != peer_) {
      send_serving(node);
    }
  } else {
    server_.router.remote_drop(node);
    // Stanzas in flight to that node may or may not have been handled: tell their senders.
    std::vector<InFlight> lost;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (it->second.node == node) {
        lost.push_back(std::move(it->second));
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    fail_in_flight(std::move(lost),
                   "the room's node stopped answering; the message may not have been delivered");
  }
  publish();
}

void Srm::fail_in_flight(std::vector<InFlight> stanzas, std::string_view why) {
  std::vector<muc::RoomHost::Delivery> errors;
  for (auto& pending : stanzas) {
    const XmlElement& st = pending.stanza;
    auto from = Jid::parse(st.attr("from"));
    if (!wants_error_reply(st) || !from) {
      continue;
    }
    errors.push_back({*from, to_wire(muc::error_reply(st, std::string(st.attr("to")),
                                                      Condition::RecipientUnavailable, why))});
  }
  for (auto& d : errors) {
    server_.muc->deliver_from_peer(d.to, d.wire);
  }
  // `stanzas` goes out of scope here: each Completion fires after its sender's error was
  // queued, so the session reads on.
}

void Srm::expire_in_flight() {
  const auto now = clock_.now();
  std::vector<InFlight> late;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (now - it->second.sent >= settings_.heartbeat_timeout) {
      late.push_back(std::move(it->second));
      it = in_flight_.erase(it);
    } else {
      ++it;
    }
  }
  if (!late.empty()) {
    spdlog::warn(
        "srm: {} forwarded stanza(s) got no answer within the heartbeat timeout (first to {})",
        late.size(), late.front().node);
    fail_in_flight(std::move(late),
                   "the room's node did not answer in time; the message may not have been "
                   "delivered");
  }
}

void Srm::forward_to_room(const std::string& node, XmlElement stanza, Jid from,
                          muc::Completion done) {
  asio::post(control_, [this, node, stanza = std::move(stanza), from = std::move(from),
                        done = std::move(done)]() mutable {
    const auto id = next_id_++;
    XmlElement room("room", std::string(kDataNs));
    room.set_attr("id", std::to_string(id)).set_attr("from", from.str());
    stanza.set_attr("from", from.str());
    room.add_child(stanza);
    if (!send_data(node, room.to_string("jabber:client"))) {
      // The link went down between routing and now: route again (it parks).
      server_.muc->async_dispatch(std::move(stanza), std::move(from), asio::detached);
      return;
    }
    in_flight_.emplace(id, InFlight{node, std::move(stanza), std::move(done), clock_.now()});
  });
}

void Srm::forward_deliveries(std::vector<muc::RoomHost::Delivery> deliveries) {
  asio::post(control_, [this, deliveries = std::move(deliveries)] {
    for (const auto& d : deliveries) {
      // The node of the recipient's session (the sessions directory); a bare JID goes to
      // every node with a session of that user.
      std::vector<std::string> nodes;
      if (d.to.is_bare()) {
        for (const auto& [node, full] : server_.router.remote_sessions_of(d.to)) {
          if (std::find(nodes.begin(), nodes.end(), node) == nodes.end()) {
            nodes.push_back(node);
          }
        }
      } else if (auto node = server_.router.remote_node_of(d.to)) {
        nodes.push_back(*node);
      }
      if (nodes.empty() && !peer_.empty()) {
        // Not in the directory: a user of another server whose stream (component mode, the
        // front server's link) is attached to the peer, or a session still being announced.
        nodes.push_back(peer_);
      }
      for (const auto& node : nodes) {
        // A prefixed wrapper, so that the stanza inside keeps the stream's default namespace
        // (jabber:client) without being serialised again.
        send_data(node, "<d:deliver xmlns:d='" + std::string(kDataNs) + "' to='" +
                            xmpp::xml_escape(d.to.str()) + "'>" + *d.wire + "</d:deliver>");
      }
    }
  });
}

void Srm::forward_gone(const Jid& room, const Jid& real) {
  asio::post(control_, [this, room = room.bare_str(), real] {
    XmlElement gone("gone", std::string(kDataNs));
    gone.set_attr("room", room).set_attr("jid", real.str());
    auto node = server_.router.remote_node_of(real);
    send_data(node ? *node : peer_, gone.to_string("jabber:client"));
  });
}

// ---- users on the peer: the sessions directory and forwarded stanzas ----

namespace {

/// <session jid='full' at='bound_at'/>, or with gone='1' when the session ended.
XmlElement session_frame(const std::string& full, std::int64_t bound_at, bool bound) {
  XmlElement frame("session", std::string(kDataNs));
  frame.set_attr("jid", full);
  if (bound) {
    frame.set_attr("at", std::to_string(bound_at));
  } else {
    frame.set_attr("gone", "1");
  }
  return frame;
}

}  // namespace

void Srm::announce(const Jid& full, std::int64_t bound_at, bool bound) {
  asio::post(control_, [this, full = full.str(), bound_at, bound] {
    // Links that are down are covered by the resynchronisation when they come up.
    broadcast_data(session_frame(full, bound_at, bound).to_string("jabber:client"));
  });
}

void Srm::send_sessions(const std::string& node) {
  send_data(node, XmlElement("sessions-reset", std::string(kDataNs)).to_string("jabber:client"));
  for (const auto& local : server_.router.locals()) {
    send_data(node,
              session_frame(local.full.str(), local.bound_at, true).to_string("jabber:client"));
  }
}

void Srm::forward_to_user(const std::string& node, const Jid& to, const XmlElement& stanza,
                          bool bounce) {
  // Serialised here, on the caller's thread; the frame keeps the stanza in the stream's
  // default namespace (jabber:client), as deliver frames do.
  std::string frame = "<d:user xmlns:d='" + std::string(kDataNs) + "' to='" +
                      xmpp::xml_escape(to.str()) + "'" + (bounce ? " bounce='1'" : "") + ">" +
                      *to_wire(stanza) + "</d:user>";
  asio::post(control_, [this, node, to, stanza = bounce ? stanza : XmlElement("x"),
                        frame = std::move(frame), bounce]() mutable {
    if (send_data(node, std::move(frame))) {
      return;
    }
    // The node went away since the lookup: its sessions are gone with it.
    if (bounce) {
      hooks_.deliver_user(stanza, to, true);
    }
  });
}

void Srm::on_session_frame(const std::string& node, const XmlElement& element) {
  const std::string& name = element.name();
  if (name == "sessions-reset") {
    server_.router.remote_drop(node);
    return;
  }
  if (name == "sessions-query") {
    send_sessions(node);
    return;
  }
  auto full = Jid::parse(element.attr("jid"));
  if (!full || full->is_bare()) {
    return;
  }
  if (element.attr("gone") == "1") {
    server_.router.remote_unbound(node, *full);
    return;
  }
  std::int64_t at = 0;
  const std::string at_text(element.attr("at"));
  const char* end = at_text.data() + at_text.size();
  if (std::from_chars(at_text.data(), end, at).ptr != end) {
    spdlog::warn("srm: ignoring a session announcement with a bad time from {}", node);
    return;
  }
  if (server_.router.remote_bound(self_, node, *full, at)) {
    // RFC 6120 §7.7.2.2 across nodes: the newer session of a full JID wins.
    hooks_.close_replaced(*full, node);
  }
}

void Srm::on_data(const std::string& node, XmlElement element) {
  const std::string& name = element.name();
  if (name == "session" || name == "sessions-reset" || name == "sessions-query") {
    on_session_frame(node, element);
    return;
  }
  if (name == "ping") {
    // Mesh::heard() has noted that it lives; keep what it says for the cluster status.
    auto& info = mesh_info_[node];
    info.state = std::string(element.attr("state"));
    info.reason = std::string(element.attr("reason"));
    info.users = std::strtoull(std::string(element.attr("users")).c_str(), nullptr, 10);
    info.rooms = std::strtoull(std::string(element.attr("rooms")).c_str(), nullptr, 10);
    return;
  }
  if (name == "serving") {
    on_serving(node, element);
    return;
  }
  if (name == "user") {
    auto to = Jid::parse(element.attr("to"));
    const XmlElement* stanza = element.first_element();
    if (to && stanza != nullptr) {
      hooks_.deliver_user(*stanza, *to, element.attr("bounce") == "1");
    }
    return;
  }
  if (name == "room") {
    const std::string id(element.attr("id"));
    auto from = Jid::parse(element.attr("from"));
    const XmlElement* inner = element.first_element();
    if (!from || inner == nullptr || !Jid::parse(inner->attr("to"))) {
      return;
    }
    XmlElement st = *inner;
    st.set_attr("from", from->str());
    muc::Completion done([this, id, node] {
      asio::post(control_, [this, id, node] {
        XmlElement d("done", std::string(kDataNs));
        d.set_attr("id", id);
        send_data(node, d.to_string("jabber:client"));
      });
    });
    server_.muc->dispatch_from_peer(node, std::move(st), *from, std::move(done));
  } else if (name == "done") {
    const auto id = std::strtoull(std::string(element.attr("id")).c_str(), nullptr, 10);
    in_flight_.erase(id);  // its Completion fires: the session's stanza is handled
  } else if (name == "deliver") {
    auto to = Jid::parse(element.attr("to"));
    const XmlElement* stanza = element.first_element();
    if (to && stanza != nullptr) {
      server_.muc->deliver_from_peer(*to, to_wire(*stanza));
    }
  } else if (name == "gone") {
    server_.muc->peer_occupant_gone(std::string(element.attr("room")),
                                    std::string(element.attr("jid")));
  }
}

}  // namespace tc::broker::ha
