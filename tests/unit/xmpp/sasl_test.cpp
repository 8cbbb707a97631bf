// SPDX-License-Identifier: Apache-2.0
#include "xmpp/sasl.h"

#include <string>

#include <gtest/gtest.h>

#include "xmpp/errc.h"

namespace tc::xmpp {
namespace {

std::string b64d(std::string_view text) {
  return base64_decode(text).value();
}

// RFC 5802 §5.
constexpr std::string_view kSha1ClientFirst = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
constexpr std::string_view kSha1ServerFirst =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
constexpr std::string_view kSha1ClientFinal =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
constexpr std::string_view kSha1ServerFinal = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

// RFC 7677 §3.
constexpr std::string_view kSha256ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kSha256ServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kSha256ClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kSha256ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramCredentials rfc5802_creds() {
  return make_scram_credentials(ScramHash::Sha1, "pencil", b64d("QSXCR+Q6sek8bf92"), 4096);
}
ScramCredentials rfc7677_creds() {
  return make_scram_credentials(ScramHash::Sha256, "pencil", b64d("W22ZaJ0SNY7soEsUEjb6gQ=="),
                                4096);
}

// A server that has received the RFC 5802 client-first and answered it.
ScramServer rfc5802_server() {
  ScramServer server(ScramHash::Sha1, "3rfcNHYJY1ZVvWVs7j");
  EXPECT_EQ(server.on_client_first(kSha1ClientFirst).value(), "user");
  EXPECT_EQ(server.server_first(rfc5802_creds()), kSha1ServerFirst);
  return server;
}

TEST(ScramTest, MechanismNames) {
  EXPECT_EQ(scram_mechanism_name(ScramHash::Sha1), "SCRAM-SHA-1");
  EXPECT_EQ(scram_mechanism_name(ScramHash::Sha256), "SCRAM-SHA-256");
}

TEST(ScramTest, Rfc5802Sha1ServerSide) {
  ScramServer server = rfc5802_server();
  EXPECT_EQ(server.authzid(), "");
  auto final_message = server.on_client_final(kSha1ClientFinal);
  ASSERT_TRUE(final_message) << final_message.error().message();
  EXPECT_EQ(*final_message, kSha1ServerFinal);
}

TEST(ScramTest, Rfc5802Sha1ClientSide) {
  ScramClient client(ScramHash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
  EXPECT_EQ(client.client_first(), kSha1ClientFirst);
  auto final_message = client.on_server_first(kSha1ServerFirst);
  ASSERT_TRUE(final_message);
  EXPECT_EQ(*final_message, kSha1ClientFinal);
  EXPECT_TRUE(client.on_server_final(kSha1ServerFinal));
}

TEST(ScramTest, Rfc7677Sha256BothSides) {
  ScramServer server(ScramHash::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  EXPECT_EQ(server.on_client_first(kSha256ClientFirst).value(), "user");
  EXPECT_EQ(server.server_first(rfc7677_creds()), kSha256ServerFirst);
  auto server_final = server.on_client_final(kSha256ClientFinal);
  ASSERT_TRUE(server_final) << server_final.error().message();
  EXPECT_EQ(*server_final, kSha256ServerFinal);

  ScramClient client(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(client.client_first(), kSha256ClientFirst);
  EXPECT_EQ(client.on_server_first(kSha256ServerFirst).value(), kSha256ClientFinal);
  EXPECT_TRUE(client.on_server_final(kSha256ServerFinal));
}

TEST(ScramTest, RoundTripWithRandomNonces) {
  for (ScramHash hash : {ScramHash::Sha1, ScramHash::Sha256}) {
    const auto creds = make_scram_credentials(hash, "s3cret, =pw", random_bytes(16), 1000);
    ScramClient client(hash, "us,er=name", "s3cret, =pw");
    ScramServer server(hash);
    const std::string first = client.client_first();
    EXPECT_NE(first.find("n=us=2Cer=3Dname,"), std::string::npos);
    ASSERT_EQ(server.on_client_first(first).value(), "us,er=name");
    auto client_final = client.on_server_first(server.server_first(creds));
    ASSERT_TRUE(client_final);
    auto server_final = server.on_client_final(*client_final);
    ASSERT_TRUE(server_final) << server_final.error().message();
    EXPECT_TRUE(client.on_server_final(*server_final));
  }
}

TEST(ScramTest, WrongPasswordIsNotAuthorized) {
  const auto creds = make_scram_credentials(ScramHash::Sha256, "right", "saltsalt", 4096);
  ScramClient client(ScramHash::Sha256, "user", "wrong");
  ScramServer server(ScramHash::Sha256);
  ASSERT_TRUE(server.on_client_first(client.client_first()));
  auto client_final = client.on_server_first(server.server_first(creds));
  ASSERT_TRUE(client_final);
  auto result = server.on_client_final(*client_final);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), Errc::NotAuthorized);
  // The exchange is over: a replay is refused as out of sequence.
  EXPECT_EQ(server.on_client_final(*client_final).error(), Errc::MalformedRequest);
}

TEST(ScramTest, UnknownUserGetsAStableFakeChallengeAndFails) {
  auto challenge = [](std::string_view client_first) {
    ScramServer server(ScramHash::Sha256, "servernonce");
    EXPECT_TRUE(server.on_client_first(client_first));
    return server.server_first(std::nullopt, 4096);
  };
  const std::string a1 = challenge("n,,n=ghost,r=abc");
  const std::string a2 = challenge("n,,n=ghost,r=abc");
  const std::string b = challenge("n,,n=phantom,r=abc");
  const std::string prepped = challenge(
      "n,,n=gh\xC2\xAD"
      "ost,r=abc");  // SASLprep: "ghost"
  EXPECT_EQ(a1, a2);
  EXPECT_NE(a1, b);
  EXPECT_EQ(a1, prepped);
  EXPECT_EQ(a1.substr(0, 16), "r=abcservernonce");
  EXPECT_NE(a1.find(",i=4096"), std::string::npos);
  // Looks like a real salt: 16 bytes.
  const auto s = a1.find(",s=");
  const auto i = a1.find(",i=");
  EXPECT_EQ(b64d(a1.substr(s + 3, i - s - 3)).size(), 16u);

  // Whatever password the client tries, the exchange ends in NotAuthorized.
  ScramClient client(ScramHash::Sha256, "ghost", "anything");
  ScramServer server(ScramHash::Sha256);
  ASSERT_TRUE(server.on_client_first(client.client_first()));
  auto client_final = client.on_server_first(server.server_first(std::nullopt, 1000));
  ASSERT_TRUE(client_final);
  EXPECT_EQ(server.on_client_final(*client_final).error(), Errc::NotAuthorized);
}

TEST(ScramTest, UnusableStoredCredentialsActLikeAnUnknownUser) {
  ScramCredentials empty;  // say, an account with no keys for this hash
  empty.hash = ScramHash::Sha1;
  ScramClient client(ScramHash::Sha1, "user", "pencil");
  ScramServer server(ScramHash::Sha1);
  ASSERT_TRUE(server.on_client_first(client.client_first()));
  auto client_final = client.on_server_first(server.server_first(empty, 64));
  ASSERT_TRUE(client_final);
  EXPECT_EQ(server.on_client_final(*client_final).error(), Errc::NotAuthorized);
}

TEST(ScramTest, ClientFirstSyntax) {
  const char* bad[] = {
      "",
      "n",
      "n,",
      "n,,",
      "x,,n=user,r=abc",
      "p=tls-unique,,n=user,r=abc",  // channel binding is never offered
      "n,,m=ext,n=user,r=abc",       // reserved mandatory extension
      "n,,n=,r=abc",
      "n,,n=us=er,r=abc",   // bad escape
      "n,,n=us=2c,r=abc",   // escapes are upper case
      "n,,n=user,r=",       // empty nonce
      "n,,n=user",          // no nonce
      "n,,r=abc,n=user",    // wrong order
      "n,,n=user,r=a,b",    // "b" is not attr=value
      "n,,n=user,r=a,m=x",  // extension named like a reserved attribute
      "n,a,n=user,r=abc",   // authzid without "a="
      "n,a=,n=user,r=abc",  // empty authzid
      "n,,n=\xFFuser,r=abc",
      "n,,n=user,r=ab\x7F",  // nonce not printable
      "n,,n=\x07,r=abc",     // SASLprep prohibits controls
  };
  for (const char* message : bad) {
    ScramServer server(ScramHash::Sha256);
    auto r = server.on_client_first(message);
    ASSERT_FALSE(r) << message;
    EXPECT_EQ(r.error(), Errc::MalformedRequest) << message;
  }
  ScramServer y(ScramHash::Sha1);
  EXPECT_EQ(y.on_client_first("y,,n=user,r=abc,x=ext").value(), "user");

  ScramServer with_authzid(ScramHash::Sha1);
  EXPECT_EQ(with_authzid.on_client_first("n,a=admin=40example.com,n=us=2Cer,r=abc").error(),
            Errc::MalformedRequest);
  EXPECT_EQ(with_authzid.on_client_first("n,a=admin@example.com,n=us=2Cer=3D,r=abc").value(),
            "us,er=");
  EXPECT_EQ(with_authzid.authzid(), "admin@example.com");
  // One exchange per ScramServer.
  EXPECT_FALSE(with_authzid.on_client_first("n,,n=user,r=abc"));
}

TEST(ScramTest, ClientFinalSyntax) {
  const std::string nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
  const std::string proof = "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
  const std::string bad[] = {
      "",
      "c=biws,r=" + nonce,                                     // no proof
      "c=biws,r=" + nonce + ",p=",                             // empty proof
      "c=biws,r=" + nonce + ",p=AAAA",                         // proof of the wrong length
      "c=biws,r=" + nonce + ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts",  // bad base64
      "c=biws,r=" + nonce + "," + proof + ",x=1",              // proof not last
      "c=eSws,r=" + nonce + "," + proof,                       // channel binding differs: "y,,"
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL," + proof,            // nonce differs
      "c=biws,r=" + nonce + "x," + proof,
      "r=" + nonce + ",c=biws," + proof,  // order
      "c=biws," + proof,
      "c=biws,r=" + nonce + ",m=1," + proof,
      "c=biws,r=" + nonce + ",p=AAAA," + proof,
      "c=bi,r=" + nonce + "," + proof,
  };
  for (const auto& message : bad) {
    ScramServer server = rfc5802_server();
    auto r = server.on_client_final(message);
    ASSERT_FALSE(r) << message;
    EXPECT_EQ(r.error(), Errc::MalformedRequest) << message;
  }
  // Extensions before the proof are allowed (and covered by the proof, so this one fails
  // authentication rather than syntax).
  ScramServer server = rfc5802_server();
  EXPECT_EQ(server.on_client_final("c=biws,r=" + nonce + ",x=ext," + proof).error(),
            Errc::NotAuthorized);
  // A tampered proof of the right length is NotAuthorized.
  ScramServer tampered = rfc5802_server();
  EXPECT_EQ(
      tampered.on_client_final("c=biws,r=" + nonce + ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Tt=").error(),
      Errc::MalformedRequest);  // non-zero padding bits: not canonical base64
  ScramServer tampered2 = rfc5802_server();
  EXPECT_EQ(
      tampered2.on_client_final("c=biws,r=" + nonce + ",p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").error(),
      Errc::NotAuthorized);
}

TEST(ScramTest, OutOfSequenceCallsAreMalformed) {
  ScramServer server(ScramHash::Sha1);
  EXPECT_EQ(server.on_client_final(kSha1ClientFinal).error(), Errc::MalformedRequest);
  ASSERT_TRUE(server.on_client_first(kSha1ClientFirst));
  EXPECT_EQ(server.on_client_final(kSha1ClientFinal).error(), Errc::MalformedRequest);

  ScramClient client(ScramHash::Sha1, "user", "pencil");
  EXPECT_EQ(client.on_server_first(kSha1ServerFirst).error(), Errc::MalformedRequest);
  EXPECT_EQ(client.on_server_final(kSha1ServerFinal).error(), Errc::MalformedRequest);
}

TEST(ScramTest, ClientRejectsBadServerMessages) {
  const std::string bad[] = {
      "",
      "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",  // no server nonce part
      "r=other3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",   // not our nonce
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=,i=4096",                 // empty salt
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf9,i=4096",  // bad base64
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0",
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=-1",
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096x",
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999999",
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92",
      "m=x,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=1",
      "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawLx,i=1",
  };
  for (const auto& message : bad) {
    ScramClient client(ScramHash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
    client.client_first();
    auto r = client.on_server_first(message);
    ASSERT_FALSE(r) << message;
    EXPECT_EQ(r.error(), Errc::MalformedRequest) << message;
  }
  ScramClient client(ScramHash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
  client.client_first();
  ASSERT_TRUE(client.on_server_first(kSha1ServerFirst));
  EXPECT_EQ(client.on_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").error(), Errc::NotAuthorized);
  EXPECT_EQ(client.on_server_final("e=invalid-proof").error(), Errc::NotAuthorized);
  EXPECT_EQ(client.on_server_final("x=1").error(), Errc::MalformedRequest);
  EXPECT_EQ(client.on_server_final("v=!!!!").error(), Errc::MalformedRequest);
  EXPECT_TRUE(client.on_server_final(std::string(kSha1ServerFinal) + ",x=ext"));
}

TEST(ScramTest, CredentialsAndVerifyPassword) {
  const auto creds = rfc5802_creds();
  EXPECT_EQ(creds.hash, ScramHash::Sha1);
  EXPECT_EQ(creds.iterations, 4096u);
  EXPECT_EQ(creds.stored_key.size(), 20u);
  EXPECT_EQ(creds.server_key.size(), 20u);
  EXPECT_TRUE(verify_password(creds, "pencil"));
  EXPECT_FALSE(verify_password(creds, "Pencil"));
  EXPECT_FALSE(verify_password(creds, ""));
  EXPECT_FALSE(verify_password(creds, "pencil "));

  const auto sha256 = rfc7677_creds();
  EXPECT_EQ(sha256.stored_key.size(), 32u);
  EXPECT_TRUE(verify_password(sha256, "pencil"));
  EXPECT_FALSE(verify_password(sha256, "pencils"));

  // PLAIN passwords are SASLprepped like SCRAM ones (U+00AD maps to nothing).
  const auto prepped = make_scram_credentials(ScramHash::Sha256, "IX", "salt", 100);
  EXPECT_TRUE(verify_password(prepped,
                              "I\xC2\xAD"
                              "X"));
  EXPECT_FALSE(verify_password(prepped, "\x07"));

  ScramCredentials broken = creds;
  broken.iterations = 0;
  EXPECT_FALSE(verify_password(broken, "pencil"));
}

TEST(SaslTest, Base64RoundTripsRfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [raw, text] : vectors) {
    EXPECT_EQ(base64_encode(raw), text);
    EXPECT_EQ(base64_decode(text).value(), raw);
  }
  const std::string all_bytes = [] {
    std::string s;
    for (int i = 0; i < 256; ++i) {
      s += static_cast<char>(i);
    }
    return s;
  }();
  EXPECT_EQ(base64_decode(base64_encode(all_bytes)).value(), all_bytes);
}

TEST(SaslTest, Base64IsStrict) {
  for (const char* text : {"Zg=", "Zg", "Zh==", "Zm9=", "Zg==Zg==", "Z===", "====", "Zm9v\n",
                           "Zm9v YmFy", "Zm-v", "Zm_v", "Z=9v"}) {
    auto r = base64_decode(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error(), Errc::MalformedRequest);
  }
}

TEST(SaslTest, RandomBytesAndTokens) {
  EXPECT_EQ(random_bytes(0).size(), 0u);
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
  const std::string token = random_token(40);
  EXPECT_EQ(token.size(), 40u);
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  EXPECT_NE(random_token(24), random_token(24));
}

TEST(PlainTest, ParsesRfc4616Messages) {
  using namespace std::string_view_literals;
  auto simple = parse_sasl_plain("\0tim\0tanstaaftanstaaf"sv);
  ASSERT_TRUE(simple);
  EXPECT_EQ(simple->authzid, "");
  EXPECT_EQ(simple->username, "tim");
  EXPECT_EQ(simple->password, "tanstaaftanstaaf");

  auto with_authzid = parse_sasl_plain("Ursel\0Kurt\0xipj3plmq"sv);
  ASSERT_TRUE(with_authzid);
  EXPECT_EQ(with_authzid->authzid, "Ursel");
  EXPECT_EQ(with_authzid->username, "Kurt");
  EXPECT_EQ(with_authzid->password, "xipj3plmq");

  auto utf8 = parse_sasl_plain(
      "\0j\xC3\xBC"
      "rgen\0p\xC3\xA4ss"sv);
  ASSERT_TRUE(utf8);
  EXPECT_EQ(utf8->username,
            "j\xC3\xBC"
            "rgen");
}

TEST(PlainTest, RejectsMalformedMessages) {
  using namespace std::string_view_literals;
  const std::string long_field(256, 'a');
  const std::string bad[] = {
      "",
      "user",
      std::string("user\0pencil"sv),
      std::string("\0\0pencil"sv),
      std::string("\0user\0"sv),
      std::string("\0user\0pen\0cil"sv),
      std::string("\0us\xFF"
                  "er\0pencil"sv),
      std::string(1, '\0') + long_field + std::string("\0pw"sv),
      std::string("\0user\0"sv) + long_field,
      long_field + std::string("\0user\0pw"sv),
  };
  for (const auto& message : bad) {
    auto r = parse_sasl_plain(message);
    ASSERT_FALSE(r) << message.size();
    EXPECT_EQ(r.error(), Errc::MalformedRequest);
  }
  EXPECT_TRUE(
      parse_sasl_plain(std::string(1, '\0') + std::string(255, 'a') + std::string("\0pw"sv)));
}

}  // namespace
}  // namespace tc::xmpp
