// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

namespace tc::broker {

struct ServerContext;

/// XEP-0280 (Message Carbons): a user's resources that enabled carbons see copies of the
/// chats its other resources send and receive, wherever in the cluster those sessions are.

/// §6: a chat message, or a normal one with a body; not one marked <private/> or
/// <no-copy/> (XEP-0334), not an error, not a carbon itself.
bool carbon_eligible(const xmpp::XmlElement& message);

/// Whether `stanza`, addressed to the full JID `to`, is a copy the server made for it: from
/// the user's own bare JID, wrapping <sent/> or <received/>. Such a copy goes only to that
/// resource, and only if it enabled carbons.
bool is_carbon_for(const xmpp::XmlElement& stanza, const xmpp::Jid& to);

/// Sends copies of `original` to every resource of `user`'s account except `user` (a full
/// JID), here and on the other nodes; those that did not enable carbons drop theirs on
/// delivery. `sent`: `user` sent it (a <sent/> copy), else `user` received it.
void send_carbons(ServerContext& server, const xmpp::XmlElement& original, const xmpp::Jid& user,
                  bool sent);

}  // namespace tc::broker
