// SPDX-License-Identifier: Apache-2.0
// Runs the slixmpp scripts beside this file against a fresh tcbroker. slixmpp brings a second,
// independent client stack (Python, OpenSSL, SCRAM-SHA-256, XEP-0198, XEP-0077).
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "broker_test.h"

#ifndef TC_INTEGRATION_SOURCE_DIR
#error "TC_INTEGRATION_SOURCE_DIR must name tests/integration"
#endif
#ifndef TC_PYTHON
#define TC_PYTHON "/usr/bin/python3"
#endif

namespace tc::integration {
namespace {

constexpr Millis kScriptTimeout = 120s;

/// Debian's interpreter, which has python3-slixmpp (a pyenv `python3` on PATH may not).
std::string python() {
  const std::string env = env_var("TC_PYTHON");
  return !env.empty() ? env : TC_PYTHON;
}

class SlixmppTest : public BrokerTest {
 protected:
  /// Runs tests/integration/<script> with `args`; the result's output is the script's log.
  ProcessResult run_script(const std::string& script, const std::vector<std::string>& args) {
    // -B: no __pycache__ in the source tree.
    std::vector<std::string> argv{python(),
                                  "-B",
                                  std::string(TC_INTEGRATION_SOURCE_DIR) + "/" + script,
                                  "--host",
                                  "127.0.0.1",
                                  "--port",
                                  std::to_string(broker().client_port()),
                                  "--debug"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, kScriptTimeout, broker().dir() / (script + ".log"));
  }

  /// `tcctl users list` output (one JID per line); fails the test if tcctl does.
  std::string list_users() {
    const auto listed = broker().tcctl({"users", "list"});
    EXPECT_EQ(listed.exit_code, 0) << "tcctl users list:\n" << listed.output;
    return listed.output;
  }
};

TEST_F(SlixmppTest, Basic) {
  start_broker({.accounts = {kAlice, kBob, kCarol}});
  const auto result = run_script(
      "slixmpp_basic.py",
      {"--jid", bare_jid(kAlice), "--password", kAlice.password, "--peer-jid", bare_jid(kBob),
       "--peer-password", kBob.password, "--unknown-jid", "nobody@" + broker().domain()});
  EXPECT_EQ(result.exit_code, 0) << tail(result.output);
}

TEST_F(SlixmppTest, InBandRegistrationCreatesTheAccountWhenEnabled) {
  start_broker({.accounts = {kAlice}, .registration = true});
  const Account dave{"dave", "dave-Secret-4"};
  const auto result = run_script("slixmpp_register.py", {"--jid", bare_jid(dave), "--password",
                                                         dave.password, "--expect", "created"});
  EXPECT_EQ(result.exit_code, 0) << tail(result.output);
  EXPECT_NE(list_users().find("dave@localhost"), std::string::npos) << "dave is not in the store";

  // The new account works for a client that had nothing to do with creating it.
  auto& gloox_dave = client(dave);
  EXPECT_TRUE(gloox_dave.wait_connected());
}

TEST_F(SlixmppTest, InBandRegistrationIsRefusedWhenDisabled) {
  start_broker({.accounts = {kAlice}, .registration = false});
  const Account dave{"dave", "dave-Secret-4"};
  const auto result = run_script("slixmpp_register.py", {"--jid", bare_jid(dave), "--password",
                                                         dave.password, "--expect", "refused"});
  EXPECT_EQ(result.exit_code, 0) << tail(result.output);
  const std::string users = list_users();
  EXPECT_NE(users.find("alice@localhost"), std::string::npos) << "the listing is broken: " << users;
  EXPECT_EQ(users.find("dave@"), std::string::npos) << "dave was registered: " << users;
}

}  // namespace
}  // namespace tc::integration
