// SPDX-License-Identifier: Apache-2.0
#include "xmpp/sasl.h"

#include <array>
#include <charconv>
#include <climits>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/assert.h"
#include "xmpp/errc.h"
#include "xmpp/jid.h"

#include "utf8.h"

namespace tc::xmpp {
namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBase64UrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kNonceChars = 24;
constexpr std::size_t kFakeSaltBytes = 16;
// RFC 4616 §2: each of authzid, authcid and passwd is at most 255 octets.
constexpr std::size_t kMaxPlainField = 255;

boost::system::error_code malformed() {
  return make_error_code(Errc::MalformedRequest);
}
boost::system::error_code not_authorized() {
  return make_error_code(Errc::NotAuthorized);
}

const EVP_MD* digest(ScramHash hash) {
  return hash == ScramHash::Sha1 ? EVP_sha1() : EVP_sha256();
}

std::string hmac(ScramHash hash, std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  const unsigned char* ok =
      HMAC(digest(hash), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  TC_CHECK(ok != nullptr, "OpenSSL HMAC failed");
  return {reinterpret_cast<const char*>(out.data()), len};
}

std::string hash_of(ScramHash hash, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  const int ok = EVP_Digest(data.data(), data.size(), out.data(), &len, digest(hash), nullptr);
  TC_CHECK(ok == 1, "OpenSSL digest failed");
  return {reinterpret_cast<const char*>(out.data()), len};
}

// RFC 5802 §2.2 Hi(): PBKDF2 with HMAC-H, one output block.
std::string salted_password(ScramHash hash, std::string_view password, std::string_view salt,
                            std::uint32_t iterations) {
  const auto size = static_cast<std::size_t>(EVP_MD_get_size(digest(hash)));
  std::string out(size, '\0');
  const int ok =
      PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), digest(hash),
                        static_cast<int>(size), reinterpret_cast<unsigned char*>(out.data()));
  TC_CHECK(ok == 1, "OpenSSL PBKDF2 failed");
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string xor_bytes(std::string_view a, std::string_view b) {
  TC_ASSERT(a.size() == b.size(), "both are digests of the same hash");
  std::string out(a.size(), '\0');
  for (std::size_t i = 0; i < a.size(); ++i) {
    out[i] = static_cast<char>(a[i] ^ b[i]);
  }
  return out;
}

// Iterations beyond INT_MAX cannot be passed to OpenSSL; 0 is meaningless (RFC 5802 §5.1).
bool usable_iterations(std::uint32_t iterations) {
  return iterations > 0 && iterations <= static_cast<std::uint32_t>(INT_MAX);
}

// Per-process key for fake salts: stable while the process lives, unknown to peers.
const std::string& fake_salt_key() {
  static const std::string key = random_bytes(32);
  return key;
}

// RFC 5802 §7: saslname escapes ',' as "=2C" and '=' as "=3D".
std::string escape_saslname(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::string> unescape_saslname(std::string_view text) {
  if (text.empty()) {
    return malformed();
  }
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0' || c == ',') {
      return malformed();
    }
    if (c == '=') {
      const std::string_view esc = text.substr(i + 1, 2);
      if (esc == "2C") {
        out += ',';
      } else if (esc == "3D") {
        out += '=';
      } else {
        return malformed();
      }
      i += 2;
    } else {
      out += c;
    }
  }
  if (!detail::is_valid_utf8(out)) {
    return malformed();
  }
  return out;
}

// RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma).
bool is_valid_nonce(std::string_view nonce) {
  if (nonce.empty()) {
    return false;
  }
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7E || c == ',') {
      return false;
    }
  }
  return true;
}

/// Splits "k=v,k=v,..." one attribute at a time (RFC 5802 §7 attr-val).
class AttrReader {
 public:
  explicit AttrReader(std::string_view text) : rest_(text) {}

  bool at_end() const { return done_; }

