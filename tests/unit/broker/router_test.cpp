// SPDX-License-Identifier: Apache-2.0
#include "routing/router.h"

#include <gtest/gtest.h>

#include "net/session.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker {
namespace {

// The router only stores and hands back session pointers; unconnected sessions suffice.
class RouterTest : public ::testing::Test {
 protected:
  std::shared_ptr<Session> make_session() {
    return std::make_shared<Session>(
        server_, shard_,
        std::make_shared<net::TcpTransport>(net::TcpTransport::Tcp::socket(shard_.context())));
  }
  static xmpp::Jid jid(std::string_view s) { return *xmpp::Jid::parse(s); }

  ServerContext server_;
  Shard shard_{0, "sqlite::memory:"};
  Router router_;
};

TEST_F(RouterTest, BindFindUnbind) {
  auto a = make_session();
  EXPECT_EQ(router_.bind(jid("alice@x/phone"), a), nullptr);
  EXPECT_EQ(router_.find(jid("alice@x/phone")), a);
  EXPECT_EQ(router_.find(jid("alice@x/desk")), nullptr);
  EXPECT_EQ(router_.size(), 1u);
  router_.unbind(jid("alice@x/phone"), a.get());
  EXPECT_EQ(router_.find(jid("alice@x/phone")), nullptr);
  EXPECT_EQ(router_.size(), 0u);
}

TEST_F(RouterTest, SessionsOfABareJid) {
  auto phone = make_session();
  auto desk = make_session();
  auto bob = make_session();
  router_.bind(jid("alice@x/phone"), phone);
  router_.bind(jid("alice@x/desk"), desk);
  router_.bind(jid("bob@x/r"), bob);
  EXPECT_EQ(router_.sessions_of(jid("alice@x")).size(), 2u);
  EXPECT_EQ(router_.sessions_of(jid("carol@x")).size(), 0u);
  EXPECT_EQ(router_.all().size(), 3u);
}

TEST_F(RouterTest, ConflictReturnsTheOldSessionAndStaleUnbindIsIgnored) {
  auto first = make_session();
  auto second = make_session();
  router_.bind(jid("alice@x/r"), first);
  EXPECT_EQ(router_.bind(jid("alice@x/r"), second), first);
  // The replaced session's late unbind must not remove its successor.
  router_.unbind(jid("alice@x/r"), first.get());
  EXPECT_EQ(router_.find(jid("alice@x/r")), second);
  EXPECT_EQ(router_.size(), 1u);
}

// Records what the router announces to the other nodes.
class RecordingRoutes : public RemoteRoutes {
 public:
  void announce(const xmpp::Jid& full, std::int64_t bound_at, bool bound) override {
    events.push_back((bound ? "+" : "-") + full.str() + "@" + std::to_string(bound_at));
  }
  void forward_to_user(const std::string&, const xmpp::Jid&, const xmpp::XmlElement&,
                       bool) override {}
  std::vector<std::string> events;
};

TEST_F(RouterTest, BindAndUnbindAreAnnouncedToTheOtherNodes) {
  RecordingRoutes routes;
  router_.attach_remote(&routes);
  auto a = make_session();
  router_.bind(jid("alice@x/phone"), a, 42);
  router_.unbind(jid("alice@x/phone"), a.get());
  router_.unbind(jid("alice@x/phone"), a.get());  // gone already: nothing to announce
  EXPECT_EQ(routes.events, (std::vector<std::string>{"+alice@x/phone@42", "-alice@x/phone@0"}));
}

TEST_F(RouterTest, RemoteDirectoryTracksEachNodesSessions) {
  router_.remote_bound("n1", "n2", jid("alice@x/phone"), 10);
  router_.remote_bound("n1", "n3", jid("alice@x/desk"), 11);
  router_.remote_bound("n1", "n2", jid("bob@x/r"), 12);
  EXPECT_EQ(router_.remote_size(), 3u);
  EXPECT_EQ(router_.remote_node_of(jid("alice@x/phone")), "n2");
  EXPECT_EQ(router_.remote_node_of(jid("alice@x/tablet")), std::nullopt);
  EXPECT_EQ(router_.remote_sessions_of(jid("alice@x")).size(), 2u);
  // An end announced by a node that no longer serves the JID changes nothing.
  router_.remote_unbound("n3", jid("alice@x/phone"));
  EXPECT_EQ(router_.remote_node_of(jid("alice@x/phone")), "n2");
  router_.remote_unbound("n2", jid("alice@x/phone"));
  EXPECT_EQ(router_.remote_node_of(jid("alice@x/phone")), std::nullopt);
  // A node whose link went down takes all its sessions with it.
  router_.remote_drop("n2");
  EXPECT_EQ(router_.remote_size(), 1u);
  EXPECT_EQ(router_.remote_node_of(jid("alice@x/desk")), "n3");
  EXPECT_TRUE(router_.remote_sessions_of(jid("bob@x")).empty());
}

TEST_F(RouterTest, TheNewerSessionOfAFullJidWinsAcrossNodes) {
  auto a = make_session();
  router_.bind(jid("alice@x/phone"), a, 100);
  EXPECT_FALSE(router_.remote_bound("n1", "n2", jid("alice@x/phone"), 99));  // older: ours stays
  EXPECT_TRUE(router_.remote_bound("n1", "n2", jid("alice@x/phone"), 101));  // newer: ours goes
  // The same millisecond: the greater node name wins, the same answer on both nodes.
  EXPECT_TRUE(router_.remote_bound("n1", "n2", jid("alice@x/phone"), 100));
  EXPECT_FALSE(router_.remote_bound("n3", "n2", jid("alice@x/phone"), 100));
  const auto locals = router_.locals();
  ASSERT_EQ(locals.size(), 1u);
  EXPECT_EQ(locals[0].full.str(), "alice@x/phone");
  EXPECT_EQ(locals[0].bound_at, 100);
}

TEST_F(RouterTest, ForeignRouteServesEveryJidOutsideTheLocalDomain) {
  auto link = make_session();  // stands for the component link
  auto local = make_session();
  router_.bind(jid("bob@localhost/r"), local);
  EXPECT_EQ(router_.find(jid("alice@example.org/phone")), nullptr);
  router_.set_foreign_route("localhost", link);
  EXPECT_EQ(router_.find(jid("alice@example.org/phone")), link);
  EXPECT_EQ(router_.sessions_of(jid("alice@example.org")),
            std::vector<std::shared_ptr<ClientStream>>{link});
  // Local users stay local, present or not.
  EXPECT_EQ(router_.find(jid("bob@localhost/r")), local);
  EXPECT_EQ(router_.find(jid("carol@localhost/r")), nullptr);
  // Only the link that set the route may clear it (a late detach of an old connection).
  router_.clear_foreign_route(local.get());
  EXPECT_EQ(router_.find(jid("alice@example.org/phone")), link);
  router_.clear_foreign_route(link.get());
  EXPECT_EQ(router_.find(jid("alice@example.org/phone")), nullptr);
}

}  // namespace
}  // namespace tc::broker
