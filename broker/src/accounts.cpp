// SPDX-License-Identifier: Apache-2.0
#include "accounts.h"

#include <chrono>

#include "xmpp/errc.h"
#include "xmpp/jid.h"

namespace tc::broker {
namespace {

storage::ScramSecret to_secret(const xmpp::ScramCredentials& c) {
  return {c.salt, c.iterations, c.stored_key, c.server_key};
}

}  // namespace

Result<std::string> normalize_username(std::string_view username) {
  auto prepped = xmpp::nodeprep(username);
  if (!prepped || prepped->empty()) {
    return make_error_code(xmpp::Errc::JidMalformed);
  }
  return prepped;
}

Result<storage::AccountRecord> make_account(std::string username, std::string_view password,
                                            std::uint32_t iterations) {
  auto prepped = xmpp::saslprep(password);
  if (!prepped || prepped->empty()) {
    return make_error_code(xmpp::Errc::MalformedRequest);
  }
  storage::AccountRecord account;
  account.username = std::move(username);
  account.scram_sha1 = to_secret(xmpp::make_scram_credentials(xmpp::ScramHash::Sha1, *prepped,
                                                              xmpp::random_bytes(16), iterations));
  account.scram_sha256 = to_secret(xmpp::make_scram_credentials(
      xmpp::ScramHash::Sha256, *prepped, xmpp::random_bytes(16), iterations));
  account.created_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  return account;
}

xmpp::ScramCredentials to_credentials(const storage::AccountRecord& account, xmpp::ScramHash hash) {
  const auto& s = hash == xmpp::ScramHash::Sha1 ? account.scram_sha1 : account.scram_sha256;
  return {hash, s.salt, s.iterations, s.stored_key, s.server_key};
}

}  // namespace tc::broker
