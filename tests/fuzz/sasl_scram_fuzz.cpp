// SPDX-License-Identifier: Apache-2.0
// Drives ScramServer with attacker-chosen messages. Input: one mode byte (bit 0: SHA-256,
// bit 1: the user exists), then client-first-message, '\n', client-final-message. The server
// nonce part and the credentials are those of RFC 5802 §5 / RFC 7677 §3, so the RFC exchanges
// in the corpus authenticate. Also exercises the client, PLAIN and base64 parsers.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "xmpp/sasl.h"

namespace {

using tc::xmpp::ScramCredentials;
using tc::xmpp::ScramHash;

const ScramCredentials& rfc_credentials(ScramHash hash) {
  // PBKDF2 is slow on purpose: derive each once per process.
  static const ScramCredentials sha1 = tc::xmpp::make_scram_credentials(
      ScramHash::Sha1, "pencil", tc::xmpp::base64_decode("QSXCR+Q6sek8bf92").value(), 4096);
  static const ScramCredentials sha256 = tc::xmpp::make_scram_credentials(
      ScramHash::Sha256, "pencil", tc::xmpp::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").value(),
      4096);
  return hash == ScramHash::Sha1 ? sha1 : sha256;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Strict base64 has exactly one encoding per byte string.
  if (auto decoded = tc::xmpp::base64_decode(input)) {
    if (tc::xmpp::base64_encode(*decoded) != input) {
      __builtin_trap();
    }
  }
  (void)tc::xmpp::parse_sasl_plain(input);

  if (input.empty()) {
    return 0;
  }
  const auto mode = static_cast<unsigned char>(input[0]);
  const ScramHash hash = (mode & 1U) != 0 ? ScramHash::Sha256 : ScramHash::Sha1;
  const bool known_user = (mode & 2U) != 0;
  std::string_view rest = input.substr(1);
  const auto newline = rest.find('\n');
  const std::string_view client_first = rest.substr(0, newline);
  const std::string_view client_final =
      newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);

  tc::xmpp::ScramServer server(
      hash, hash == ScramHash::Sha1 ? "3rfcNHYJY1ZVvWVs7j" : "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  if (auto user = server.on_client_first(client_first)) {
    std::optional<ScramCredentials> creds;
    if (known_user) {
      creds = rfc_credentials(hash);
    }
    const std::string first = server.server_first(creds, 16);
    auto verdict = server.on_client_final(client_final);
    // A fake challenge must never authenticate anyone.
    if (verdict && !known_user) {
      __builtin_trap();
    }
  }

  // The client side parses the same bytes as a server-first-message (few iterations only).
  tc::xmpp::ScramClient client(hash, "user", "pencil", "fyko");
  (void)client.client_first();
  const auto count_at = rest.find(",i=");
  std::string_view count;
  if (count_at != std::string_view::npos) {
    count = rest.substr(count_at + 3);
    count = count.substr(0, count.find(','));
  }
  if (count.size() <= 2) {
    (void)client.on_server_first(rest);
  }
  (void)client.on_server_final(rest);
  return 0;
}
