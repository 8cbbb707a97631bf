// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "xmpp/stanza_error.h"
#include "xmpp/xml_element.h"

namespace tc::broker {

/// Stanza errors are typed: a defined condition with its type (xmpp/stanza_error.h).
using xmpp::Condition;
using xmpp::ErrorType;
using xmpp::StanzaError;

/// Builds the error reply to `stanza` (RFC 6120 §8.3): same name and id, from/to swapped,
/// type='error', the original payload dropped (a message keeps its body), and an <error/>
/// with the condition (e.g. Condition::ServiceUnavailable) and optional text.
xmpp::XmlElement make_error_reply(const xmpp::XmlElement& stanza, const StanzaError& error,
                                  std::string_view text = {});

/// <iq type='result'/> answering `iq` (from/to swapped, same id).
xmpp::XmlElement make_iq_result(const xmpp::XmlElement& iq);

/// Serialised once for many recipients (STYLE.md §4.4). Top-level stanzas are written in the
/// jabber:client namespace of the stream.
using Wire = std::shared_ptr<const std::string>;
Wire to_wire(const xmpp::XmlElement& stanza);
Wire to_wire(std::string text);

/// True for the three stanza kinds of RFC 6120 §8 in jabber:client.
bool is_stanza(const xmpp::XmlElement& element);

/// Whether a stanza that cannot be handled is answered with an error: never an error (RFC 6120
/// §8.3.1 forbids answering one), nor a result, nor an unavailable presence (nobody awaits it).
bool wants_error_reply(const xmpp::XmlElement& stanza);

}  // namespace tc::broker