  /// The next attribute's key and value. False on bad syntax or when nothing is left.
  bool next(char& key, std::string_view& value) {
    if (done_) {
      return false;
    }
    const auto comma = rest_.find(',');
    std::string_view field = rest_.substr(0, comma);
    if (comma == std::string_view::npos) {
      done_ = true;
    } else {
      rest_.remove_prefix(comma + 1);
    }
    if (field.size() < 2 || field[1] != '=' ||
        !((field[0] >= 'a' && field[0] <= 'z') || (field[0] >= 'A' && field[0] <= 'Z'))) {
      return false;
    }
    key = field[0];
    value = field.substr(2);
    return true;
  }

  /// Checks that whatever is left is well-formed extension attributes (RFC 5802 §7
  /// "extensions"), which we ignore.
  bool only_extensions_left() {
    char key = 0;
    std::string_view value;
    while (!done_) {
      if (!next(key, value)) {
        return false;
      }
      // "m" is a mandatory extension we do not understand (RFC 5802 §5.1); the other
      // letters RFC 5802 defines may not appear again as extensions.
      if (std::string_view("aceimnprsv").find(key) != std::string_view::npos) {
        return false;
      }
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

struct ClientFirstBare {
  std::string username;  // unescaped and SASLprepped
  std::string_view nonce;
};

// client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
Result<ClientFirstBare> parse_client_first_bare(std::string_view bare) {
  AttrReader reader(bare);
  char key = 0;
  std::string_view value;
  // RFC 5802 §5.1: "m" is reserved; the server MUST fail when it sees it.
  if (!reader.next(key, value) || key != 'n') {
    return malformed();
  }
  auto name = unescape_saslname(value);
  if (!name) {
    return name.error();
  }
  auto prepped = saslprep(*name);
  if (!prepped || prepped->empty()) {
    return malformed();
  }
  ClientFirstBare out;
  out.username = std::move(*prepped);
  if (!reader.next(key, value) || key != 'r' || !is_valid_nonce(value)) {
    return malformed();
  }
  out.nonce = value;
  if (!reader.only_extensions_left()) {
    return malformed();
  }
  return out;
}

}  // namespace

std::string_view scram_mechanism_name(ScramHash hash) {
  return hash == ScramHash::Sha1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

ScramCredentials make_scram_credentials(ScramHash hash, std::string_view password,
                                        std::string_view salt, std::uint32_t iterations) {
  TC_ASSERT(usable_iterations(iterations), "iteration count comes from our configuration");
  ScramCredentials creds;
  creds.hash = hash;
  creds.salt = std::string(salt);
  creds.iterations = iterations;
  // RFC 5802 §3.
  const std::string salted = salted_password(hash, password, salt, iterations);
  creds.stored_key = hash_of(hash, hmac(hash, salted, "Client Key"));
  creds.server_key = hmac(hash, salted, "Server Key");
  return creds;
}

bool verify_password(const ScramCredentials& creds, std::string_view password) {
  // The stored keys were derived from the SASLprepped password (RFC 4616 §2 asks PLAIN
  // servers to prepare the password the same way).
  auto prepped = saslprep(password);
  if (!prepped || !usable_iterations(creds.iterations)) {
    return false;
  }
  const std::string salted = salted_password(creds.hash, *prepped, creds.salt, creds.iterations);
  const std::string stored = hash_of(creds.hash, hmac(creds.hash, salted, "Client Key"));
  return equal_constant_time(stored, creds.stored_key);
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0) {
    const int ok = RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
    // Without randomness nonces and salts become guessable: no safe way to go on.
    TC_CHECK(ok == 1, "OpenSSL RAND_bytes failed");
  }
  return out;
}

std::string random_token(std::size_t chars) {
  std::string out = random_bytes(chars);
  for (char& c : out) {
    // 64 divides 256, so every character is equally likely.
    c = kBase64UrlAlphabet[static_cast<unsigned char>(c) & 63U];
  }
  return out;
}

std::string base64_encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    const std::uint32_t v =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8) |
        static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 2]));
    out += kBase64Alphabet[(v >> 18) & 63U];
    out += kBase64Alphabet[(v >> 12) & 63U];
    out += kBase64Alphabet[(v >> 6) & 63U];
    out += kBase64Alphabet[v & 63U];
  }
  const std::size_t left = raw.size() - i;
  if (left > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16;
    if (left == 2) {
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8;
    }
    out += kBase64Alphabet[(v >> 18) & 63U];
    out += kBase64Alphabet[(v >> 12) & 63U];
    out += left == 2 ? kBase64Alphabet[(v >> 6) & 63U] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  // RFC 4648 §4 with padding, no whitespace, and zero bits where padding cuts a group
  // (§3.5), so each byte string has exactly one accepted encoding.
  if (text.size() % 4 != 0) {
    return malformed();
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      std::uint32_t d = 0;
      if (c == '=') {
        // Padding only in the last group, only in its last two places, and never followed
        // by data.
        if (!last || j < 2) {
          return malformed();
        }
        ++pad;
      } else {
        if (pad > 0) {
          return malformed();
        }
        const auto pos = kBase64Alphabet.find(c);
        if (pos == std::string_view::npos) {
          return malformed();
        }
        d = static_cast<std::uint32_t>(pos);
      }
      v = (v << 6) | d;
    }
    if ((pad == 1 && (v & 0xFFU) != 0) || (pad == 2 && (v & 0xFFFFU) != 0)) {
      return malformed();
    }
    out += static_cast<char>((v >> 16) & 0xFFU);
    if (pad < 2) {
      out += static_cast<char>((v >> 8) & 0xFFU);
    }
    if (pad < 1) {
      out += static_cast<char>(v & 0xFFU);
    }
  }
  return out;
}

