// SPDX-License-Identifier: Apache-2.0
// Room on a fake RoomHost: deliveries are recorded instead of sent, and the store is a real
// StoreWorker on an in-memory SQLite database whose completions come back to an io_context
// the test runs by hand (settle()), so "before the commit" and "after" are distinct steps.
#include "muc/room.h"

#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "xmpp/namespaces.h"

#include "shard/store_worker.h"

namespace tc::broker::muc {
namespace {

namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

constexpr const char* kRoom = "room@conference.example.com";
constexpr const char* kAlice = "alice@example.com/phone";
constexpr const char* kBob = "bob@example.com/laptop";

class FakeHost final : public RoomHost {
 public:
  FakeHost() : store_("sqlite::memory:", "room-test") {
    config_.domain = "example.com";
    EXPECT_TRUE(store_.call_blocking([](storage::Store& s) { return s.migrate(); }));
  }

  void deliver(std::vector<Delivery> deliveries) override {
    for (auto& d : deliveries) {
      delivered.push_back(std::move(d));
    }
  }
  StoreWorker& store() override { return store_; }
  boost::asio::any_io_executor executor() override { return io_.get_executor(); }
  const Config& config() const override { return config_; }
  bool is_service_admin(const Jid&) const override { return false; }
  bool reserve_persistent_room() override { return true; }
  void release_persistent_room() override {}
  void on_room_empty(const Jid&) override {}
  void on_room_destroyed(const Jid& room) override { destroyed.push_back(room.bare_str()); }
  std::string partition_of(const Jid&) const override { return config_.node_name; }
  std::optional<storage::Fence> fence_for(const Jid&) const override { return std::nullopt; }

  /// Runs the store's completions until none is outstanding.
  void settle() {
    io_.restart();
    io_.run_for(std::chrono::seconds(20));
  }

  /// The wire of every delivery to `to`, in order.
  std::vector<std::string> to(const std::string& to) const {
    std::vector<std::string> out;
    for (const auto& d : delivered) {
      if (d.to.str() == to) {
        out.push_back(*d.wire);
      }
    }
    return out;
  }

  Config& mutable_config() { return config_; }

  std::vector<Delivery> delivered;
  std::vector<std::string> destroyed;

 private:
  Config config_;
  boost::asio::io_context io_;
  StoreWorker store_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// How many of `wires` contain `needle`.
std::size_t count_with(const std::vector<std::string>& wires, const std::string& needle) {
  std::size_t n = 0;
  for (const auto& w : wires) {
    n += contains(w, needle) ? 1 : 0;
  }
  return n;
}

XmlElement join_presence(const std::string& from, const std::string& nick) {
  XmlElement p("presence", ns::kClient);
  p.set_attr("from", from).set_attr("to", std::string(kRoom) + "/" + nick);
  p.add_child("x", ns::kMuc);
  return p;
}

XmlElement groupchat(const std::string& from, const std::string& body) {
  XmlElement m("message", ns::kClient);
  m.set_attr("from", from).set_attr("to", kRoom).set_attr("type", "groupchat");
  m.set_attr("id", "m1");
  m.add_child("body", ns::kClient).add_text(body);
  return m;
}

XmlElement iq(const std::string& from, const std::string& type, const std::string& id,
              const char* query_ns) {
  XmlElement q("iq", ns::kClient);
  q.set_attr("from", from).set_attr("to", kRoom).set_attr("type", type).set_attr("id", id);
  q.add_child("query", query_ns);
  return q;
}

class RoomTest : public ::testing::Test {
 protected:
  /// Alice creates the room by joining it; Bob joins after her.
  void create_and_join_both() {
    room_ = Room::create(host_, *Jid::parse(kRoom), *Jid::parse(kAlice));
    room_->on_presence(join_presence(kAlice, "Alice"), *Jid::parse(kAlice), Completion{});
    room_->on_presence(join_presence(kBob, "Bob"), *Jid::parse(kBob), Completion{});
    host_.settle();
    host_.delivered.clear();
  }

