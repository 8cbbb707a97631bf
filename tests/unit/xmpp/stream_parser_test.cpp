// SPDX-License-Identifier: Apache-2.0
#include "xmpp/stream_parser.h"

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "xmpp/errc.h"
#include "xmpp/namespaces.h"

namespace tc::xmpp {
namespace {

// NOLINTNEXTLINE(readability-identifier-naming): kPascalCase constants (STYLE.md 3.4)
const std::string kHeader =
    "<?xml version='1.0'?>"
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='example.com' version='1.0' xml:lang='en'>";

// A short header for tests with small limits: the header counts against max_stanza_bytes
// and max_attributes like any top-level element.
// NOLINTNEXTLINE(readability-identifier-naming): kPascalCase constants (STYLE.md 3.4)
const std::string kShortHeader = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";

struct Parsed {
  std::vector<StreamEvent> events;
  ErrorCode error;
};

// Feeds `text` in chunks of `chunk` bytes (0 = all at once), stopping at the first error.
Parsed parse(const std::string& text, std::size_t chunk = 0, ParserLimits limits = {}) {
  StreamParser parser(limits);
  Parsed p;
  if (chunk == 0) {
    chunk = text.size();
  }
  for (std::size_t i = 0; i < text.size(); i += chunk) {
    auto r = parser.feed(std::string_view(text).substr(i, chunk), p.events);
    if (!r) {
      p.error = r.error();
      break;
    }
  }
  return p;
}

// A printable description of an event that differs whenever the events differ.
std::string describe(const StreamEvent& e) {
  std::string out;
  switch (e.kind) {
    case StreamEvent::Kind::StreamOpen:
      out = "open";
      break;
    case StreamEvent::Kind::Stanza:
      out = "stanza";
      break;
    case StreamEvent::Kind::StreamClose:
      out = "close";
      break;
  }
  out.append(" {").append(e.element.xmlns()).append("}").append(e.element.name());
  for (const auto& [k, v] : e.element.attrs()) {
    out.append(" ").append(k).append("=").append(v);
  }
  out += ' ';
  e.element.append_to(out);
  out += " nodes=" + std::to_string(e.element.nodes().size());
  return out;
}

std::vector<std::string> describe_all(const Parsed& p) {
  std::vector<std::string> out;
  for (const auto& e : p.events) {
    out.push_back(describe(e));
  }
  out.push_back(p.error ? "error: " + p.error.message() : "ok");
  return out;
}

TEST(StreamParserTest, ParsesHeaderStanzasAndClose) {
  const std::string text = kHeader +
                           "<message to='room@muc.example.com' type='groupchat' id='m1'>"
                           "<body>Hello &amp; welcome</body>"
                           "<x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/></x>"
                           "</message> \n"
                           "<presence xml:lang='fr'><status>Salut</status></presence>"
                           "</stream:stream>";
  const Parsed p = parse(text);
  ASSERT_FALSE(p.error) << p.error.message();
  ASSERT_EQ(p.events.size(), 4u);

  const StreamEvent& open = p.events[0];
  EXPECT_EQ(open.kind, StreamEvent::Kind::StreamOpen);
  EXPECT_EQ(open.element.name(), "stream");
  EXPECT_EQ(open.element.xmlns(), ns::kStream);
  EXPECT_EQ(open.element.attr("xmlns"), ns::kClient);
  EXPECT_EQ(open.element.attr("to"), "example.com");
  EXPECT_EQ(open.element.attr("version"), "1.0");
  EXPECT_EQ(open.element.attr("xml:lang"), "en");
  EXPECT_FALSE(open.element.has_attr("from"));

  const XmlElement& msg = p.events[1].element;
  EXPECT_EQ(p.events[1].kind, StreamEvent::Kind::Stanza);
  EXPECT_EQ(msg.name(), "message");
  EXPECT_EQ(msg.xmlns(), ns::kClient);
  EXPECT_EQ(msg.attr("to"), "room@muc.example.com");
  EXPECT_EQ(msg.child_text("body", ns::kClient), "Hello & welcome");
  const XmlElement* x = msg.child("x", ns::kMucUser);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->child("item", ns::kMucUser)->attr("role"), "none");
  EXPECT_EQ(msg.to_string(ns::kClient),
            "<message to=\"room@muc.example.com\" type=\"groupchat\" id=\"m1\">"
            "<body>Hello &amp; welcome</body>"
            "<x xmlns=\"http://jabber.org/protocol/muc#user\"><item role=\"none\"/></x>"
            "</message>");

