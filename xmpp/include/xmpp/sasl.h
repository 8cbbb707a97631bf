// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace tc::xmpp {

enum class ScramHash { Sha1, Sha256 };

/// "SCRAM-SHA-1" / "SCRAM-SHA-256".
std::string_view scram_mechanism_name(ScramHash hash);

/// What a server stores for one user and one hash (RFC 5802 §3): never the password.
/// All byte strings are raw (not base64).
struct ScramCredentials {
  ScramHash hash = ScramHash::Sha256;
  std::string salt;
  std::uint32_t iterations = 4096;
  std::string stored_key;  ///< H(ClientKey)
  std::string server_key;  ///< HMAC(SaltedPassword, "Server Key")
};

/// Derives the stored credentials from a (SASLprepped) password. Expensive by design
/// (PBKDF2 with `iterations`): never call on an I/O thread for a user-facing path.
ScramCredentials make_scram_credentials(ScramHash hash, std::string_view password,
                                        std::string_view salt, std::uint32_t iterations);

/// Checks a clear password (SASL PLAIN) against stored credentials, in constant time.
bool verify_password(const ScramCredentials& creds, std::string_view password);

/// Cryptographically random bytes (OpenSSL RAND_bytes).
std::string random_bytes(std::size_t n);
/// Printable random string for nonces and ids (base64url alphabet, no padding).
std::string random_token(std::size_t chars);

std::string base64_encode(std::string_view raw);
/// Strict decoding: fails with Errc::MalformedRequest on bad input.
Result<std::string> base64_decode(std::string_view text);

/// Server side of one SCRAM exchange (RFC 5802), sans-I/O. Channel binding is not offered
/// (gs2 flags "n" and "y" accepted, "p" refused). Usage:
///   auto user = s.on_client_first(msg);         // -> username, look credentials up
///   auto first = s.server_first(creds_or_null);  // unknown users get a fake challenge
///   auto fin = s.on_client_final(msg);           // -> "v=..." or Errc::NotAuthorized
class ScramServer {
 public:
  /// `nonce_for_test`, when not empty, replaces the random server nonce part.
  explicit ScramServer(ScramHash hash, std::string nonce_for_test = {});

  /// Parses client-first-message. Returns the SASLprepped username. Errc::MalformedRequest.
  Result<std::string> on_client_first(std::string_view message);
  /// Authorization identity from the gs2 header ("" when absent).
  const std::string& authzid() const { return authzid_; }
  /// server-first-message. With no credentials a deterministic fake salt is used, so an
  /// attacker cannot tell unknown users from wrong passwords; the exchange then fails.
  std::string server_first(const std::optional<ScramCredentials>& creds,
                           std::uint32_t fake_iterations = 4096);
  /// Verifies client-final-message; returns server-final-message ("v=...").
  /// Errc::NotAuthorized on a wrong proof, Errc::MalformedRequest on bad syntax.
  Result<std::string> on_client_final(std::string_view message);

 private:
  ScramHash hash_;
  std::string nonce_for_test_;
  std::string authzid_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string client_nonce_;
  std::string nonce_;
  std::string server_first_;
  std::optional<ScramCredentials> creds_;
};

/// Client side of SCRAM, used by tests and our own tools (tc-bench, tc-drill).
class ScramClient {
 public:
  ScramClient(ScramHash hash, std::string username, std::string password,
              std::string nonce_for_test = {});
  std::string client_first();
  /// Returns client-final-message. Errc::MalformedRequest on a bad server-first.
  Result<std::string> on_server_first(std::string_view message);
  /// Checks the server signature. Errc::NotAuthorized when it does not match.
  Result<void> on_server_final(std::string_view message);

 private:
  ScramHash hash_;
  std::string username_;
  std::string password_;
  std::string nonce_;
  std::string client_first_bare_;
  std::string auth_message_;
  std::string salted_password_;
};

/// Parsed SASL PLAIN message (RFC 4616): authzid NUL authcid NUL passwd.
struct PlainCredentials {
  std::string authzid;
  std::string username;
  std::string password;
};
/// Errc::MalformedRequest on bad syntax.
Result<PlainCredentials> parse_sasl_plain(std::string_view message);

}  // namespace tc::xmpp
