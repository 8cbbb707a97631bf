// SPDX-License-Identifier: Apache-2.0
#include "net/user_routing.h"

#include <set>
#include <string>

#include "net/carbons.h"
#include "net/session.h"
#include "routing/stanzas.h"
#include "server_context.h"

namespace tc::broker {

namespace {

/// Sends `error` (an error reply) to the sender it names, here or on another node. Errors
/// are never answered, so this cannot loop.
void send_error(ServerContext& server, const xmpp::XmlElement& error) {
  const auto to = xmpp::Jid::parse(error.attr("to"));
  if (!to || to->domain() != server.config.domain || to->local().empty()) {
    return;
  }
  route_to_user(server, error, *to, UserHop::Origin, false);
}

}  // namespace

void route_to_user(ServerContext& server, const xmpp::XmlElement& stanza, const xmpp::Jid& to,
                   UserHop hop, bool bounce) {
  const std::string_view type = stanza.attr("type");
  const bool is_message = stanza.name() == "message";
  const bool is_presence = stanza.name() == "presence";
  // Presence is never answered with an error (RFC 6121 §4.6.3: silently ignored).
  const bool bounceable =
      bounce && !is_presence && type != "error" && type != "result" && type != "headline";
  auto reject = [&](std::string_view text = {}) {
    if (bounceable) {
      send_error(server, make_error_reply(stanza, Condition::ServiceUnavailable, text));
    }
  };
  Router& router = server.router;
  // A stanza crosses at most two links: a full JID is forwarded only from its origin; a
  // message whose full JID is gone by the time it arrives falls back to every session of the
  // user, wherever they are; a bare JID that came from another node stays here.
  RemoteRoutes* remote = hop == UserHop::Origin || !to.is_bare() ? router.remote_routes() : nullptr;

  if (is_presence && type == "probe") {
    // RFC 6121 §4.3: the server answers for the user; each available resource, here or on
    // another node, sends its presence to the prober.
    const auto prober = xmpp::Jid::parse(stanza.attr("from"));
    if (!prober) {
      return;
    }
    for (const auto& s : router.sessions_of(to.bare())) {
      s->answer_probe(*prober);
    }
    if (remote != nullptr) {
      std::set<std::string> nodes;
      for (const auto& [node, full] : router.remote_sessions_of(to.bare())) {
        nodes.insert(node);
      }
      for (const auto& node : nodes) {
        remote->forward_to_user(node, to.bare(), stanza, false);
      }
    }
    return;
  }
  if (is_message && !to.is_bare() && is_carbon_for(stanza, to)) {
    // A carbon copy goes to its one resource, if that resource asked for them; it never
    // falls back to the bare JID and is never answered.
    if (auto target = router.find(to)) {
      if (target->wants_carbons()) {
        target->deliver(to_wire(stanza));
      }
    } else if (remote != nullptr && hop == UserHop::Origin) {
      if (auto node = router.remote_node_of(to)) {
        remote->forward_to_user(*node, to, stanza, false);
      }
    }
    return;
  }
  if (!to.is_bare()) {
    if (auto target = router.find(to)) {
      target->deliver(to_wire(stanza));
      if (is_message && carbon_eligible(stanza)) {
        // XEP-0280 §6: the recipient's other resources see it too. Made where the original
        // was delivered, so exactly once.
        send_carbons(server, stanza, to, /*sent=*/false);
      }
      return;
    }
    if (remote != nullptr && hop == UserHop::Origin) {
      if (auto node = router.remote_node_of(to)) {
        remote->forward_to_user(*node, to, stanza, bounceable);
        return;
      }
    }
    // RFC 6121 §8.5.3.2: chat/normal messages to an unavailable resource go to the bare JID;
    // presence and iqs to it are not delivered.
    if (!is_message || type == "groupchat" || type == "error" || type == "headline") {
      reject();
      return;
    }
  } else if (!is_message && !is_presence) {
    // An iq to another user's bare JID is answered by the server on their behalf, which
    // offers nothing (RFC 6121 §8.5.2.1.3 allows service-unavailable).
    reject();
    return;
  }
  const xmpp::Jid bare = to.bare();
  const auto local = router.sessions_of(bare);
  std::set<std::string> nodes;
  if (remote != nullptr) {
    for (const auto& [node, full] : router.remote_sessions_of(bare)) {
      nodes.insert(node);
    }
  }
  if ((is_message && type == "groupchat") || (local.empty() && nodes.empty())) {
    // No offline storage: the sender learns at once (RFC 6121 §8.5.2.2.1).
    reject("the recipient is not online");
    return;
  }
  const auto wire = to_wire(stanza);
  for (const auto& s : local) {
    s->deliver(wire);
  }
  // When only one other node has sessions, it answers if they are gone by the time it gets
  // there; otherwise someone received the stanza.
  const bool remote_bounce = bounceable && local.empty() && nodes.size() == 1;
  for (const auto& node : nodes) {
    remote->forward_to_user(node, bare, stanza, remote_bounce);
  }
}

std::vector<xmpp::Jid> resources_of(const ServerContext& server, const xmpp::Jid& bare) {
  std::vector<xmpp::Jid> out;
  for (const auto& s : server.router.sessions_of(bare)) {
    out.push_back(s->jid());
  }
  if (server.router.remote_routes() != nullptr) {
    for (const auto& [node, full] : server.router.remote_sessions_of(bare)) {
      out.push_back(full);
    }
  }
  return out;
}

bool user_online(const ServerContext& server, const xmpp::Jid& bare) {
  return !server.router.sessions_of(bare).empty() ||
         (server.router.remote_routes() != nullptr &&
          !server.router.remote_sessions_of(bare).empty());
}

}  // namespace tc::broker
