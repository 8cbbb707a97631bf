// SPDX-License-Identifier: Apache-2.0
// Hostile bytes on the client port, sent over a plain socket before STARTTLS: each must end in the
// RFC 6120 §4.9 stream error, then </stream:stream> and a closed connection, while a client that
// logged in earlier keeps being served by the same process.
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "broker_test.h"
#include "raw_client.h"

namespace tc::integration {
namespace {

constexpr std::size_t kMaxStanzaBytes = 4096;
constexpr std::string_view kStreamsNs = "urn:ietf:params:xml:ns:xmpp-streams";

class RawStreamTest : public BrokerTest {
 protected:
  void SetUp() override {
    start_broker({.accounts = {kAlice, kBob}, .max_stanza_bytes = kMaxStanzaBytes});
    witness_ = &client(kAlice);
    ASSERT_TRUE(witness_->wait_connected()) << "the witness client could not log in";
  }

  /// A new raw connection that has opened its stream and read the features.
  std::unique_ptr<RawClient> open_raw() {
    auto raw = std::make_unique<RawClient>(broker().client_port());
    EXPECT_TRUE(raw->open_stream_and_read_features(broker().domain()))
        << "no <stream:features/>; got: " << raw->received();
    return raw;
  }

  /// The connection ends with <stream:error><{condition} xmlns=streams/></stream:error>, then
  /// </stream:stream>, then EOF.
  static void expect_stream_error(RawClient& raw, const std::string& condition) {
    EXPECT_TRUE(raw.wait_closed()) << "connection still open; got: " << raw.received();
    const std::string error = stream_error_of(raw.received());
    ASSERT_FALSE(error.empty()) << "no <stream:error>; got: " << raw.received();
    EXPECT_NE(error.find("<" + condition), std::string::npos)
        << "expected <" << condition << "/>; got: " << error;
    EXPECT_NE(error.find(kStreamsNs), std::string::npos) << error;
    const auto error_at = raw.received().find("<stream:error");
    EXPECT_NE(raw.received().find("</stream:stream>", error_at), std::string::npos)
        << "no </stream:stream> after the error; got: " << raw.received();
  }

  /// The client that logged in before the bad one is still served by a live server.
  void expect_witness_served() {
    EXPECT_TRUE(broker().alive()) << "tcbroker died";
    EXPECT_EQ(witness_->state(), GlooxClient::State::Connected) << "the witness was disconnected";
    EXPECT_EQ(witness_->ping(broker().domain()), gloox::Event::PingPong)
        << "the witness's ping went unanswered";
  }

