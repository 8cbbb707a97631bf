// SPDX-License-Identifier: Apache-2.0
// RFC 7395 framing (broker/src/net/framing): the server's stream header, close and stream
// elements for TCP and WebSocket, and the translation of WebSocket messages to and from the
// RFC 6120 byte stream the session reads and writes. Headers are checked by feeding them to the
// stream parser the session uses, not only by comparing strings.
#include "net/framing.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "xmpp/errc.h"
#include "xmpp/namespaces.h"
#include "xmpp/stream_parser.h"

namespace tc::broker::net {
namespace {

using xmpp::Errc;
using xmpp::StreamEvent;
using xmpp::StreamParser;
using xmpp::XmlElement;

constexpr std::string_view kFraming = "urn:ietf:params:xml:ns:xmpp-framing";
// A client's opening, in the framing namespace, as RFC 7395 §3.4 shows it.
constexpr std::string_view kOpen =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0' "
    "xml:lang='en'/>";
constexpr std::string_view kClose = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

// What the session's parser makes of `bytes`, fed in order to one parser.
struct Parsed {
  Result<void> result;
  std::vector<StreamEvent> events;
};

Parsed parse(const std::vector<std::string>& chunks) {
  StreamParser parser;
  Parsed out;
  for (const auto& chunk : chunks) {
    out.result = parser.feed(chunk, out.events);
    if (!out.result) {
      break;
    }
  }
  return out;
}

// The one element in `text`, parsed as a document of its own: inside a stream header that
// declares the stream prefix and no default namespace, as a WebSocket client reads a message.
XmlElement parse_message(std::string_view text) {
  const auto parsed =
      parse({"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", std::string(text)});
  EXPECT_TRUE(parsed.result) << text;
  EXPECT_EQ(parsed.events.size(), 2U) << text;
  if (parsed.events.size() != 2 || parsed.events[1].kind != StreamEvent::Kind::Stanza) {
    return {};
  }
  return parsed.events[1].element;
}

// ---- the server's side: stream_open, stream_close, stream_element_start ----

TEST(FramingStreamOpen, TcpIsAStreamHeaderWithAnXmlDeclaration) {
  EXPECT_EQ(stream_open(Framing::Tcp, "abc123", "example.com"),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' id='abc123' from='example.com' "
            "version='1.0' xml:lang='en'>");
}

TEST(FramingStreamOpen, WebSocketIsAnOpenElementInTheFramingNamespace) {
  EXPECT_EQ(stream_open(Framing::WebSocket, "abc123", "example.com"),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc123' from='example.com' "
            "version='1.0' xml:lang='en'/>");
}

TEST(FramingStreamOpen, TheDomainIsEscaped) {
  EXPECT_EQ(stream_open(Framing::WebSocket, "i", "a'b&c"),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='i' from='a&apos;b&amp;c' "
            "version='1.0' xml:lang='en'/>");
  const auto parsed = parse({stream_open(Framing::Tcp, "i", "a'b&c")});
  ASSERT_TRUE(parsed.result);
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].element.attr("from"), "a'b&c");
}

TEST(FramingStreamOpen, TcpHeaderParsesAsAStreamOpen) {
  const auto parsed = parse({stream_open(Framing::Tcp, "abc123", "example.com")});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message();
  ASSERT_EQ(parsed.events.size(), 1U);
  const auto& header = parsed.events[0];
  EXPECT_EQ(header.kind, StreamEvent::Kind::StreamOpen);
  EXPECT_EQ(header.element.name(), "stream");
  EXPECT_EQ(header.element.xmlns(), xmpp::ns::kStream);
  EXPECT_EQ(header.element.attr("xmlns"), xmpp::ns::kClient);
  EXPECT_EQ(header.element.attr("id"), "abc123");
  EXPECT_EQ(header.element.attr("from"), "example.com");
  EXPECT_EQ(header.element.attr("version"), "1.0");
  EXPECT_EQ(header.element.attr("xml:lang"), "en");
}

