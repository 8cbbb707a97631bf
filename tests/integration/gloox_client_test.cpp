// SPDX-License-Identifier: Apache-2.0
// c2s behaviour seen by a real XMPP client library (gloox 1.0, GnuTLS): STARTTLS, SASL,
// binding, ping, disco, one-to-one routing and the errors RFC 6120/6121 promise.
#include <string>

#include <gtest/gtest.h>

#include "broker_test.h"

namespace tc::integration {
namespace {

class GlooxTest : public BrokerTest {
 protected:
  void SetUp() override { start_broker({.accounts = {kAlice, kBob, kCarol}}); }
};

std::string bare_of(const std::string& full_jid) {
  return full_jid.substr(0, full_jid.find('/'));
}

auto with_body(const std::string& body) {
  return [body](const ReceivedMessage& m) { return m.body == body; };
}

auto of_type(gloox::Message::MessageType type) {
  return [type](const ReceivedMessage& m) { return m.type == type; };
}

TEST_F(GlooxTest, LogsInWithScramSha1OverTlsAndGetsAGeneratedResource) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  EXPECT_FALSE(alice.tls_protocol().empty()) << "connected without a TLS handshake";
  EXPECT_NE(alice.transcript().find("mechanism='SCRAM-SHA-1'"), std::string::npos);
  const std::string jid = alice.bound_jid();
  EXPECT_EQ(bare_of(jid), bare_jid(kAlice));
  // gloox asked for no resource, so the server must have made one up (RFC 6120 §7.6).
  ASSERT_NE(jid.find('/'), std::string::npos) << jid;
  EXPECT_GT(jid.size(), jid.find('/') + 1) << jid;
}

TEST_F(GlooxTest, LogsInWithPlainOverTls) {
  auto& bob = client(kBob, gloox::SaslMechPlain);
  ASSERT_TRUE(bob.wait_connected());
  EXPECT_FALSE(bob.tls_protocol().empty());
  EXPECT_NE(bob.transcript().find("mechanism='PLAIN'"), std::string::npos);
}

TEST_F(GlooxTest, TwoSessionsOfOneUserGetDistinctResources) {
  auto& first = client(kAlice);
  auto& second = client(kAlice);
  ASSERT_TRUE(first.wait_connected());
  ASSERT_TRUE(second.wait_connected());
  EXPECT_NE(first.bound_jid(), second.bound_jid());
}

TEST_F(GlooxTest, WrongPasswordFailsWithNotAuthorized) {
  auto& impostor = client_with_password(kAlice, "not-" + kAlice.password);
  const auto reason = impostor.wait_disconnected();
  ASSERT_TRUE(reason.has_value()) << "still connected after a wrong password";
  EXPECT_EQ(*reason, gloox::ConnAuthenticationFailed);
  EXPECT_EQ(impostor.auth_error(), gloox::SaslNotAuthorized);

  // The failure neither locked the account nor hurt the server.
  auto& alice = client(kAlice);
  EXPECT_TRUE(alice.wait_connected());
}

TEST_F(GlooxTest, UnknownUserFailsLikeAWrongPassword) {
  const Account nobody{"nobody", "whatever-password"};
  auto& stranger = client(nobody);
  const auto reason = stranger.wait_disconnected();
  ASSERT_TRUE(reason.has_value()) << "an account that does not exist logged in";
  EXPECT_EQ(*reason, gloox::ConnAuthenticationFailed);
  EXPECT_EQ(stranger.auth_error(), gloox::SaslNotAuthorized);
}

TEST_F(GlooxTest, PingToTheServerIsAnswered) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  for (int i = 0; i < 3; ++i) {
    const auto event = alice.ping(broker().domain());
    ASSERT_TRUE(event.has_value()) << "no reply to ping #" << i;
    EXPECT_EQ(*event, gloox::Event::PingPong) << "ping #" << i << " got an error";
  }
}

TEST_F(GlooxTest, DiscoInfoOnTheServerListsIdentityAndFeatures) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  const auto info = alice.disco_info(broker().domain());
  ASSERT_TRUE(info.has_value()) << "no disco#info reply";
  ASSERT_TRUE(info->ok) << "disco#info error " << info->error;
  EXPECT_TRUE(info->has_identity("server", "im"));
  EXPECT_TRUE(info->has_feature("urn:xmpp:ping"));
  EXPECT_TRUE(info->has_feature("http://jabber.org/protocol/disco#info"));
  EXPECT_TRUE(info->has_feature("http://jabber.org/protocol/disco#items"));
}

