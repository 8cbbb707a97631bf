// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "storage/records.h"
#include "xmpp/sasl.h"

namespace tc::broker {

/// Normalises a username (nodeprep) and checks it can be the localpart of a JID.
/// Fails with xmpp::Errc::JidMalformed.
Result<std::string> normalize_username(std::string_view username);

/// Builds an account with fresh salts and SCRAM-SHA-1 and SCRAM-SHA-256 secrets (RFC 5802,
/// RFC 7677); the password itself is not kept. Runs PBKDF2 twice: call from a store worker
/// or a tool, never from an I/O thread. Fails with xmpp::Errc::MalformedRequest when the
/// password is empty or not valid under SASLprep.
Result<storage::AccountRecord> make_account(std::string username, std::string_view password,
                                            std::uint32_t iterations);

/// The stored secret for one hash as the SASL layer wants it.
xmpp::ScramCredentials to_credentials(const storage::AccountRecord& account, xmpp::ScramHash hash);

}  // namespace tc::broker