TEST(FramingStreamOpen, WebSocketOpenIsOneDocumentInTheFramingNamespace) {
  const auto open = parse_message(stream_open(Framing::WebSocket, "abc123", "example.com"));
  EXPECT_EQ(open.name(), "open");
  EXPECT_EQ(open.xmlns(), kFraming);
  EXPECT_EQ(open.attr("id"), "abc123");
  EXPECT_EQ(open.attr("from"), "example.com");
  EXPECT_EQ(open.attr("version"), "1.0");
  EXPECT_EQ(open.attr("xml:lang"), "en");
}

TEST(FramingStreamOpen, OurOwnWebSocketOpenTranslatesToAnAcceptedHeader) {
  // Read back as a client's <open/> (a peer speaking our own dialect), it is a stream header.
  const std::string header = ws::inbound(stream_open(Framing::WebSocket, "i", "example.com"));
  const auto parsed = parse({header});
  ASSERT_TRUE(parsed.result) << header;
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].kind, StreamEvent::Kind::StreamOpen);
  EXPECT_EQ(parsed.events[0].element.attr("version"), "1.0");
  EXPECT_EQ(parsed.events[0].element.attr("xml:lang"), "en");
}

TEST(FramingStreamClose, TcpAndWebSocket) {
  EXPECT_EQ(stream_close(Framing::Tcp), "</stream:stream>");
  EXPECT_EQ(stream_close(Framing::WebSocket), kClose);
  const auto close = parse_message(stream_close(Framing::WebSocket));
  EXPECT_EQ(close.name(), "close");
  EXPECT_EQ(close.xmlns(), kFraming);
}

TEST(FramingStreamElementStart, TcpLeansOnTheHeadersPrefix) {
  EXPECT_EQ(stream_element_start(Framing::Tcp, "features"), "<stream:features>");
  EXPECT_EQ(stream_element_start(Framing::Tcp, "error"), "<stream:error>");
}

TEST(FramingStreamElementStart, WebSocketDeclaresThePrefixItself) {
  EXPECT_EQ(stream_element_start(Framing::WebSocket, "features"),
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>");
  EXPECT_EQ(stream_element_start(Framing::WebSocket, "error"),
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>");
}

TEST(FramingStreamElementStart, WebSocketElementParsesWithoutAStreamHeader) {
  // A document of its own: no ancestor declares the stream prefix.
  const std::string wire = stream_element_start(Framing::WebSocket, "features") +
                           "<sm xmlns='urn:xmpp:sm:3'/></stream:features>";
  const auto parsed =
      parse({"<wrapper:stream xmlns:wrapper='http://etherx.jabber.org/streams'>", wire});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message();
  ASSERT_EQ(parsed.events.size(), 2U);
  const auto& features = parsed.events[1].element;
  EXPECT_EQ(features.name(), "features");
  EXPECT_EQ(features.xmlns(), xmpp::ns::kStream);
  EXPECT_NE(features.child("sm", xmpp::ns::kStreamManagement), nullptr);
  // Outbound leaves it alone: it is not a stanza.
  EXPECT_EQ(ws::outbound(wire), wire);
}

// ---- inbound: client messages to the RFC 6120 byte stream ----

TEST(FramingInbound, OpenBecomesAHeaderWithItsAttributes) {
  EXPECT_EQ(ws::inbound(kOpen),
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
            "to='example.com' version='1.0' xml:lang='en'>");
}

TEST(FramingInbound, OpenStanzaCloseParseAsAStream) {
  const auto parsed = parse({ws::inbound(kOpen),
                             ws::inbound("<message to='juliet@example.com' type='chat'>"
                                         "<body>hi</body></message>"),
                             ws::inbound(kClose)});
  ASSERT_TRUE(parsed.result) << parsed.result.error().message();
  ASSERT_EQ(parsed.events.size(), 3U);

  const auto& open = parsed.events[0];
  EXPECT_EQ(open.kind, StreamEvent::Kind::StreamOpen);
  EXPECT_EQ(open.element.name(), "stream");
  EXPECT_EQ(open.element.xmlns(), xmpp::ns::kStream);
  EXPECT_EQ(open.element.attr("xmlns"), xmpp::ns::kClient);
  EXPECT_EQ(open.element.attr("to"), "example.com");
  EXPECT_EQ(open.element.attr("version"), "1.0");
  EXPECT_EQ(open.element.attr("xml:lang"), "en");

  const auto& stanza = parsed.events[1];
  EXPECT_EQ(stanza.kind, StreamEvent::Kind::Stanza);
  EXPECT_EQ(stanza.element.name(), "message");
  EXPECT_EQ(stanza.element.xmlns(), xmpp::ns::kClient);
  EXPECT_EQ(stanza.element.attr("to"), "juliet@example.com");
  EXPECT_EQ(stanza.element.child_text("body", xmpp::ns::kClient), "hi");

  EXPECT_EQ(parsed.events[2].kind, StreamEvent::Kind::StreamClose);
}

TEST(FramingInbound, OpenWithDoubleQuotes) {
  const std::string header = ws::inbound(
      R"(<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0"/>)");
  EXPECT_EQ(header,
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
            "to='example.com' version='1.0'>");
  const auto parsed = parse({header});
  ASSERT_TRUE(parsed.result);
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].element.attr("to"), "example.com");
  EXPECT_FALSE(parsed.events[0].element.has_attr("xml:lang"));
}

