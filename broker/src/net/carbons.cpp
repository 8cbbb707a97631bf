// SPDX-License-Identifier: Apache-2.0
#include "net/carbons.h"

#include "xmpp/namespaces.h"

#include "net/user_routing.h"
#include "server_context.h"

namespace tc::broker {

namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

bool carbon_eligible(const XmlElement& message) {
  const std::string_view type = message.attr("type");
  const bool chat = type == "chat";
  const bool normal_with_body =
      (type.empty() || type == "normal") && message.child("body", ns::kClient) != nullptr;
  if (!chat && !normal_with_body) {
    return false;
  }
  return message.child("private", ns::kCarbons) == nullptr &&
         message.child("no-copy", ns::kHints) == nullptr &&
         message.child("sent", ns::kCarbons) == nullptr &&
         message.child("received", ns::kCarbons) == nullptr;
}

bool is_carbon_for(const XmlElement& stanza, const Jid& to) {
  if (stanza.name() != "message" || stanza.attr("from") != to.bare_str()) {
    return false;
  }
  return stanza.child("sent", ns::kCarbons) != nullptr ||
         stanza.child("received", ns::kCarbons) != nullptr;
}

namespace {

XmlElement carbon_copy(const XmlElement& original, const Jid& user, const Jid& to, bool sent) {
  XmlElement copy("message", ns::kClient);
  const std::string_view type = original.attr("type");
  copy.set_attr("from", user.bare_str()).set_attr("to", to.str());
  copy.set_attr("type", type.empty() ? "normal" : std::string(type));
  copy.add_child(sent ? "sent" : "received", ns::kCarbons)
      .add_child("forwarded", ns::kForward)
      .add_child(original);
  return copy;
}

}  // namespace

void send_carbons(ServerContext& server, const XmlElement& original, const Jid& user, bool sent) {
  const Jid bare = user.bare();
  Router& router = server.router;
  for (const auto& s : router.sessions_of(bare)) {
    if (s->jid() != user && s->wants_carbons()) {
      s->deliver(to_wire(carbon_copy(original, user, s->jid(), sent)));
    }
  }
  if (router.remote_routes() == nullptr) {
    return;
  }
  for (const auto& [node, full] : router.remote_sessions_of(bare)) {
    if (full != user) {
      // Whether that resource enabled carbons is known only where it lives: its node
      // delivers the copy or drops it (route_to_user, is_carbon_for).
      route_to_user(server, carbon_copy(original, user, full, sent), full, UserHop::Origin, false);
    }
  }
}

}  // namespace tc::broker