  GlooxClient* witness_ = nullptr;
};

TEST_F(RawStreamTest, FeaturesBeforeTlsOfferOnlyStartTls) {
  auto raw = open_raw();
  const std::string& got = raw->received();
  EXPECT_NE(got.find("urn:ietf:params:xml:ns:xmpp-tls"), std::string::npos) << got;
  // TLS is required, so PLAIN (and in fact any SASL) must wait until after STARTTLS.
  EXPECT_EQ(got.find(">PLAIN<"), std::string::npos) << "PLAIN offered in clear text: " << got;
  expect_witness_served();
}

TEST_F(RawStreamTest, MalformedXmlGetsNotWellFormed) {
  auto raw = open_raw();
  ASSERT_TRUE(raw->send("<message><body></message>"));
  expect_stream_error(*raw, "not-well-formed");
  expect_witness_served();
}

TEST_F(RawStreamTest, CommentGetsRestrictedXml) {
  auto raw = open_raw();
  ASSERT_TRUE(raw->send("<!-- comments are not allowed in XMPP (RFC 6120 §11.1) -->"));
  expect_stream_error(*raw, "restricted-xml");
  expect_witness_served();
}

TEST_F(RawStreamTest, ProcessingInstructionGetsRestrictedXml) {
  auto raw = open_raw();
  ASSERT_TRUE(raw->send("<?xml-stylesheet href='evil.xsl'?>"));
  expect_stream_error(*raw, "restricted-xml");
  expect_witness_served();
}

TEST_F(RawStreamTest, DoctypeWithEntityBeforeTheStreamGetsRestrictedXml) {
  RawClient raw(broker().client_port());
  // The classic entity-expansion preamble; no stream header has been answered yet, so the server
  // must open its own stream before the error (RFC 6120 §4.9.1.2).
  ASSERT_TRUE(
      raw.send("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY lol 'lol'>"
               "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
               "<stream:stream to='localhost' xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"));
  expect_stream_error(raw, "restricted-xml");
  EXPECT_EQ(raw.received().find("lollol"), std::string::npos) << "an entity was expanded";
  expect_witness_served();
}

TEST_F(RawStreamTest, DoctypeInsideTheStreamIsRejected) {
  auto raw = open_raw();
  ASSERT_TRUE(raw->send("<!DOCTYPE foo [<!ENTITY x 'y'>]>"));
  // Inside the root element XML 1.0 already makes this a well-formedness error, so either
  // condition is right; what matters is that the stream ends.
  EXPECT_TRUE(raw->wait_closed()) << raw->received();
  const std::string error = stream_error_of(raw->received());
  EXPECT_TRUE(error.find("<restricted-xml") != std::string::npos ||
              error.find("<not-well-formed") != std::string::npos)
      << "got: " << raw->received();
  expect_witness_served();
}

TEST_F(RawStreamTest, OversizedStanzaGetsPolicyViolation) {
  auto raw = open_raw();
  // Never completed, so the only possible objection is its size: a server that buffers until the
  // end tag would wait forever (and let any client fill its memory).
  raw->send("<message to='alice@localhost' type='chat'><body>" +
            std::string(std::size_t{10} * 1024, 'x'));  // well over max_stanza_bytes = 4096
  expect_stream_error(*raw, "policy-violation");
  expect_witness_served();
}

TEST_F(RawStreamTest, AuthenticatedClientSendingAnOversizedStanzaIsDisconnected) {
  auto& bob = client(kBob);
  ASSERT_TRUE(bob.wait_connected());
  // Under the limit: delivered as usual.
  const std::string small(2048, 's');
  bob.send_chat(bare_jid(kAlice), small);
  ASSERT_TRUE(witness_->wait_message([&](const ReceivedMessage& m) { return m.body == small; }))
      << "a 2 KB message (under the 4 KB limit) was not delivered";
  // Over the limit: the sender is cut off and nothing reaches the recipient.
  const std::string big(std::size_t{10} * 1024, 'B');
  bob.send_chat(bare_jid(kAlice), big);
  const auto reason = bob.wait_disconnected();
  ASSERT_TRUE(reason.has_value()) << "a 10 KB stanza did not end the sender's stream";
  EXPECT_EQ(*reason, gloox::ConnStreamError);
  EXPECT_EQ(bob.stream_error(), gloox::StreamErrorPolicyViolation);
  expect_witness_served();  // the ping's reply proves the witness's queue has been drained
  EXPECT_FALSE(witness_->wait_message([&](const ReceivedMessage& m) { return m.body == big; }, 0ms))
      << "the oversized message was delivered";
}

TEST_F(RawStreamTest, ClosingTheStreamClosesTheConnectionWithoutError) {
  auto raw = open_raw();
  ASSERT_TRUE(raw->send("</stream:stream>"));
  EXPECT_TRUE(raw->wait_closed()) << raw->received();
  EXPECT_NE(raw->received().find("</stream:stream>"), std::string::npos) << raw->received();
  EXPECT_TRUE(stream_error_of(raw->received()).empty()) << raw->received();
  expect_witness_served();
}

TEST_F(RawStreamTest, ClientVanishingMidStanzaDoesNotHurtOthers) {
  {
    auto raw = open_raw();
    ASSERT_TRUE(raw->send("<message to='alice@localhost'><bo"));
  }  // closed here, mid-tag
  expect_witness_served();
}

TEST_F(RawStreamTest, ManyBadClientsInARowLeaveTheWitnessServed) {
  const char* const bad_inputs[] = {
      "<message><body></message>",
      "<!-- x -->",
      "<?pi x?>",
      "<message>\x01\x02\x03</message>",  // characters XML 1.0 forbids
      "</message>",                       // an end tag that was never opened
      "<a:b xmlns:c='d'/>",               // undeclared prefix
  };
  for (const char* bad : bad_inputs) {
    auto raw = open_raw();
    raw->send(bad);
    EXPECT_TRUE(raw->wait_closed()) << "not closed after " << bad << "; got: " << raw->received();
    EXPECT_FALSE(stream_error_of(raw->received()).empty())
        << "no stream error after " << bad << "; got: " << raw->received();
    expect_witness_served();
  }
}

}  // namespace
}  // namespace tc::integration