TEST(FramingInbound, OpenAfterWhitespaceAndAnXmlDeclaration) {
  const std::string message =
      " \r\n\t<?xml version='1.0' encoding='UTF-8'?>\n  " + std::string(kOpen);
  EXPECT_EQ(ws::inbound(message), ws::inbound(kOpen));
  const auto parsed = parse({ws::inbound(message)});
  ASSERT_TRUE(parsed.result);
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].kind, StreamEvent::Kind::StreamOpen);
}

TEST(FramingInbound, OpenWithoutOptionalAttributesOmitsThem) {
  EXPECT_EQ(ws::inbound("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
            "<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>");
  // Other attributes (id, from) are not carried over.
  EXPECT_EQ(ws::inbound("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='a@b' id='x' "
                        "to='example.com'></open>"),
            "<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='example.com'>");
}

TEST(FramingInbound, OpenInAnotherNamespaceIsRefusedByTheParser) {
  for (const std::string_view open :
       {"<open xmlns='urn:example:wrong' to='example.com' version='1.0'/>",
        "<open to='example.com' version='1.0'/>",  // no namespace declared at all
        "<open xmlns='jabber:client' to='example.com' version='1.0'/>"}) {
    const std::string header = ws::inbound(open);
    EXPECT_TRUE(header.starts_with("<stream:stream ")) << header;
    EXPECT_EQ(header.find("xmlns:stream='http://etherx.jabber.org/streams'"), std::string::npos)
        << header;
    const auto parsed = parse({header});
    ASSERT_FALSE(parsed.result) << open;
    EXPECT_EQ(parsed.result.error(), make_error_code(Errc::InvalidNamespace)) << open;
    EXPECT_TRUE(parsed.events.empty());
  }
  EXPECT_EQ(ws::inbound("<open xmlns='urn:example:wrong' to='example.com' version='1.0'/>"),
            "<stream:stream xmlns='jabber:client' "
            "xmlns:stream='urn:tcbroker:not-the-framing-namespace' to='example.com' "
            "version='1.0'>");
}

TEST(FramingInbound, MalformedOpenPassesUnchanged) {
  for (const std::string_view open : {
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com'",  // unfinished
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com>",  // open quote
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a' to='b'/>",   // duplicate
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'>",                  // not closed
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to=example.com/>",  // no quotes
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/><open "
           "xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",                        // two elements
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'><!-- c --></open>",  // restricted
           "<open",
           "<close",
       }) {
    EXPECT_EQ(ws::inbound(open), open);
  }
}

TEST(FramingInbound, MalformedOpenIsReportedByTheSessionParser) {
  // Passed through, it is the first thing the parser sees: not a stream header.
  const auto parsed =
      parse({ws::inbound("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a' to='b'/>")});
  EXPECT_FALSE(parsed.result);
  EXPECT_TRUE(parsed.events.empty());
}

TEST(FramingInbound, CloseInTheFramingNamespaceEndsTheStream) {
  EXPECT_EQ(ws::inbound(kClose), "</stream:stream>");
  EXPECT_EQ(ws::inbound(R"(<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"></close>)"),
            "</stream:stream>");
  EXPECT_EQ(ws::inbound("\n<?xml version='1.0'?><close xmlns='urn:ietf:params:xml:ns:xmpp-framing' "
                        "/>"),
            "</stream:stream>");
}

TEST(FramingInbound, CloseInAnotherNamespacePassesUnchanged) {
  for (const std::string_view close :
       {"<close/>", "<close xmlns='urn:example:other'/>", "<close xmlns='jabber:client'></close>",
        "<close xmlns='http://etherx.jabber.org/streams'/>"}) {
    EXPECT_EQ(ws::inbound(close), close);
  }
}

TEST(FramingInbound, StanzasPassUnchanged) {
  for (const std::string_view stanza : {
           "<message to='juliet@example.com'><body>hi</body></message>",
           "<presence/>",
           "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
           "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>",
           "<r xmlns='urn:xmpp:sm:3'/>",
           "<opening xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",  // not <open/>
           "<closed xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",   // not <close/>
           "<message><body>&lt;open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/&gt;</body>"
           "</message>",
           "not xml at all",
           "",
       }) {
    EXPECT_EQ(ws::inbound(stanza), stanza);
  }
}

TEST(FramingInbound, AnXmlDeclarationBeforeAStanzaIsDropped) {
  EXPECT_EQ(ws::inbound("<?xml version='1.0'?><presence/>"), "<presence/>");
  EXPECT_EQ(ws::inbound("  <?xml version=\"1.0\"?>\n<presence/>"), "<presence/>");
}

TEST(FramingInbound, AttributeValuesWithMarkupCharactersAndQuotes) {
  const std::string header = ws::inbound(
      "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a>b&apos;c' "
      "version=\"1&quot;0\" xml:lang=\"it's\"/>");
  EXPECT_EQ(header,
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
            "to='a&gt;b&apos;c' version='1&quot;0' xml:lang='it&apos;s'>");
  const auto parsed = parse({header});
  ASSERT_TRUE(parsed.result) << header;
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].element.attr("to"), "a>b'c");
  EXPECT_EQ(parsed.events[0].element.attr("version"), "1\"0");
  EXPECT_EQ(parsed.events[0].element.attr("xml:lang"), "it's");

  // A '>' inside a value does not end the start tag early.
  EXPECT_EQ(ws::inbound("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' x='/>'/>"),
            "</stream:stream>");
  const std::string_view stanza = "<message to='a>b' id=\"x&quot;y\"><body>1 > 0</body></message>";
  EXPECT_EQ(ws::inbound(stanza), stanza);
}