  FakeHost host_;
  std::shared_ptr<Room> room_;  // after host_: destroyed first
};

TEST_F(RoomTest, JoiningANewRoomSays110And201) {
  room_ = Room::create(host_, *Jid::parse(kRoom), *Jid::parse(kAlice));
  room_->on_presence(join_presence(kAlice, "Alice"), *Jid::parse(kAlice), Completion{});
  const auto alice = host_.to(kAlice);
  ASSERT_FALSE(alice.empty());
  const std::string& self = alice.front();
  EXPECT_TRUE(contains(self, "<presence")) << self;
  EXPECT_TRUE(contains(self, "from=\"room@conference.example.com/Alice\"")) << self;
  EXPECT_TRUE(contains(self, R"(affiliation="owner")")) << self;
  EXPECT_TRUE(contains(self, R"(role="moderator")")) << self;
  EXPECT_TRUE(contains(self, R"(code="110")")) << self;
  EXPECT_TRUE(contains(self, R"(code="201")")) << self;
  // Then the subject (empty), and nothing else: a new room has no history.
  ASSERT_EQ(alice.size(), 2u);
  EXPECT_TRUE(contains(alice.back(), "<subject")) << alice.back();
  EXPECT_EQ(room_->occupant_count(), 1u);
  host_.settle();
}

TEST_F(RoomTest, ASecondOccupantSeesThePresencesAndOnlyTheCreatorGets201) {
  room_ = Room::create(host_, *Jid::parse(kRoom), *Jid::parse(kAlice));
  room_->on_presence(join_presence(kAlice, "Alice"), *Jid::parse(kAlice), Completion{});
  host_.delivered.clear();
  room_->on_presence(join_presence(kBob, "Bob"), *Jid::parse(kBob), Completion{});

  const auto bob = host_.to(kBob);
  // Bob learns of Alice first, then of himself (110, no 201).
  ASSERT_GE(bob.size(), 2u);
  EXPECT_TRUE(contains(bob[0], "from=\"room@conference.example.com/Alice\"")) << bob[0];
  EXPECT_FALSE(contains(bob[0], R"(code="110")")) << bob[0];
  EXPECT_TRUE(contains(bob[1], "from=\"room@conference.example.com/Bob\"")) << bob[1];
  EXPECT_TRUE(contains(bob[1], R"(code="110")")) << bob[1];
  EXPECT_FALSE(contains(bob[1], R"(code="201")")) << bob[1];
  EXPECT_TRUE(contains(bob[1], R"(affiliation="none")")) << bob[1];
  EXPECT_TRUE(contains(bob[1], R"(role="participant")")) << bob[1];

  const auto alice = host_.to(kAlice);
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_TRUE(contains(alice[0], "from=\"room@conference.example.com/Bob\"")) << alice[0];
  EXPECT_FALSE(contains(alice[0], R"(code="110")")) << alice[0];
  // Semi-anonymous by default, but Alice moderates: she sees Bob's real JID.
  EXPECT_TRUE(contains(alice[0], "jid=\"bob@example.com/laptop\"")) << alice[0];
  EXPECT_EQ(room_->occupant_count(), 2u);
  host_.settle();
}

TEST_F(RoomTest, GroupchatIsReflectedOnlyAfterTheStoreCommits) {
  create_and_join_both();
  bool done = false;
  room_->on_message(groupchat(kAlice, "hello"), *Jid::parse(kAlice),
                    Completion([&] { done = true; }));
  // The durability rule: no one, the sender included, sees it before the commit.
  EXPECT_TRUE(host_.delivered.empty());
  EXPECT_FALSE(done);

  host_.settle();
  EXPECT_TRUE(done);
  for (const char* who : {kAlice, kBob}) {
    const auto got = host_.to(who);
    ASSERT_EQ(got.size(), 1u) << who;
    EXPECT_TRUE(contains(got[0], "<body>hello</body>")) << got[0];
    EXPECT_TRUE(contains(got[0], "from=\"room@conference.example.com/Alice\"")) << got[0];
    EXPECT_TRUE(contains(got[0], "<stanza-id")) << got[0];
  }
  // Now in the history a later joiner gets.
  host_.delivered.clear();
  const char* carol = "carol@example.com/tablet";
  room_->on_presence(join_presence(carol, "Carol"), *Jid::parse(carol), Completion{});
  EXPECT_EQ(count_with(host_.to(carol), "<body>hello</body>"), 1u);
  host_.settle();
}

TEST_F(RoomTest, CompletionsArrivingAfterADestroyDoNothing) {
  create_and_join_both();
  XmlElement destroy = iq(kAlice, "set", "d1", ns::kMucOwner);
  destroy.child("query", ns::kMucOwner)->add_child("destroy", ns::kMucOwner);
  room_->on_iq(destroy, *Jid::parse(kAlice), Completion{});
  // Queued behind the destroy: an archive query and a message, both accepted by the room
  // that still stands, both completing after it is gone.
  bool mam_done = false;
  bool message_done = false;
  room_->on_iq(iq(kBob, "set", "q1", ns::kMam), *Jid::parse(kBob),
               Completion([&] { mam_done = true; }));
  room_->on_message(groupchat(kBob, "too late"), *Jid::parse(kBob),
                    Completion([&] { message_done = true; }));
  EXPECT_TRUE(host_.delivered.empty());

  host_.settle();
  EXPECT_EQ(host_.destroyed, std::vector<std::string>{kRoom});
  EXPECT_TRUE(room_->empty());
  // Alice's result and both occupants' removal, and nothing after: no archive page (its
  // <fin/>), no message and no error.
  EXPECT_EQ(count_with(host_.to(kAlice), R"(id="d1")"), 1u);
  for (const char* who : {kAlice, kBob}) {
    EXPECT_EQ(count_with(host_.to(who), "<destroy"), 1u) << who;
    EXPECT_EQ(count_with(host_.to(who), "too late"), 0u) << who;
    EXPECT_EQ(count_with(host_.to(who), "<fin"), 0u) << who;
    EXPECT_EQ(count_with(host_.to(who), R"(type="error")"), 0u) << who;
  }
  EXPECT_EQ(host_.delivered.size(), 3u);
  // The sessions are never left waiting: dropped completions fire.
  EXPECT_TRUE(mam_done);
  EXPECT_TRUE(message_done);
}

TEST_F(RoomTest, AnAdminItemChangeIsAppliedAfterItIsStored) {
  create_and_join_both();
  XmlElement set = iq(kAlice, "set", "a1", ns::kMucAdmin);
  set.child("query", ns::kMucAdmin)
      ->add_child("item", ns::kMucAdmin)
      .set_attr("jid", "bob@example.com")
      .set_attr("affiliation", "admin");
  bool done = false;
  room_->on_iq(set, *Jid::parse(kAlice), Completion([&] { done = true; }));
  EXPECT_TRUE(host_.delivered.empty());

  host_.settle();
  EXPECT_TRUE(done);
  const auto alice = host_.to(kAlice);
  EXPECT_EQ(count_with(alice, R"(type="result")"), 1u);
  // Everyone sees Bob become an admin, and so a moderator.
  for (const char* who : {kAlice, kBob}) {
    const auto got = host_.to(who);
    EXPECT_EQ(count_with(got, R"(affiliation="admin" role="moderator")"), 1u) << who;
  }

  // The list of admins now names him.
  host_.delivered.clear();
  XmlElement get = iq(kAlice, "get", "a2", ns::kMucAdmin);
  get.child("query", ns::kMucAdmin)
      ->add_child("item", ns::kMucAdmin)
      .set_attr("affiliation", "admin");
  room_->on_iq(get, *Jid::parse(kAlice), Completion{});
  ASSERT_EQ(host_.to(kAlice).size(), 1u);
  EXPECT_TRUE(contains(host_.to(kAlice)[0], R"(affiliation="admin" jid="bob@example.com")"))
      << host_.to(kAlice)[0];
}

TEST_F(RoomTest, AKickIsAppliedAtOnceWith307) {
  create_and_join_both();
  XmlElement set = iq(kAlice, "set", "k1", ns::kMucAdmin);
  set.child("query", ns::kMucAdmin)
      ->add_child("item", ns::kMucAdmin)
      .set_attr("nick", "Bob")
      .set_attr("role", "none");
  room_->on_iq(set, *Jid::parse(kAlice), Completion{});
  EXPECT_EQ(count_with(host_.to(kBob), R"(code="307")"), 1u);
  EXPECT_EQ(count_with(host_.to(kAlice), R"(code="307")"), 1u);
  EXPECT_EQ(count_with(host_.to(kAlice), R"(type="result")"), 1u);
  EXPECT_EQ(room_->occupant_count(), 1u);
}

TEST_F(RoomTest, ErrorsCarryTheTypedCondition) {
  host_.mutable_config().muc_default_max_users = 2;
  create_and_join_both();
  // Only moderators change roles: forbidden (auth), from the room, byte for byte.
  XmlElement set = iq(kBob, "set", "e1", ns::kMucAdmin);
  set.child("query", ns::kMucAdmin)
      ->add_child("item", ns::kMucAdmin)
      .set_attr("nick", "Alice")
      .set_attr("role", "visitor");
  room_->on_iq(set, *Jid::parse(kBob), Completion{});
  ASSERT_EQ(host_.to(kBob).size(), 1u);
  EXPECT_EQ(host_.to(kBob)[0],
            R"(<iq id="e1" from="room@conference.example.com" type="error" )"
            R"(to="bob@example.com/laptop"><error type="auth" by="room@conference.example.com" )"
            R"(code="403">)"
            R"(<forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>)"
            R"(<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">only moderators may change )"
            R"(roles</text></error></iq>)");