  const XmlElement& presence = p.events[2].element;
  EXPECT_EQ(presence.name(), "presence");
  EXPECT_EQ(presence.attr("xml:lang"), "fr");
  EXPECT_EQ(presence.child_text("status"), "Salut");

  EXPECT_EQ(p.events[3].kind, StreamEvent::Kind::StreamClose);
}

TEST(StreamParserTest, KeepsNamespacesAndPrefixes) {
  const std::string text = kHeader +
                           "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
                           "<stream:features/>"
                           "<db:result xmlns:db='jabber:server:dialback' to='a'>key</db:result>"
                           "<message xmlns:foo='urn:foo' foo:bar='1' xmlns='jabber:server'/>";
  const Parsed p = parse(text);
  ASSERT_FALSE(p.error) << p.error.message();
  ASSERT_EQ(p.events.size(), 5u);
  const XmlElement& iq = p.events[1].element;
  EXPECT_EQ(iq.xmlns(), ns::kClient);
  EXPECT_EQ(iq.first_element()->xmlns(), ns::kRoster);
  EXPECT_EQ(iq.to_string(ns::kClient),
            "<iq type=\"get\" id=\"1\"><query xmlns=\"jabber:iq:roster\"/></iq>");

  EXPECT_EQ(p.events[2].element.name(), "features");
  EXPECT_EQ(p.events[2].element.xmlns(), ns::kStream);

  const XmlElement& db = p.events[3].element;
  EXPECT_EQ(db.name(), "result");
  EXPECT_EQ(db.xmlns(), "jabber:server:dialback");
  EXPECT_EQ(db.attr("xmlns:db"), "jabber:server:dialback");
  EXPECT_EQ(db.text(), "key");

  const XmlElement& msg = p.events[4].element;
  EXPECT_EQ(msg.xmlns(), ns::kServer);
  EXPECT_EQ(msg.attr("foo:bar"), "1");
  EXPECT_EQ(msg.attr("xmlns:foo"), "urn:foo");
  // What we write parses back to the same thing.
  const Parsed again = parse(kHeader + msg.to_string(ns::kClient));
  ASSERT_FALSE(again.error);
  ASSERT_EQ(again.events.size(), 2u);
  EXPECT_EQ(describe(again.events[1]), describe(p.events[4]));
}

TEST(StreamParserTest, StanzasSerialiseOnTheirOwn) {
  // The prefix is declared on the stream header only; the forwarded stanza must still be
  // well-formed, and an element in the XML namespace keeps its reserved prefix.
  const std::string text =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
      "xmlns:ext='urn:ext'><message ext:flag='1'><xml:odd/></message>";
  const Parsed p = parse(text);
  ASSERT_FALSE(p.error) << p.error.message();
  ASSERT_EQ(p.events.size(), 2u);
  const XmlElement& msg = p.events[1].element;
  EXPECT_EQ(msg.attr("ext:flag"), "1");
  EXPECT_EQ(msg.attr("xmlns:ext"), "urn:ext");
  EXPECT_EQ(msg.to_string(ns::kClient),
            "<message xmlns:ext=\"urn:ext\" ext:flag=\"1\"><xml:odd/></message>");
  const Parsed again = parse(kShortHeader + msg.to_string(ns::kClient));
  ASSERT_FALSE(again.error) << again.error.message();
  ASSERT_EQ(again.events.size(), 2u);
  EXPECT_EQ(again.events[1].element.first_element()->xmlns(),
            "http://www.w3.org/XML/1998/namespace");
}

TEST(StreamParserTest, StreamHeaderAcceptsUnprefixedRootAndNoDeclaration) {
  const Parsed p =
      parse("<stream xmlns='http://etherx.jabber.org/streams' from='a.example' id='abc'><a/>");
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].element.attr("from"), "a.example");
  EXPECT_EQ(p.events[0].element.attr("id"), "abc");
  // The default namespace is the streams one here, so stanzas land in it too.
  EXPECT_EQ(p.events[0].element.attr("xmlns"), ns::kStream);
  EXPECT_EQ(p.events[1].element.xmlns(), ns::kStream);
  const Parsed none = parse("<s:stream xmlns:s='http://etherx.jabber.org/streams'><a/>");
  ASSERT_FALSE(none.error);
  ASSERT_EQ(none.events.size(), 2u);
  EXPECT_FALSE(none.events[0].element.has_attr("xmlns"));
  EXPECT_EQ(none.events[0].element.attr("xmlns:s"), ns::kStream);
  EXPECT_EQ(none.events[1].element.xmlns(), "");
}

