// SPDX-License-Identifier: Apache-2.0
// tcctl against the database of a running tcbroker: what the admin changes, the next login sees.
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "broker_test.h"

namespace tc::integration {
namespace {

class TcctlTest : public BrokerTest {
 protected:
  void SetUp() override { start_broker({.accounts = {kAlice, kBob}}); }

  /// Runs tcctl and expects exit 0.
  std::string tcctl_ok(const std::vector<std::string>& args) {
    const auto result = broker().tcctl(args);
    EXPECT_EQ(result.exit_code, 0) << "tcctl failed:\n" << result.output;
    return result.output;
  }

  /// Logs `account` in with `password` and reports how that ended.
  std::optional<gloox::ConnectionError> login_outcome(const Account& account,
                                                      const std::string& password) {
    auto& session = client_with_password(account, password);
    if (session.wait_settled() == GlooxClient::State::Connected) {
      return gloox::ConnNoError;
    }
    return session.wait_disconnected(0ms);
  }
};

TEST_F(TcctlTest, UsersListJsonNamesEveryAccount) {
  const std::string out = tcctl_ok({"users", "list", "--json"});
  boost::system::error_code ec;
  const boost::json::value doc = boost::json::parse(out, ec);
  ASSERT_FALSE(ec) << "not JSON: " << out;
  // Whatever the exact shape, both usernames must appear as JSON strings.
  const std::string text = boost::json::serialize(doc);
  EXPECT_NE(text.find("\"alice"), std::string::npos) << text;
  EXPECT_NE(text.find("\"bob"), std::string::npos) << text;
}

TEST_F(TcctlTest, AddedWhileRunningCanLogIn) {
  const Account dave{"dave", "dave-Secret-4"};
  tcctl_ok({"users", "add", dave.name, "--password", dave.password});
  EXPECT_EQ(login_outcome(dave, dave.password), gloox::ConnNoError);
}

TEST_F(TcctlTest, PasswdReplacesThePasswordForTheNextLogin) {
  const std::string fresh = "alice-New-Secret-9";
  tcctl_ok({"users", "passwd", kAlice.name, "--password", fresh});
  EXPECT_EQ(login_outcome(kAlice, fresh), gloox::ConnNoError);
  EXPECT_EQ(login_outcome(kAlice, kAlice.password), gloox::ConnAuthenticationFailed);
}

TEST_F(TcctlTest, DelRemovesTheAccount) {
  tcctl_ok({"users", "del", kBob.name});
  EXPECT_EQ(login_outcome(kBob, kBob.password), gloox::ConnAuthenticationFailed);
  EXPECT_EQ(tcctl_ok({"users", "list"}).find("bob@"), std::string::npos);
  EXPECT_EQ(login_outcome(kAlice, kAlice.password), gloox::ConnNoError);
}

TEST_F(TcctlTest, AddingAnExistingAccountFails) {
  const auto result = broker().tcctl({"users", "add", kAlice.name, "--password", "other"});
  ASSERT_TRUE(result.exit_code.has_value()) << result.output;
  EXPECT_NE(*result.exit_code, 0) << "a second 'users add alice' succeeded:\n" << result.output;
  EXPECT_EQ(login_outcome(kAlice, kAlice.password), gloox::ConnNoError)
      << "the failed add changed alice's password";
}

}  // namespace
}  // namespace tc::integration