TEST(FramingInbound, OnlyAnXmlDeclarationIsDropped) {
  // A processing instruction whose target merely starts with "xml" is not a declaration: it
  // passes, and the parser refuses it as restricted XML (RFC 6120 §11.1).
  for (const std::string_view message : {"<?xml-stylesheet href='a.xsl'?><presence/>",
                                         "<?xmlfoo?><presence/>", "<?xml?><presence/>"}) {
    EXPECT_EQ(ws::inbound(message), message);
    const auto parsed = parse({ws::inbound(kOpen), ws::inbound(message)});
    ASSERT_FALSE(parsed.result) << message;
    EXPECT_EQ(parsed.events.size(), 1U) << message;  // the header only
  }
  const auto parsed =
      parse({ws::inbound(kOpen), ws::inbound("<?xml-stylesheet href='a.xsl'?><presence/>")});
  ASSERT_FALSE(parsed.result);
  EXPECT_EQ(parsed.result.error(), make_error_code(Errc::RestrictedXml));
}

// ---- inbound: an <open/> outside the framing namespace, and attribute whitespace ----

// An <open/> in the *streams* namespace is not the framing's: refused like any other.
TEST(FramingInbound, OpenInTheStreamsNamespaceIsRefused) {
  const auto parsed = parse({ws::inbound(
      "<open xmlns='http://etherx.jabber.org/streams' to='example.com' version='1.0'/>")});
  ASSERT_FALSE(parsed.result);
  EXPECT_EQ(parsed.result.error(), make_error_code(Errc::InvalidNamespace));
}

