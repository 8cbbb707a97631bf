// SPDX-License-Identifier: Apache-2.0
#include "routing/stanzas.h"

#include <gtest/gtest.h>

#include "xmpp/namespaces.h"

namespace tc::broker {
namespace {

using xmpp::XmlElement;

TEST(Stanzas, ErrorReplySwapsAddressesAndCarriesTheCondition) {
  XmlElement iq("iq", xmpp::ns::kClient);
  iq.set_attr("id", "q1").set_attr("from", "a@x/r").set_attr("to", "x").set_attr("type", "get");
  iq.add_child("query", "urn:example");
  const auto reply = make_error_reply(iq, Condition::ServiceUnavailable, "nope");
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(reply.attr("id"), "q1");
  EXPECT_EQ(reply.attr("to"), "a@x/r");
  EXPECT_EQ(reply.attr("from"), "x");
  EXPECT_EQ(reply.child("query", "urn:example"), nullptr);  // payload dropped for iq
  const XmlElement* error = reply.child("error", xmpp::ns::kClient);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->attr("type"), "cancel");
  EXPECT_NE(error->child("service-unavailable", xmpp::ns::kStanzaErrors), nullptr);
  EXPECT_EQ(error->child_text("text", xmpp::ns::kStanzaErrors), "nope");
}

TEST(Stanzas, MessageErrorsKeepTheBody) {
  XmlElement msg("message", xmpp::ns::kClient);
  msg.set_attr("to", "b@x").set_attr("type", "chat");
  msg.add_child("body", xmpp::ns::kClient).add_text("hi");
  const auto reply = make_error_reply(msg, Condition::ServiceUnavailable);
  EXPECT_EQ(reply.child_text("body", xmpp::ns::kClient), "hi");
  EXPECT_EQ(reply.attr("from"), "b@x");
}

TEST(Stanzas, WireIsInTheClientNamespace) {
  XmlElement msg("message", xmpp::ns::kClient);
  msg.add_child("body", xmpp::ns::kClient).add_text("a<b");
  EXPECT_EQ(*to_wire(msg), "<message><body>a&lt;b</body></message>");
}

}  // namespace
}  // namespace tc::broker