TEST(StreamParserTest, WrongRootIsInvalidNamespace) {
  EXPECT_EQ(parse("<stream:stream xmlns:stream='urn:wrong'>").error, Errc::InvalidNamespace);
  EXPECT_EQ(parse("<stream:open xmlns:stream='http://etherx.jabber.org/streams'>").error,
            Errc::InvalidNamespace);
  EXPECT_EQ(parse("<message xmlns='jabber:client'/>").error, Errc::InvalidNamespace);
}

TEST(StreamParserTest, SplitAtEveryByteGivesTheSameEvents) {
  const std::string text =
      kHeader +
      "<message to='r\xC3\xA9@example.com' type='chat'>"
      "<body xml:lang='de'>Gr\xC3\xBC\xC3\x9F"
      "e \xE2\x98\x83 \xF0\x9F\x98\x80 &lt;&amp;&gt;&#x263A;&#65;</body>"
      "<html xmlns='http://jabber.org/protocol/xhtml-im'><p>a<b>b</b>c</p></html>"
      "<data><![CDATA[<not>&markup;]]></data>"
      "</message>\n  \t"
      "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
      "</stream:stream>";
  const auto whole = describe_all(parse(text));
  ASSERT_EQ(whole.back(), "ok");
  ASSERT_EQ(whole.size(), 5u);
  EXPECT_EQ(describe_all(parse(text, 1)), whole);
  EXPECT_EQ(describe_all(parse(text, 3)), whole);
  EXPECT_EQ(describe_all(parse(text, 7)), whole);
  // Two chunks, split at every possible position.
  for (std::size_t cut = 1; cut < text.size(); ++cut) {
    StreamParser parser;
    Parsed p;
    auto r = parser.feed(std::string_view(text).substr(0, cut), p.events);
    ASSERT_TRUE(r) << cut;
    r = parser.feed(std::string_view(text).substr(cut), p.events);
    ASSERT_TRUE(r) << cut;
    ASSERT_EQ(describe_all(p), whole) << "split at " << cut;
  }
}

TEST(StreamParserTest, TextIsOneNodeWhateverTheSplit) {
  const std::string text = kHeader + "<message><body>abc&amp;def\xC3\xA9</body></message>";
  const Parsed p = parse(text, 1);
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.events.size(), 2u);
  const XmlElement* body = p.events[1].element.child("body");
  ASSERT_NE(body, nullptr);
  ASSERT_EQ(body->nodes().size(), 1u);
  EXPECT_EQ(body->text(), "abc&def\xC3\xA9");
}

TEST(StreamParserTest, MalformedXmlIsNotWellFormed) {
  const char* bad[] = {
      "<message><body></message>",
      "<message to='a' to='b'/>",
      "<message to=a/>",
      "<x:message/>",             // unbound prefix
      "<message>\xFF</message>",  // not UTF-8
      "<message>\xC3</message>",  // truncated sequence
      "<message>&undefined;</message>",
      "<message>\x01</message>",  // not an XML character
      "<message><?xml version='1.0'?></message>",
      "</message>",
      "<>",
  };
  for (const char* stanza : bad) {
    const Parsed p = parse(kHeader + stanza);
    EXPECT_EQ(p.error, Errc::NotWellFormed) << stanza;
    // The header came before the error, so its event is still delivered.
    ASSERT_GE(p.events.size(), 1u) << stanza;
    EXPECT_EQ(p.events[0].kind, StreamEvent::Kind::StreamOpen);
  }
  EXPECT_EQ(parse("not xml").error, Errc::NotWellFormed);
}

