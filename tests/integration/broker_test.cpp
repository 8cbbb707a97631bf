// SPDX-License-Identifier: Apache-2.0
#include "broker_test.h"

#include <iostream>

namespace tc::integration {

std::string tail(const std::string& text, std::size_t max) {
  if (text.size() <= max) {
    return text;
  }
  return "[... " + std::to_string(text.size() - max) + " bytes cut ...]\n" +
         text.substr(text.size() - max);
}

void BrokerTest::start_broker(BrokerOptions options) {
  broker_.emplace(std::move(options));
}

GlooxClient& BrokerTest::client(const Account& account, int sasl_mechanisms) {
  return client_with_password(account, account.password, sasl_mechanisms);
}

GlooxClient& BrokerTest::client_with_password(const Account& account, const std::string& password,
                                              int sasl_mechanisms) {
  GlooxClient::Options options;
  options.jid = bare_jid(account);
  options.password = password;
  options.port = broker_->client_port();
  options.sasl_mechanisms = sasl_mechanisms;
  clients_.push_back(std::make_unique<GlooxClient>(std::move(options)));
  client_names_.push_back(account.name + " #" + std::to_string(clients_.size()));
  return *clients_.back();
}

void BrokerTest::TearDown() {
  if (broker_ && broker_should_live_) {
    EXPECT_TRUE(broker_->alive()) << "tcbroker (pid " << broker_->pid()
                                  << ") exited during the test";
    // Whatever the test left behind (sessions included), SIGTERM must end the server cleanly.
    if (broker_->alive()) {
      EXPECT_EQ(broker_->stop(), 0) << "tcbroker did not exit 0 after SIGTERM";
    }
  }
  if (!HasFailure()) {
    return;
  }
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    std::cerr << "---- gloox transcript of " << client_names_[i] << " ----\n"
              << tail(clients_[i]->transcript(), 20'000);
  }
  if (broker_) {
    std::string log = broker_->log();
    // A sanitizer report ends the log and its start matters most: show it whole, apart.
    std::string report;
    if (const auto at = log.find("==ERROR: "); at != std::string::npos) {
      report = log.substr(log.rfind('\n', at) + 1);
      log.resize(log.size() - report.size());
    }
    std::cerr << "---- tcbroker log (" << broker_->dir().string() << ") ----\n"
              << tail(log) << "\n---- end of tcbroker log ----\n";
    if (!report.empty()) {
      std::cerr << "---- tcbroker sanitizer report ----\n" << tail(report, 60'000) << "\n";
    }
  }
}

}  // namespace tc::integration
