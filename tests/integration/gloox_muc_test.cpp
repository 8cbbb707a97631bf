// SPDX-License-Identifier: Apache-2.0
// A chat room seen through gloox (TLS + SCRAM-SHA-1): the MUC suite in tests/muc covers
// XEP-0045/0313 in depth with slixmpp; this checks a second, independent client stack.
#include <gtest/gtest.h>

#include "broker_test.h"

namespace tc::integration {
namespace {

constexpr const char* kRoom = "gloox-room@conference.localhost";

class GlooxMucTest : public BrokerTest {
 protected:
  void SetUp() override { start_broker({.accounts = {kAlice, kBob}}); }

  /// Joins and waits for the room's subject message, which XEP-0045 §7.2.16 sends last.
  static void join(GlooxClient& c, const std::string& nick) {
    c.join_room(std::string(kRoom) + "/" + nick);
    const auto subject = c.wait_message([](const ReceivedMessage& m) {
      return m.type == gloox::Message::Groupchat && m.from == kRoom && m.body.empty();
    });
    ASSERT_TRUE(subject.has_value()) << c.transcript();
  }

  static void say(GlooxClient& c, const std::string& body) { c.send_groupchat(kRoom, body); }
};

TEST_F(GlooxMucTest, GroupchatIsReflectedAndBroadcastWithTheSameStanzaId) {
  auto& alice = client(kAlice);
  auto& bob = client(kBob);
  ASSERT_TRUE(alice.wait_connected()) << alice.transcript();
  ASSERT_TRUE(bob.wait_connected()) << bob.transcript();
  join(alice, "Alice");
  join(bob, "Bob");

  say(alice, "hello from gloox");
  const auto is_hello = [](const ReceivedMessage& m) {
    return m.type == gloox::Message::Groupchat && m.body == "hello from gloox";
  };
  const auto at_bob = bob.wait_message(is_hello);
  ASSERT_TRUE(at_bob.has_value()) << bob.transcript();
  EXPECT_EQ(at_bob->from, std::string(kRoom) + "/Alice");
  EXPECT_FALSE(at_bob->stanza_id.empty()) << "no XEP-0359 stanza-id";
  const auto reflection = alice.wait_message(is_hello);
  ASSERT_TRUE(reflection.has_value()) << alice.transcript();
  EXPECT_EQ(reflection->stanza_id, at_bob->stanza_id);
}

TEST_F(GlooxMucTest, AJoinerGetsTheHistoryWithADelay) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected()) << alice.transcript();
  join(alice, "Alice");
  say(alice, "before bob came");
  ASSERT_TRUE(
      alice.wait_message([](const ReceivedMessage& m) { return m.body == "before bob came"; })
          .has_value())
      << alice.transcript();

  auto& bob = client(kBob);
  ASSERT_TRUE(bob.wait_connected()) << bob.transcript();
  bob.join_room(std::string(kRoom) + "/Bob");
  const auto history = bob.wait_message([](const ReceivedMessage& m) {
    return m.type == gloox::Message::Groupchat && m.body == "before bob came";
  });
  ASSERT_TRUE(history.has_value()) << bob.transcript();
  EXPECT_TRUE(history->delayed) << "history needs a XEP-0203 delay";
  EXPECT_FALSE(history->stanza_id.empty());
}

TEST_F(GlooxMucTest, SelfPingAnswersOnlyWhileJoined) {
  auto& alice = client(kAlice);
  ASSERT_TRUE(alice.wait_connected()) << alice.transcript();
  // XEP-0410: not joined yet, so the room says so.
  EXPECT_EQ(alice.ping(std::string(kRoom) + "/Alice"), gloox::Event::PingError);
  join(alice, "Alice");
  EXPECT_EQ(alice.ping(std::string(kRoom) + "/Alice"), gloox::Event::PingPong);
}

}  // namespace
}  // namespace tc::integration