TEST(StreamParserTest, OnlyUtf8IsAccepted) {
  // UTF-16 (with or without a byte order mark) must not be auto-detected.
  std::string utf16le;
  for (char c : kShortHeader) {
    utf16le += c;
    utf16le += '\0';
  }
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
    EXPECT_EQ(parse(utf16le, chunk).error, Errc::NotWellFormed);
    EXPECT_EQ(parse("\xFF\xFE" + utf16le, chunk).error, Errc::NotWellFormed);
    EXPECT_EQ(parse(std::string("\0<", 2) + utf16le.substr(0, utf16le.size() - 1), chunk).error,
              Errc::NotWellFormed);
    EXPECT_EQ(parse(std::string("G\0\0", 3), chunk).error, Errc::NotWellFormed);
  }
  // A NUL later on is an ordinary well-formedness error.
  EXPECT_EQ(parse(kShortHeader + std::string("<a>\0</a>", 8)).error, Errc::NotWellFormed);
  // The UTF-8 byte order mark is harmless.
  EXPECT_FALSE(parse("\xEF\xBB\xBF" + kHeader).error);
}

TEST(StreamParserTest, EventsBeforeAnErrorAreKeptAndTheErrorSticks) {
  StreamParser parser;
  std::vector<StreamEvent> events;
  const auto r = parser.feed(kHeader + "<presence/><message></iq>", events);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::NotWellFormed);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].element.name(), "presence");
  events.clear();
  const auto again = parser.feed("<presence/>", events);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Errc::NotWellFormed);
  EXPECT_TRUE(events.empty());
}

TEST(StreamParserTest, OversizedStanzaIsPolicyViolation) {
  ParserLimits limits;
  limits.max_stanza_bytes = 1000;
  const std::string small = "<message><body>" + std::string(900, 'a') + "</body></message>";
  const std::string big = "<message><body>" + std::string(1000, 'a') + "</body></message>";
  const std::string fits =
      kShortHeader + small + small + small;  // NOLINT(performance-inefficient-string-concatenation)
  const std::string too_big =
      kShortHeader + small + big + small;  // NOLINT(performance-inefficient-string-concatenation)
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{64}}) {
    const Parsed ok = parse(fits, chunk, limits);
    EXPECT_FALSE(ok.error) << chunk;
    EXPECT_EQ(ok.events.size(), 4u);
    const Parsed p = parse(too_big, chunk, limits);
    EXPECT_EQ(p.error, Errc::PolicyViolation) << chunk;
    EXPECT_EQ(p.events.size(), 2u) << chunk;  // the header and the first stanza
  }
  // A start tag that never ends: expat buffers it without a callback.
  const Parsed tag = parse(kShortHeader + "<message to='" + std::string(2000, 'a'), 100, limits);
  EXPECT_EQ(tag.error, Errc::PolicyViolation);
  // An oversized stream header.
  const Parsed header =
      parse("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='" +
                std::string(2000, 'a') + "'>",
            0, limits);
  EXPECT_EQ(header.error, Errc::PolicyViolation);
}

TEST(StreamParserTest, StanzaBudgetCountsEveryRawByte) {
  ParserLimits limits;
  limits.max_stanza_bytes = 100;
  // Exactly 100 bytes passes, 101 does not; entities count as written, not as expanded.
  std::string exact = "<m>" + std::string(93, 'x') + "</m>";
  ASSERT_EQ(exact.size(), 100u);
  EXPECT_FALSE(parse(kShortHeader + exact, 0, limits).error);
  EXPECT_FALSE(parse(kShortHeader + exact, 1, limits).error);
  std::string over = "<m>" + std::string(94, 'x') + "</m>";
  EXPECT_EQ(parse(kShortHeader + over, 0, limits).error, Errc::PolicyViolation);
  EXPECT_EQ(parse(kShortHeader + over, 1, limits).error, Errc::PolicyViolation);
  std::string entities = "<m>";
  for (int i = 0; i < 19; ++i) {
    entities += "&amp;";
  }
  entities += "</m>";
  ASSERT_EQ(entities.size(), 102u);
  EXPECT_EQ(parse(kShortHeader + entities, 0, limits).error, Errc::PolicyViolation);
}

TEST(StreamParserTest, WhitespaceKeepalivesDoNotAccumulate) {
  ParserLimits limits;
  limits.max_stanza_bytes = 100;
  std::string text = kShortHeader;
  for (int i = 0; i < 50; ++i) {
    text += "<presence/>        \n";
  }
  text += std::string(5000, ' ');
  text += "<message/>";
  const Parsed p = parse(text, 1, limits);
  EXPECT_FALSE(p.error) << p.error.message();
  EXPECT_EQ(p.events.size(), 52u);
}