ScramServer::ScramServer(ScramHash hash, std::string nonce_for_test)
    : hash_(hash), nonce_for_test_(std::move(nonce_for_test)) {}

Result<std::string> ScramServer::on_client_first(std::string_view message) {
  if (!client_first_bare_.empty()) {
    return malformed();  // one exchange per ScramServer
  }
  // RFC 5802 §7: gs2-header = gs2-cbind-flag "," [authzid] ","
  const auto flag_end = message.find(',');
  if (flag_end == std::string_view::npos) {
    return malformed();
  }
  const std::string_view flag = message.substr(0, flag_end);
  if (flag != "n" && flag != "y") {
    // "p=..." asks for channel binding, which we never advertise (no -PLUS mechanism).
    return malformed();
  }
  const auto authzid_end = message.find(',', flag_end + 1);
  if (authzid_end == std::string_view::npos) {
    return malformed();
  }
  const std::string_view authzid_field = message.substr(flag_end + 1, authzid_end - flag_end - 1);
  std::string authzid;
  if (!authzid_field.empty()) {
    if (!authzid_field.starts_with("a=")) {
      return malformed();
    }
    auto decoded = unescape_saslname(authzid_field.substr(2));
    if (!decoded) {
      return decoded.error();
    }
    authzid = std::move(*decoded);
  }
  const std::string_view bare = message.substr(authzid_end + 1);
  auto parsed = parse_client_first_bare(bare);
  if (!parsed) {
    return parsed.error();
  }
  authzid_ = std::move(authzid);
  gs2_header_ = std::string(message.substr(0, authzid_end + 1));
  client_first_bare_ = std::string(bare);
  client_nonce_ = std::string(parsed->nonce);
  return std::move(parsed->username);
}

