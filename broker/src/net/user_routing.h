// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <vector>

#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

namespace tc::broker {

struct ServerContext;

/// Where a stanza for a user came from, which decides where it may go.
enum class UserHop {
  Origin,  ///< sent on this node (a local session, or an error this node answers with)
  Peer,    ///< forwarded by another node: delivered here, except that a message whose full
           ///< JID is gone falls back to the user's sessions on every node
};

/// Routes a message, presence or iq addressed to a user of this domain (RFC 6121 §8.5) to the
/// user's sessions, on this node or, through the router's remote directory, on any other
/// node of the cluster. A full JID goes to that session (a chat or normal message falls back
/// to the bare JID when it is gone); a message to a bare JID goes to every session of the
/// user; presence to a bare JID likewise. What cannot be delivered is answered, when its type
/// allows an answer and `bounce` is set, with an error routed back to its sender wherever
/// that sender is. `stanza` has 'from' and 'to' set.
void route_to_user(ServerContext& server, const xmpp::XmlElement& stanza, const xmpp::Jid& to,
                   UserHop hop, bool bounce = true);

/// The full JID of every session of `bare`, on this node and (through the router's remote
/// directory) on every other node of the cluster.
std::vector<xmpp::Jid> resources_of(const ServerContext& server, const xmpp::Jid& bare);

/// Whether `bare` has a session anywhere in the cluster.
bool user_online(const ServerContext& server, const xmpp::Jid& bare);

}  // namespace tc::broker
