// SPDX-License-Identifier: Apache-2.0
#include "xmpp/errc.h"

#include <gtest/gtest.h>

#include "base/result.h"

namespace tc::xmpp {
namespace {

TEST(StreamConditionTest, CategoryNameAndMessages) {
  const ErrorCode ec = Errc::NotWellFormed;
  EXPECT_STREQ(ec.category().name(), "xmpp");
  EXPECT_EQ(ec, make_error_code(Errc::NotWellFormed));
  EXPECT_FALSE(ec.message().empty());
  EXPECT_NE(ec.message(), make_error_code(Errc::RestrictedXml).message());
  EXPECT_FALSE(make_error_code(static_cast<Errc>(999)).message().empty());
}

TEST(StreamConditionTest, MapsParserErrorsToRfc6120Conditions) {
  EXPECT_EQ(stream_condition(Errc::NotWellFormed), "not-well-formed");
  EXPECT_EQ(stream_condition(Errc::RestrictedXml), "restricted-xml");
  EXPECT_EQ(stream_condition(Errc::PolicyViolation), "policy-violation");
  EXPECT_EQ(stream_condition(Errc::InvalidNamespace), "invalid-namespace");
  EXPECT_EQ(stream_condition(Errc::JidMalformed), "internal-server-error");
  EXPECT_EQ(stream_condition(Errc::MalformedRequest), "internal-server-error");
  EXPECT_EQ(stream_condition(boost::system::errc::make_error_code(boost::system::errc::io_error)),
            "internal-server-error");
}

}  // namespace
}  // namespace tc::xmpp