std::string ScramServer::server_first(const std::optional<ScramCredentials>& creds,
                                      std::uint32_t fake_iterations) {
  TC_ASSERT(!client_first_bare_.empty(), "on_client_first() must succeed first");
  TC_ASSERT(server_first_.empty(), "server_first() is called once");
  if (client_first_bare_.empty() || !server_first_.empty()) {
    return {};
  }
  TC_ASSERT(!creds || creds->hash == hash_, "credentials for this mechanism's hash");
  const auto digest_size = static_cast<std::size_t>(EVP_MD_get_size(digest(hash_)));
  // Stored credentials that cannot verify anything (say, an account without keys for this
  // hash) are treated like a missing account, so the exchange ends in NotAuthorized.
  const bool usable = creds && creds->hash == hash_ && usable_iterations(creds->iterations) &&
                      !creds->salt.empty() && creds->stored_key.size() == digest_size &&
                      creds->server_key.size() == digest_size;
  if (usable) {
    creds_ = creds;
  } else {
    // RFC 5802 §5.1 / RFC 7677 §4: answer an unknown user like a known one. The salt is
    // derived from the prepared username so that it does not change between attempts (or
    // between spellings of one name), and the random keys make any proof fail.
    auto parsed = parse_client_first_bare(client_first_bare_);
    const std::string username = parsed ? std::move(parsed->username) : std::string();
    std::string label(scram_mechanism_name(hash_));
    label += '\0';
    label += username;
    ScramCredentials fake;
    fake.hash = hash_;
    fake.salt = hmac(ScramHash::Sha256, fake_salt_key(), label).substr(0, kFakeSaltBytes);
    fake.iterations = usable_iterations(fake_iterations) ? fake_iterations : 4096;
    fake.stored_key = random_bytes(digest_size);
    fake.server_key = random_bytes(digest_size);
    creds_ = std::move(fake);
  }
  nonce_ = client_nonce_;
  nonce_ += nonce_for_test_.empty() ? random_token(kNonceChars) : nonce_for_test_;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(creds_->salt) +
                  ",i=" + std::to_string(creds_->iterations);
  return server_first_;
}

Result<std::string> ScramServer::on_client_final(std::string_view message) {
  if (server_first_.empty() || !creds_) {
    return malformed();
  }
  // One attempt per exchange, whatever its outcome.
  const ScramCredentials creds = std::move(*creds_);
  creds_.reset();
  // RFC 5802 §7: client-final-message-without-proof "," proof, where the former is
  // channel-binding "," nonce ["," extensions].
  const auto proof_at = message.rfind(",p=");
  if (proof_at == std::string_view::npos) {
    return malformed();
  }
  const std::string_view without_proof = message.substr(0, proof_at);
  const std::string_view proof_b64 = message.substr(proof_at + 3);
  AttrReader reader(without_proof);
  char key = 0;
  std::string_view value;
  if (!reader.next(key, value) || key != 'c') {
    return malformed();
  }
  auto binding = base64_decode(value);
  // Without channel binding the c= attribute carries exactly the gs2 header (§5.1).
  if (!binding || *binding != gs2_header_) {
    return malformed();
  }
  if (!reader.next(key, value) || key != 'r' || value != nonce_) {
    return malformed();
  }
  if (!reader.only_extensions_left()) {
    return malformed();
  }
  auto proof = base64_decode(proof_b64);
  if (!proof || proof->size() != creds.stored_key.size() || proof->empty()) {
    return malformed();
  }
  // RFC 5802 §3.
  std::string auth_message;
  auth_message.reserve(client_first_bare_.size() + server_first_.size() + without_proof.size() + 2);
  auth_message.append(client_first_bare_).append(",").append(server_first_).append(",");
  auth_message.append(without_proof);
  const std::string client_signature = hmac(hash_, creds.stored_key, auth_message);
  const std::string client_key = xor_bytes(*proof, client_signature);
  if (!equal_constant_time(hash_of(hash_, client_key), creds.stored_key)) {
    return not_authorized();
  }
  return "v=" + base64_encode(hmac(hash_, creds.server_key, auth_message));
}

