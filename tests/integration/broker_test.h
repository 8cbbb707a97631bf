// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gloox_client.h"
#include "harness.h"

namespace tc::integration {

inline const Account kAlice{"alice", "alice-Secret-1"};
inline const Account kBob{"bob", "bob-Secret-2"};
inline const Account kCarol{"carol", "carol-Secret-3"};

/// The last `max` bytes of `text`, for failure output that stays readable.
std::string tail(const std::string& text, std::size_t max = 30'000);

/// A fixture owning one tcbroker and the gloox clients of a test. After each test it checks the
/// server is still alive (unless the test stopped it on purpose) and that SIGTERM then ends it
/// with exit 0; on failure it prints the server's log and every client's XML transcript.
class BrokerTest : public ::testing::Test {
 protected:
  void start_broker(BrokerOptions options);
  Broker& broker() { return *broker_; }

  /// A gloox client for `account` on the broker; it starts connecting at once.
  GlooxClient& client(const Account& account, int sasl_mechanisms = kGlooxScramSha1);
  /// client() with the password replaced.
  GlooxClient& client_with_password(const Account& account, const std::string& password,
                                    int sasl_mechanisms = kGlooxScramSha1);

  std::string bare_jid(const Account& account) const {
    return account.name + "@" + broker_->domain();
  }

  /// For tests that stop the server themselves.
  void expect_broker_stopped() { broker_should_live_ = false; }

  void TearDown() override;

 private:
  std::optional<Broker> broker_;  // declared first: outlives the clients below
  std::vector<std::unique_ptr<GlooxClient>> clients_;
  std::vector<std::string> client_names_;
  bool broker_should_live_ = true;
};

}  // namespace tc::integration
