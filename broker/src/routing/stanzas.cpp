// SPDX-License-Identifier: Apache-2.0
#include "routing/stanzas.h"

#include "xmpp/namespaces.h"

namespace tc::broker {
namespace {

void swap_addresses(const xmpp::XmlElement& in, xmpp::XmlElement& out) {
  if (in.has_attr("from")) {
    out.set_attr("to", std::string(in.attr("from")));
  }
  if (in.has_attr("to")) {
    out.set_attr("from", std::string(in.attr("to")));
  }
}

}  // namespace

xmpp::XmlElement make_error_reply(const xmpp::XmlElement& stanza, const StanzaError& error,
                                  std::string_view text) {
  xmpp::XmlElement reply(stanza.name(), xmpp::ns::kClient);
  if (stanza.has_attr("id")) {
    reply.set_attr("id", std::string(stanza.attr("id")));
  }
  swap_addresses(stanza, reply);
  reply.set_attr("type", "error");
  // RFC 6120 §8.3.1: the error may include the original payload; for messages the body
  // helps clients show what failed, so keep it for messages only.
  if (stanza.name() == "message") {
    if (const auto* body = stanza.child("body", xmpp::ns::kClient)) {
      reply.add_child(*body);
    }
  }
  reply.add_child(xmpp::make_error_element(error, text));
  return reply;
}

xmpp::XmlElement make_iq_result(const xmpp::XmlElement& iq) {
  xmpp::XmlElement reply("iq", xmpp::ns::kClient);
  reply.set_attr("type", "result");
  reply.set_attr("id", std::string(iq.attr("id")));
  swap_addresses(iq, reply);
  return reply;
}

Wire to_wire(const xmpp::XmlElement& stanza) {
  return std::make_shared<const std::string>(stanza.to_string(xmpp::ns::kClient));
}

Wire to_wire(std::string text) {
  return std::make_shared<const std::string>(std::move(text));
}

bool is_stanza(const xmpp::XmlElement& element) {
  const auto& n = element.name();
  return (n == "message" || n == "presence" || n == "iq") && element.xmlns() == xmpp::ns::kClient;
}

bool wants_error_reply(const xmpp::XmlElement& stanza) {
  const std::string_view type = stanza.attr("type");
  return type != "error" && type != "result" &&
         !(stanza.name() == "presence" && type == "unavailable");
}

}  // namespace tc::broker