TEST(StreamParserTest, DepthLimit) {
  ParserLimits limits;
  limits.max_depth = 3;
  EXPECT_FALSE(parse(kShortHeader + "<a><b><c/></b></a>", 0, limits).error);
  EXPECT_EQ(parse(kShortHeader + "<a><b><c><d/></c></b></a>", 0, limits).error,
            Errc::PolicyViolation);
  // The default limit copes with a deeply nested attack without recursion trouble.
  std::string deep = kShortHeader;
  for (int i = 0; i < 10000; ++i) {
    deep += "<a>";
  }
  EXPECT_EQ(parse(deep).error, Errc::PolicyViolation);
}

TEST(StreamParserTest, AttributeLimit) {
  ParserLimits limits;
  limits.max_attributes = 4;
  EXPECT_FALSE(parse(kShortHeader + "<a b='1' c='2' d='3' e='4'/>", 0, limits).error);
  EXPECT_EQ(parse(kShortHeader + "<a b='1' c='2' d='3' e='4' f='5'/>", 0, limits).error,
            Errc::PolicyViolation);
  // Namespace declarations count as attributes.
  EXPECT_EQ(
      parse(kShortHeader + "<a xmlns:p='u1' xmlns:q='u2' xmlns:r='u3' b='1' c='2'/>", 0, limits)
          .error,
      Errc::PolicyViolation);
}

TEST(StreamParserTest, RestrictedXml) {
  const std::string doctype =
      "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]>"
      "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
  EXPECT_EQ(parse(doctype).error, Errc::RestrictedXml);
  EXPECT_EQ(parse(doctype, 1).error, Errc::RestrictedXml);
  EXPECT_EQ(parse("<!DOCTYPE x SYSTEM 'http://example.com/x.dtd'>").error, Errc::RestrictedXml);
  const std::string laughs =
      "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
      "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
      "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
      "<lolz>&lol3;</lolz>";
  EXPECT_EQ(parse(laughs).error, Errc::RestrictedXml);
  EXPECT_EQ(parse(kHeader + "<?php echo 1; ?>").error, Errc::RestrictedXml);
  EXPECT_EQ(parse(kHeader + "<message><?pi data?></message>").error, Errc::RestrictedXml);
  EXPECT_EQ(parse("<?pi data?>" + kHeader).error, Errc::RestrictedXml);
  EXPECT_EQ(parse(kHeader + "<!-- hi -->").error, Errc::RestrictedXml);
  EXPECT_EQ(parse(kHeader + "<message><!-- hi --></message>", 1).error, Errc::RestrictedXml);
  EXPECT_EQ(parse("<!-- before -->" + kHeader).error, Errc::RestrictedXml);
  // An internal entity reference without a DTD is simply undefined.
  EXPECT_EQ(parse(kHeader + "<message>&lol;</message>").error, Errc::NotWellFormed);
}

TEST(StreamParserTest, NothingIsAcceptedAfterStreamClose) {
  const Parsed p = parse(kHeader + "</stream:stream><message/>");
  EXPECT_EQ(p.error, Errc::NotWellFormed);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].kind, StreamEvent::Kind::StreamClose);

  // Split: the close arrives in one feed, the stanza in the next.
  StreamParser parser;
  std::vector<StreamEvent> events;
  ASSERT_TRUE(parser.feed(kHeader + "</stream:stream>  ", events));
  EXPECT_EQ(events.back().kind, StreamEvent::Kind::StreamClose);
  const auto r = parser.feed("<message/>", events);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::NotWellFormed);
}