// An <open/> in no namespace gets invalid-namespace (not a header with xmlns:stream='', which
// XML 1.0 does not allow and which would read as not-well-formed).
TEST(FramingInbound, OpenInNoNamespaceIsInvalidNamespace) {
  const auto parsed = parse({ws::inbound("<open xmlns='' to='example.com' version='1.0'/>")});
  ASSERT_FALSE(parsed.result);
  EXPECT_EQ(parsed.result.error(), make_error_code(Errc::InvalidNamespace));
}

// Tab, CR and LF in attribute values are written as character references, so attribute-value
// normalisation does not turn them into spaces.
TEST(FramingInbound, WhitespaceCharacterReferencesSurvive) {
  const auto parsed = parse({ws::inbound(
      "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&#9;b&#10;c' version='1.0'/>")});
  ASSERT_TRUE(parsed.result);
  ASSERT_EQ(parsed.events.size(), 1U);
  EXPECT_EQ(parsed.events[0].element.attr("to"), std::string_view("a\tb\nc"));
}

// ---- outbound: elements to WebSocket messages ----

TEST(FramingOutbound, AddsTheClientNamespaceToStanzas) {
  EXPECT_EQ(ws::outbound("<message to='a@b' type='chat'><body>hi</body></message>"),
            "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body></message>");
  EXPECT_EQ(ws::outbound("<presence/>"), "<presence xmlns='jabber:client'/>");
  EXPECT_EQ(ws::outbound("<iq>"), "<iq xmlns='jabber:client'>");
  EXPECT_EQ(ws::outbound("<iq type='result' id='1'/>"),
            "<iq xmlns='jabber:client' type='result' id='1'/>");
  EXPECT_EQ(ws::outbound("<iq\ttype='get'\n/>"), "<iq xmlns='jabber:client'\ttype='get'\n/>");
}

TEST(FramingOutbound, AddsItWhenOnlyAValueOrAChildMentionsXmlns) {
  EXPECT_EQ(ws::outbound("<message id=\"xmlns='x'\" to='y'/>"),
            "<message xmlns='jabber:client' id=\"xmlns='x'\" to='y'/>");
  EXPECT_EQ(ws::outbound("<message id='a xmlns=b' to=\"xmlns\"/>"),
            "<message xmlns='jabber:client' id='a xmlns=b' to=\"xmlns\"/>");
  EXPECT_EQ(ws::outbound("<iq><query xmlns='jabber:iq:roster'/></iq>"),
            "<iq xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>");
  // A prefix declaration is not a default namespace.
  EXPECT_EQ(ws::outbound("<presence xmlns:x='urn:x' x:a='1'/>"),
            "<presence xmlns='jabber:client' xmlns:x='urn:x' x:a='1'/>");
  EXPECT_EQ(ws::outbound("<presence xmlnsx='1'/>"), "<presence xmlns='jabber:client' xmlnsx='1'/>");
  // A '>' in a value does not end the tag.
  EXPECT_EQ(ws::outbound("<message id='>' xmlns:a='b'/>"),
            "<message xmlns='jabber:client' id='>' xmlns:a='b'/>");
}