ScramClient::ScramClient(ScramHash hash, std::string username, std::string password,
                         std::string nonce_for_test)
    : hash_(hash),
      username_(std::move(username)),
      password_(std::move(password)),
      nonce_(nonce_for_test.empty() ? random_token(kNonceChars) : std::move(nonce_for_test)) {}

std::string ScramClient::client_first() {
  auto prepped = saslprep(username_);
  client_first_bare_ = "n=" + escape_saslname(prepped ? *prepped : username_) + ",r=" + nonce_;
  return "n,," + client_first_bare_;
}

Result<std::string> ScramClient::on_server_first(std::string_view message) {
  if (client_first_bare_.empty()) {
    return malformed();
  }
  // RFC 5802 §7: server-first-message = [reserved-mext ","] nonce "," salt ","
  //                                     iteration-count ["," extensions]
  AttrReader reader(message);
  char key = 0;
  std::string_view nonce;
  std::string_view salt_b64;
  std::string_view count;
  if (!reader.next(key, nonce) || key != 'r' || !is_valid_nonce(nonce) ||
      nonce.size() <= nonce_.size() || !nonce.starts_with(nonce_)) {
    return malformed();
  }
  if (!reader.next(key, salt_b64) || key != 's') {
    return malformed();
  }
  if (!reader.next(key, count) || key != 'i') {
    return malformed();
  }
  if (!reader.only_extensions_left()) {
    return malformed();
  }
  auto salt = base64_decode(salt_b64);
  if (!salt || salt->empty()) {
    return malformed();
  }
  std::uint32_t iterations = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), iterations);
  if (ec != std::errc() || end != count.data() + count.size() || !usable_iterations(iterations)) {
    return malformed();
  }
  auto prepped = saslprep(password_);
  salted_password_ = salted_password(hash_, prepped ? *prepped : password_, *salt, iterations);
  const std::string without_proof = "c=biws,r=" + std::string(nonce);  // biws = base64("n,,")
  auth_message_ = client_first_bare_ + "," + std::string(message) + "," + without_proof;
  const std::string client_key = hmac(hash_, salted_password_, "Client Key");
  const std::string stored_key = hash_of(hash_, client_key);
  const std::string proof = xor_bytes(client_key, hmac(hash_, stored_key, auth_message_));
  return without_proof + ",p=" + base64_encode(proof);
}

Result<void> ScramClient::on_server_final(std::string_view message) {
  if (auth_message_.empty()) {
    return malformed();
  }
  // RFC 5802 §7: server-final-message = (server-error / verifier) ["," extensions]
  AttrReader reader(message);
  char key = 0;
  std::string_view value;
  if (!reader.next(key, value)) {
    return malformed();
  }
  if (key == 'e') {
    return not_authorized();
  }
  if (key != 'v' || !reader.only_extensions_left()) {
    return malformed();
  }
  auto signature = base64_decode(value);
  if (!signature) {
    return malformed();
  }
  const std::string server_key = hmac(hash_, salted_password_, "Server Key");
  if (!equal_constant_time(*signature, hmac(hash_, server_key, auth_message_))) {
    return not_authorized();
  }
  return {};
}

Result<PlainCredentials> parse_sasl_plain(std::string_view message) {
  // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
  const auto first = message.find('\0');
  if (first == std::string_view::npos) {
    return malformed();
  }
  const auto second = message.find('\0', first + 1);
  if (second == std::string_view::npos) {
    return malformed();
  }
  const std::string_view authzid = message.substr(0, first);
  const std::string_view authcid = message.substr(first + 1, second - first - 1);
  const std::string_view passwd = message.substr(second + 1);
  if (passwd.find('\0') != std::string_view::npos || authcid.empty() || passwd.empty() ||
      authzid.size() > kMaxPlainField || authcid.size() > kMaxPlainField ||
      passwd.size() > kMaxPlainField || !detail::is_valid_utf8(message)) {
    return malformed();
  }
  return PlainCredentials{std::string(authzid), std::string(authcid), std::string(passwd)};
}

}  // namespace tc::xmpp
