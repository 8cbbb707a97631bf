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
    return std::make_shared<Session>(server_, shard_,
                                     net::Transport::Tcp::socket(shard_.context()));
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

}  // namespace
}  // namespace tc::broker
