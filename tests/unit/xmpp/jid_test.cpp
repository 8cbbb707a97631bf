// SPDX-License-Identifier: Apache-2.0
#include "xmpp/jid.h"

#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "xmpp/errc.h"

namespace tc::xmpp {
// Lets GoogleTest print a Jid in failure messages.
// NOLINTNEXTLINE(readability-identifier-naming): the name GoogleTest looks up
void PrintTo(const Jid& jid, std::ostream* os) {
  *os << jid.str();
}

namespace {

std::string normalised(std::string_view text) {
  auto jid = Jid::parse(text);
  return jid ? jid->str() : "<error: " + jid.error().message() + ">";
}

bool malformed(std::string_view text) {
  auto jid = Jid::parse(text);
  return !jid && jid.error() == Errc::JidMalformed;
}

TEST(JidTest, ParsesParts) {
  auto full = Jid::parse("juliet@example.com/balcony");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->local(), "juliet");
  EXPECT_EQ(full->domain(), "example.com");
  EXPECT_EQ(full->resource(), "balcony");
  EXPECT_FALSE(full->is_bare());
  EXPECT_FALSE(full->empty());
  EXPECT_EQ(full->str(), "juliet@example.com/balcony");
  EXPECT_EQ(full->bare_str(), "juliet@example.com");
  EXPECT_EQ(full->bare().str(), "juliet@example.com");
  EXPECT_TRUE(full->bare().is_bare());

  auto domain = Jid::parse("example.com");
  ASSERT_TRUE(domain);
  EXPECT_EQ(domain->local(), "");
  EXPECT_EQ(domain->str(), "example.com");
  EXPECT_EQ(domain->bare_str(), "example.com");

  auto domain_resource = Jid::parse("example.com/res");
  ASSERT_TRUE(domain_resource);
  EXPECT_EQ(domain_resource->local(), "");
  EXPECT_EQ(domain_resource->resource(), "res");

  EXPECT_TRUE(Jid().empty());
  EXPECT_EQ(Jid().str(), "");
}

TEST(JidTest, ResourceTakesEverythingAfterTheFirstSlash) {
  // RFC 7622 §3.1: split at the first '/', then at the first '@' before it.
  auto jid = Jid::parse("room@muc.example.com/nick/with@signs and spaces");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->local(), "room");
  EXPECT_EQ(jid->resource(), "nick/with@signs and spaces");
  auto at_in_resource = Jid::parse("example.com/a@b");
  ASSERT_TRUE(at_in_resource);
  EXPECT_EQ(at_in_resource->local(), "");
  EXPECT_EQ(at_in_resource->domain(), "example.com");
  EXPECT_EQ(at_in_resource->resource(), "a@b");
}

TEST(JidTest, RejectsEmptyParts) {
  for (const char* text : {"", "@", "/", "@d", "a@", "d/", "a@/r", "@d/r", "a@d/", "/r", "a@b@c"}) {
    EXPECT_TRUE(malformed(text)) << text;
  }
}

TEST(JidTest, RejectsForbiddenLocalpartCharacters) {
  for (const char* text : {"a b@d", "a\"b@d", "a&b@d", "a'b@d", "a:b@d", "a<b@d", "a>b@d", "a\tb@d",
                           "a\x7F@d", "a\u00A0b@d" /* no-break space, RFC 3454 C.1.2 */,
                           "\xEF\xBC\x82@d" /* fullwidth quote, NFKC maps it to '"' */}) {
    EXPECT_TRUE(malformed(text)) << text;
  }
}

TEST(JidTest, RejectsBadDomains) {
  for (const char* text :
       {"exa mple.com", "a..b", ".com", "example.com..", ".", "-a.com", "a-.com", "a_b.com",
        "a@b!c", "[::1", "[zz::1]", "[]", "[1.2.3.4]", "d\x01", "exa\xE2\x80\x8Bmple..com"}) {
    EXPECT_TRUE(malformed(text)) << text;
  }
}