TEST(FramingOutbound, LeavesElementsThatDeclareADefaultNamespace) {
  for (const std::string_view element : {
           "<message xmlns='jabber:client'/>",
           "<message xmlns=\"jabber:client\"><body>hi</body></message>",
           "<iq id='1' type='result' xmlns='jabber:client'/>",
           "<presence to='a@b' xmlns = \"jabber:server\"/>",
           "<message id='a>b' xmlns='jabber:client'/>",
           "<message id=\"it's\" xmlns='jabber:client'/>",
           "<iq xmlns=''/>",
       }) {
    EXPECT_EQ(ws::outbound(element), element);
  }
}

TEST(FramingOutbound, LeavesOtherElements) {
  for (const std::string_view element : {
           "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
           "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind "
           "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
           "<stream:error xmlns:stream='http://etherx.jabber.org/streams'/>",
           "<r xmlns='urn:xmpp:sm:3'/>",
           "<a xmlns='urn:xmpp:sm:3' h='3'/>",
           "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
           "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
           "<messages/>",
           "<messages><message/></messages>",
           "<presences/>",
           "<iqs/>",
           "<client:message xmlns:client='jabber:client'/>",
           "message",
           "<",
           "",
       }) {
    EXPECT_EQ(ws::outbound(element), element);
  }
}

XmlElement sample_message() {
  XmlElement message("message", xmpp::ns::kClient);
  message.set_attr("to", "juliet@example.com/balcony")
      .set_attr("from", "romeo@example.net/orchard")
      .set_attr("type", "chat")
      .set_attr("id", "it's \"quoted\" > xmlns='x'")
      .set_attr("xml:lang", "en");
  message.add_child("body", xmpp::ns::kClient).add_text("Art thou <not> Romeo & a Montague?");
  message.add_child("active", "http://jabber.org/protocol/chatstates");
  return message;
}

XmlElement sample_iq() {
  XmlElement iq("iq", xmpp::ns::kClient);
  iq.set_attr("type", "result").set_attr("id", "roster_1");
  auto& query = iq.add_child("query", xmpp::ns::kRoster);
  query.add_child("item", xmpp::ns::kRoster).set_attr("jid", "nurse@example.com");
  return iq;
}

TEST(FramingOutbound, SerialisedStanzasRoundTrip) {
  XmlElement presence("presence", xmpp::ns::kClient);
  XmlElement unavailable("presence", xmpp::ns::kClient);
  unavailable.set_attr("type", "unavailable").add_child("status").add_text("bye");
  for (const XmlElement& element : {sample_message(), sample_iq(), presence, unavailable}) {
    const std::string wire = element.to_string(xmpp::ns::kClient);
    ASSERT_EQ(wire.find("xmlns='jabber:client'"), std::string::npos) << wire;
    const std::string message = ws::outbound(wire);
    EXPECT_NE(message, wire);
    const XmlElement back = parse_message(message);
    EXPECT_EQ(back.name(), element.name());
    EXPECT_EQ(back.xmlns(), xmpp::ns::kClient);
    EXPECT_EQ(back.attrs(), element.attrs());
    // Children too: they inherit jabber:client from the added declaration.
    EXPECT_EQ(back.to_string(), element.to_string()) << message;
  }
}

TEST(FramingOutbound, ElementsInTheirOwnNamespaceRoundTripUnchanged) {
  XmlElement enabled("enabled", xmpp::ns::kStreamManagement);
  enabled.set_attr("id", "x").set_attr("resume", "true");
  XmlElement server_message("message", xmpp::ns::kServer);
  server_message.set_attr("to", "a@b");
  for (const XmlElement& element : {enabled, server_message}) {
    const std::string wire = element.to_string(xmpp::ns::kClient);
    EXPECT_EQ(ws::outbound(wire), wire);
    const XmlElement back = parse_message(ws::outbound(wire));
    EXPECT_EQ(back.to_string(), element.to_string());
  }
}

}  // namespace
}  // namespace tc::broker::net