TEST_F(GlooxTest, ChatToABareJidIsDelivered) {
  auto& alice = client(kAlice);
  auto& bob = client(kBob);
  ASSERT_TRUE(alice.wait_connected());
  ASSERT_TRUE(bob.wait_connected());

  const std::string body = "hello bob <&> \xC3\xA9t\xC3\xA9";  // escaping and UTF-8 survive
  alice.send_chat(bare_jid(kBob), body);
  const auto got = bob.wait_message(with_body(body));
  ASSERT_TRUE(got.has_value()) << "bob never got alice's message";
  EXPECT_EQ(got->type, gloox::Message::Chat);
  EXPECT_EQ(got->from, alice.bound_jid()) << "'from' must be the sender's full JID";
}

TEST_F(GlooxTest, ChatToAFullJidIsDelivered) {
  auto& alice = client(kAlice);
  auto& bob = client(kBob);
  ASSERT_TRUE(alice.wait_connected());
  ASSERT_TRUE(bob.wait_connected());

  bob.send_chat(alice.bound_jid(), "reply to your full JID");
  const auto got = alice.wait_message(with_body("reply to your full JID"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->from, bob.bound_jid());
}

TEST_F(GlooxTest, ChatToAnUnknownUserBouncesServiceUnavailable) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  const std::string nobody = "nobody@" + broker().domain();
  alice.send_chat(nobody, "are you there?");
  const auto bounce = alice.wait_message(of_type(gloox::Message::Error));
  ASSERT_TRUE(bounce.has_value()) << "no error for a message to a user that does not exist";
  EXPECT_EQ(bounce->error, gloox::StanzaErrorServiceUnavailable);
  EXPECT_EQ(bounce->error_type, gloox::StanzaErrorTypeCancel);
  EXPECT_EQ(bare_of(bounce->from), nobody);
}

TEST_F(GlooxTest, ChatToAnOfflineUserIsKeptUntilItLogsIn) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  alice.send_chat(bare_jid(kCarol), "are you there?");  // carol exists, never logged in
  // The server answers in order: once the ping is back, the message was handled (stored).
  EXPECT_EQ(alice.ping(broker().domain()), gloox::Event::PingPong);
  EXPECT_FALSE(alice.wait_message(of_type(gloox::Message::Error), std::chrono::milliseconds(0)))
      << "a message to an offline user was refused";
  auto& carol = client(kCarol);  // gloox sends initial presence once connected
  ASSERT_TRUE(carol.wait_connected());
  const auto kept =
      carol.wait_message([](const ReceivedMessage& m) { return m.body == "are you there?"; });
  ASSERT_TRUE(kept.has_value()) << "the offline message never reached carol";
  EXPECT_EQ(bare_of(kept->from), bare_jid(kAlice));
  EXPECT_TRUE(kept->delayed) << "an offline message carries when it was sent (XEP-0203)";
}

TEST_F(GlooxTest, ChatToAMalformedJidBouncesJidMalformed) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  alice.send_chat_to_raw_address("a@b@" + broker().domain(), "to nowhere");
  const auto bounce = alice.wait_message(of_type(gloox::Message::Error));
  ASSERT_TRUE(bounce.has_value()) << "no error for a malformed 'to'";
  EXPECT_EQ(bounce->error, gloox::StanzaErrorJidMalformed);
  // The session survives its own mistake.
  EXPECT_EQ(alice.ping(broker().domain()), gloox::Event::PingPong);
}

TEST_F(GlooxTest, IqInAnUnknownNamespaceGetsServiceUnavailable) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  const auto reply = alice.query_unknown_namespace(broker().domain());
  ASSERT_TRUE(reply.has_value()) << "an iq must always be answered (RFC 6120 §8.2.3)";
  EXPECT_EQ(reply->type, gloox::IQ::Error);
  EXPECT_EQ(reply->error, gloox::StanzaErrorServiceUnavailable);
}

TEST_F(GlooxTest, SigtermClosesSessionsAndExitsZero) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected());
  expect_broker_stopped();
  EXPECT_EQ(broker().stop(), 0) << "tcbroker did not exit 0 within the bound after SIGTERM";
  EXPECT_TRUE(alice.wait_disconnected().has_value()) << "the session outlived the server";
}

}  // namespace
}  // namespace tc::integration