TEST(StreamParserTest, ResetStartsAFreshStream) {
  StreamParser parser;
  std::vector<StreamEvent> events;
  // After SASL success the client restarts the stream, XML declaration included.
  ASSERT_TRUE(parser.feed(kHeader + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", events));
  parser.reset();
  events.clear();
  ASSERT_TRUE(parser.feed(kHeader + "<iq/>", events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, StreamEvent::Kind::StreamOpen);
  EXPECT_EQ(events[1].element.name(), "iq");

  // reset() also clears a failed state.
  ASSERT_FALSE(parser.feed("<<<", events));
  parser.reset();
  events.clear();
  ASSERT_TRUE(parser.feed(kHeader, events));
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(parser.limits().max_depth, ParserLimits{}.max_depth);
}

TEST(StreamParserTest, EmptyFeedIsHarmless) {
  StreamParser parser;
  std::vector<StreamEvent> events;
  EXPECT_TRUE(parser.feed("", events));
  EXPECT_TRUE(parser.feed(kHeader, events));
  EXPECT_TRUE(parser.feed("", events));
  EXPECT_EQ(events.size(), 1u);
}

TEST(StreamParserTest, LargeStanzaFedByteByByteIsLinear) {
  // 200 KB of text in one-byte feeds: must not copy the text again on every byte.
  const std::string text =
      kHeader + "<message><body>" + std::string(std::size_t{200} * 1024, 'z') + "</body></message>";
  const auto start = std::chrono::steady_clock::now();
  const Parsed p = parse(text, 1);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(p.error) << p.error.message();
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].element.child_text("body").size(), 200u * 1024u);
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(StreamParserTest, EveryStanzaComesOutWithItsLastByte) {
  // Markup that a naive scanner could misread: '>' and quotes inside attribute values, markup
  // characters inside CDATA, references, "]]" in text.
  const std::vector<std::string> pieces = {
      kHeader,
      "<message to='a@b' x=\"it's > 1\" y='say \"hi\" >'/>",
      " \n",
      "<message><body><![CDATA[<a href='x'> \" ]] ]>]]>&amp;&#x41;&#66;]]&gt;</body></message>",
      "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>",
      "<presence><status>a > b &lt; c ' \"</status></presence>",
      "</stream:stream>",
  };
  StreamParser parser;
  std::vector<StreamEvent> events;
  std::size_t expected = 0;
  for (const auto& piece : pieces) {
    for (std::size_t i = 0; i < piece.size(); ++i) {
      ASSERT_TRUE(parser.feed(piece.substr(i, 1), events)) << piece << " at " << i;
      if (i + 1 < piece.size()) {
        ASSERT_EQ(events.size(), expected) << piece << " at " << i;
      }
    }
    if (piece.find_first_not_of(" \n") != std::string::npos) {
      ++expected;
    }
    ASSERT_EQ(events.size(), expected) << "no event right after " << piece;
  }
  EXPECT_EQ(events[2].element.child_text("body"), "<a href='x'> \" ]] ]>&AB]]>");
}

TEST(StreamParserTest, InvalidMarkupIsReportedWithoutWaitingForMore) {
  // Held-back tokens must not hide errors: each of these fails once its bytes are in.
  const std::pair<std::string, Errc> cases[] = {
      {"<message><body>AT&T</body></message>", Errc::NotWellFormed},
      {"<message to='a></message>", Errc::NotWellFormed},
      {"<message><!-- it's --></message>", Errc::RestrictedXml},
      {"<message><?pi '?></message>", Errc::RestrictedXml},
      {"<message><!DOCTYPE x></message>", Errc::NotWellFormed},
      {"<message><!x></message>", Errc::NotWellFormed},
  };
  for (const auto& [stanza, errc] : cases) {
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}}) {
      EXPECT_EQ(parse(kShortHeader + stanza, chunk).error, errc) << stanza << " chunk " << chunk;
    }
  }
}

TEST(StreamParserTest, LongTagTrickledByteByByteIsLinear) {
  // Expat rescans an incomplete token on every call (CVE-2023-52425); the parser holds such
  // tokens back, so this takes milliseconds instead of minutes.
  const std::string text =
      kHeader + "<message to='" + std::string(std::size_t{200} * 1024, 'a') + "'/>";
  const auto start = std::chrono::steady_clock::now();
  const Parsed p = parse(text, 1);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(p.error) << p.error.message();
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].element.attr("to").size(), 200u * 1024u);
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(StreamParserTest, ManyStanzasInOneFeed) {
  std::string text = kHeader;
  for (int i = 0; i < 2000; ++i) {
    text += "<message id='" + std::to_string(i) + "'><body>x</body></message>";
  }
  const Parsed p = parse(text);
  ASSERT_FALSE(p.error);
  ASSERT_EQ(p.events.size(), 2001u);
  EXPECT_EQ(p.events.back().element.attr("id"), "1999");
}

}  // namespace
}  // namespace tc::xmpp