  // A nickname in use: conflict (cancel); the error presence keeps the MUC <x/>.
  host_.delivered.clear();
  const char* other = "mallory@example.com/x";
  room_->on_presence(join_presence(other, "Alice"), *Jid::parse(other), Completion{});
  ASSERT_EQ(host_.to(other).size(), 1u);
  EXPECT_EQ(host_.to(other)[0],
            R"(<presence from="room@conference.example.com/Alice" type="error" )"
            R"(to="mallory@example.com/x"><x xmlns="http://jabber.org/protocol/muc"/>)"
            R"(<error type="cancel" by="room@conference.example.com" code="409">)"
            R"(<conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>)"
            R"(<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">that nickname is in use</text>)"
            R"(</error></presence>)");

  // A message of the wrong type: bad-request (modify); an error message keeps its body.
  host_.delivered.clear();
  XmlElement chat = groupchat(kAlice, "hi");
  chat.set_attr("type", "chat");
  room_->on_message(chat, *Jid::parse(kAlice), Completion{});
  ASSERT_EQ(host_.to(kAlice).size(), 1u);
  EXPECT_TRUE(contains(host_.to(kAlice)[0], R"(<body>hi</body><error type="modify" by=)"))
      << host_.to(kAlice)[0];
  EXPECT_TRUE(contains(host_.to(kAlice)[0], "<bad-request "));

  // A full room: service-unavailable with type wait, not the RFC's default (cancel).
  host_.delivered.clear();
  room_->on_presence(join_presence(other, "Mallory"), *Jid::parse(other), Completion{});
  ASSERT_EQ(host_.to(other).size(), 1u);
  EXPECT_TRUE(contains(host_.to(other)[0], R"(<error type="wait" by=)")) << host_.to(other)[0];
  EXPECT_TRUE(contains(host_.to(other)[0], "<service-unavailable ")) << host_.to(other)[0];
}

}  // namespace
}  // namespace tc::broker::muc
