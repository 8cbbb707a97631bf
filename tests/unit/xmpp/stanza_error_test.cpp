// SPDX-License-Identifier: Apache-2.0
#include "xmpp/stanza_error.h"

#include <gtest/gtest.h>

#include "xmpp/namespaces.h"

namespace tc::xmpp {
namespace {

TEST(StanzaErrorTest, EveryConditionHasItsRfc6120NameAndParsesBack) {
  for (int i = 0; i <= static_cast<int>(Condition::UnexpectedRequest); ++i) {
    const auto c = static_cast<Condition>(i);
    const std::string_view name = condition_name(c);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(parse_condition(name), c) << name;
  }
  EXPECT_EQ(condition_name(Condition::ItemNotFound), "item-not-found");
  EXPECT_EQ(condition_name(Condition::RemoteServerNotFound), "remote-server-not-found");
  EXPECT_EQ(parse_condition("no-such-condition"), std::nullopt);
}

TEST(StanzaErrorTest, TypesHaveTheirNames) {
  EXPECT_EQ(error_type_name(ErrorType::Auth), "auth");
  EXPECT_EQ(error_type_name(ErrorType::Cancel), "cancel");
  EXPECT_EQ(error_type_name(ErrorType::Continue), "continue");
  EXPECT_EQ(error_type_name(ErrorType::Modify), "modify");
  EXPECT_EQ(error_type_name(ErrorType::Wait), "wait");
  EXPECT_EQ(parse_error_type("wait"), ErrorType::Wait);
  EXPECT_EQ(parse_error_type("later"), std::nullopt);
}

TEST(StanzaErrorTest, AConditionAloneTakesTheRfcType) {
  EXPECT_EQ(StanzaError(Condition::ItemNotFound).type, ErrorType::Cancel);
  EXPECT_EQ(StanzaError(Condition::Forbidden).type, ErrorType::Auth);
  EXPECT_EQ(StanzaError(Condition::BadRequest).type, ErrorType::Modify);
  EXPECT_EQ(StanzaError(Condition::ResourceConstraint).type, ErrorType::Wait);
  const StanzaError overridden{ErrorType::Wait, Condition::InternalServerError};
  EXPECT_EQ(overridden.type, ErrorType::Wait);
  EXPECT_NE(overridden, StanzaError(Condition::InternalServerError));
}

TEST(StanzaErrorTest, ElementIsTypeThenByThenLegacyCodeThenConditionThenText) {
  const XmlElement e = make_error_element({ErrorType::Wait, Condition::ServiceUnavailable},
                                          "the room is full", "room@conference.example");
  EXPECT_EQ(e.to_string(ns::kClient),
            R"(<error type="wait" by="room@conference.example" code="503">)"
            R"(<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>)"
            R"(<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">the room is full</text></error>)");
  EXPECT_EQ(make_error_element(Condition::ItemNotFound).to_string(ns::kClient),
            R"(<error type="cancel" code="404">)"
            R"(<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>)");
}

}  // namespace
}  // namespace tc::xmpp