TEST(JidTest, RejectsInvalidUtf8AndNul) {
  EXPECT_TRUE(malformed("\xC3@d"));
  EXPECT_TRUE(malformed("a@\xFF"));
  EXPECT_TRUE(malformed("a@d/\xED\xA0\x80"));  // a surrogate
  EXPECT_TRUE(malformed("a@d/\xC0\xAF"));      // overlong '/'
  EXPECT_TRUE(malformed(std::string_view("a\0b@d", 5)));
  EXPECT_TRUE(malformed(std::string_view("a@d/r\0", 6)));
  EXPECT_TRUE(malformed("a@d/\x07"));
}

TEST(JidTest, NormalisesCase) {
  EXPECT_EQ(normalised("Juliet@Example.COM/Balcony"), "juliet@example.com/Balcony");
  EXPECT_EQ(normalised("EXAMPLE.com"), "example.com");
  EXPECT_EQ(Jid::parse("JULIET@example.com").value(), Jid::parse("juliet@EXAMPLE.com").value());
  EXPECT_NE(Jid::parse("a@example.com/R").value(), Jid::parse("a@example.com/r").value());
}

TEST(JidTest, NormalisesUnicode) {
  // Case folding beyond ASCII (nodeprep B.2) and in the domain (nameprep).
  EXPECT_EQ(normalised("\xC3\x9Cn\xC3\xAF"
                       "code@\xC3\x89XAMPLE.com"),
            "\xC3\xBCn\xC3\xAF"
            "code@\xC3\xA9xample.com");
  EXPECT_EQ(normalised("Stra\xC3\x9F"
                       "e@example.com"),
            "strasse@example.com");
  // NFKC: fullwidth letters in the domain, a ligature in the resource.
  EXPECT_EQ(normalised("\xEF\xBD\x85\xEF\xBD\x98.com"), "ex.com");
  EXPECT_EQ(normalised("a@d/\xEF\xAC\x81"), "a@d/fi");
  // Resource case is preserved beyond ASCII too.
  EXPECT_EQ(normalised("a@d/\xC3\x89t\xC3\xA9"), "a@d/\xC3\x89t\xC3\xA9");
  // Ideographic full stop separates labels (RFC 3490 §3.1).
  EXPECT_EQ(normalised("a@example\xE3\x80\x82"
                       "com"),
            "a@example.com");
  // Mapped to nothing (B.1): a soft hyphen disappears; a part made only of it is empty.
  EXPECT_EQ(normalised("ju\xC2\xAD"
                       "liet@example.com"),
            "juliet@example.com");
  EXPECT_TRUE(malformed("\xC2\xAD@example.com"));
  EXPECT_TRUE(malformed("a@d/\xC2\xAD"));
  // Bidi rule (RFC 3454 §6): RandALCat mixed with LCat.
  EXPECT_TRUE(
      malformed("\xD7\x90"
                "a@d"));
  EXPECT_EQ(normalised("\xD7\x90\xD7\x91@d"), "\xD7\x90\xD7\x91@d");
  // Normalisation is stable.
  const std::string once = normalised("\xC3\x9Cn\xC3\xAF@\xC3\x89XAMPLE.com/\xEF\xAC\x81");
  EXPECT_EQ(normalised(once), once);
}

TEST(JidTest, StripsOneTrailingDot) {
  EXPECT_EQ(normalised("a@example.com."), "a@example.com");
  EXPECT_EQ(normalised("example.com./r"), "example.com/r");
  EXPECT_TRUE(malformed("a@example.com.."));
}

TEST(JidTest, IpLiterals) {
  EXPECT_EQ(normalised("a@127.0.0.1/r"), "a@127.0.0.1/r");
  EXPECT_EQ(normalised("a@[2001:DB8::1]/r"), "a@[2001:db8::1]/r");
  EXPECT_EQ(normalised("[::1]"), "[::1]");
}

TEST(JidTest, LengthLimits) {
  const std::string l1023(1023, 'a');
  const std::string l1024(1024, 'a');
  EXPECT_TRUE(Jid::parse(l1023 + "@d"));
  EXPECT_TRUE(malformed(l1024 + "@d"));
  EXPECT_TRUE(Jid::parse("a@d/" + l1023));
  EXPECT_TRUE(malformed("a@d/" + l1024));
  // Multibyte: 342 x U+00E9 is 684 bytes; 512 of them is 1024 bytes.
  std::string e512;
  for (int i = 0; i < 512; ++i) {
    e512 += "\xC3\xA9";
  }
  EXPECT_TRUE(malformed("a@d/" + e512));
  EXPECT_TRUE(Jid::parse("a@d/" + e512.substr(2)));
  // Domain: 16 labels of 63 joined by dots is exactly 1023 bytes.
  std::string domain;
  for (int i = 0; i < 16; ++i) {
    domain += (i == 0 ? "" : ".") + std::string(63, 'x');
  }
  ASSERT_EQ(domain.size(), 1023u);
  EXPECT_TRUE(Jid::parse(domain));
  EXPECT_TRUE(malformed(domain + ".a"));
  EXPECT_TRUE(malformed(std::string(64, 'x') + ".com"));  // label over 63 bytes
  // Huge inputs are refused cheaply.
  EXPECT_TRUE(malformed(std::string(100000, 'a') + "@d"));
}

TEST(JidTest, FromPartsAndWithResource) {
  auto jid = Jid::from_parts("Room", "MUC.Example.com", "Nick");
  ASSERT_TRUE(jid);
  EXPECT_EQ(jid->str(), "room@muc.example.com/Nick");
  auto bare = Jid::from_parts("", "example.com");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->str(), "example.com");
  EXPECT_FALSE(Jid::from_parts("a b", "example.com"));
  EXPECT_FALSE(Jid::from_parts("a", ""));
  EXPECT_FALSE(Jid::from_parts("a", "example.com", "\x07"));

  auto other = jid->with_resource("Other Nick");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->str(), "room@muc.example.com/Other Nick");
  EXPECT_EQ(other->bare(), jid->bare());
  EXPECT_FALSE(jid->with_resource(""));
  EXPECT_FALSE(jid->with_resource("\xC2\xAD"));
  EXPECT_FALSE(Jid().with_resource("r"));
}

TEST(JidTest, Ordering) {
  auto a = Jid::parse("a@d");
  auto b = Jid::parse("b@d");
  ASSERT_TRUE(a && b);
  EXPECT_LT(*a, *b);
  EXPECT_EQ(*a, *Jid::parse("A@D."));
}

TEST(JidTest, IndividualProfiles) {
  EXPECT_EQ(nodeprep("Juliet").value(), "juliet");
  EXPECT_FALSE(nodeprep("a@b"));
  EXPECT_FALSE(nodeprep(""));
  EXPECT_EQ(nameprep("Example.COM.").value(), "example.com");
  EXPECT_EQ(resourceprep("Nick Name").value(), "Nick Name");
  EXPECT_EQ(resourceprep("\xE2\x85\xA8").value(), "IX");  // U+2168 ROMAN NUMERAL NINE
  EXPECT_EQ(nodeprep("a b").error(), Errc::JidMalformed);
}

TEST(JidTest, SaslPrep) {
  // RFC 4013 §3 examples.
  EXPECT_EQ(saslprep("I\xC2\xAD"
                     "X")
                .value(),
            "IX");
  EXPECT_EQ(saslprep("user").value(), "user");
  EXPECT_EQ(saslprep("USER").value(), "USER");
  EXPECT_EQ(saslprep("\xC2\xAA").value(), "a");
  EXPECT_EQ(saslprep("\xE2\x85\xA8").value(), "IX");
  EXPECT_EQ(saslprep("\x07").error(), Errc::MalformedRequest);
  EXPECT_EQ(saslprep("\xD8\xA7"
                     "1")
                .error(),
            Errc::MalformedRequest);
  // Non-ASCII space maps to a space; ASCII space is kept.
  EXPECT_EQ(saslprep("a\xC2\xA0"
                     "b")
                .value(),
            "a b");
  EXPECT_EQ(saslprep("a b").value(), "a b");
  EXPECT_EQ(saslprep("").value(), "");
  EXPECT_FALSE(saslprep("\xFF"));
}

}  // namespace
}  // namespace tc::xmpp
