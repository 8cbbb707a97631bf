// SPDX-License-Identifier: Apache-2.0
// RFC 7395 framing (broker/src/net/framing): the input is a sequence of WebSocket text messages
// separated by NUL bytes (which XML cannot contain). Each message goes through ws::inbound and
// the result into one stream parser, as a session reads a WebSocket; nothing may crash. Each
// message is also checked on its own:
//  - inbound: the result is the message itself (less leading whitespace and an XML declaration),
//    a stream header or </stream:stream>. A header comes only from an <open/>, and parses as a
//    stream open carrying its to, version and xml:lang when the <open/> is in the framing
//    namespace, or fails with invalid-namespace when it is not; </stream:stream> comes only from
//    a <close/> in the framing namespace; an <open/> or framed <close/> that parses is never
//    passed through.
//  - outbound: the result is the message, or the message with " xmlns='jabber:client'" right
//    after the name of a message, presence or iq. When the message is one well-formed element
//    inheriting jabber:client, the result, parsed as a document of its own, is the same element.
// And every stanza the session parser produced, serialised as the session writes it and passed
// through outbound, parses back to the same name, namespace and attributes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/errc.h"
#include "xmpp/namespaces.h"
#include "xmpp/stream_parser.h"

#include "net/framing.h"

namespace {

namespace ws = tc::broker::net::ws;
using tc::xmpp::Errc;
using tc::xmpp::ParserLimits;
using tc::xmpp::StreamEvent;
using tc::xmpp::StreamParser;
using tc::xmpp::XmlElement;

constexpr std::string_view kFraming = tc::broker::net::kFramingNamespace;
constexpr std::string_view kStreamNs = "http://etherx.jabber.org/streams";
constexpr std::string_view kClientOpen =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>";
// The context a message is read in when it inherits jabber:client (the TCP stream's), and the
// context of a WebSocket message, which is a document of its own.
constexpr std::string_view kClientContext =
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>";
constexpr std::string_view kOwnContext =
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
constexpr std::string_view kAddedDeclaration = " xmlns='jabber:client'";
// The limits inbound reads an <open/> or <close/> with.
constexpr ParserLimits kInboundLimits{64 * 1024, 4, 32};
constexpr std::size_t kMaxMessages = 64;

[[noreturn]] void fail() {
  __builtin_trap();
}

void check(bool ok) {
  if (!ok) {
    fail();
  }
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view skip_space(std::string_view text) {
  while (!text.empty() && is_space(text.front())) {
    text.remove_prefix(1);
  }
  return text;
}

/// The name of the start tag `text` begins with, as written ("" when it does not begin with one).
std::string_view tag_name(std::string_view text) {
  if (text.empty() || text.front() != '<') {
    return {};
  }
  std::size_t end = 1;
  while (end < text.size() && !is_space(text[end]) && text[end] != '/' && text[end] != '>') {
    ++end;
  }
  return text.substr(1, end - 1);
}

/// The one element `text` holds, read after `context`: nullopt unless `text` parses without
/// error as exactly one top-level element (text around it is allowed; it is dropped).
std::optional<XmlElement> single(std::string_view context, std::string_view text,
                                 ParserLimits limits) {
  StreamParser parser(limits);
  std::vector<StreamEvent> events;
  if (!parser.feed(context, events) || events.size() != 1) {
    fail();  // our own context must parse
  }
  if (!parser.feed(text, events) || events.size() != 2 ||
      events[1].kind != StreamEvent::Kind::Stanza) {
    return std::nullopt;
  }
  return std::move(events[1].element);
}

bool same(const XmlElement& a, const XmlElement& b) {
  if (a.is_text() != b.is_text() || a.name() != b.name() || a.xmlns() != b.xmlns() ||
      a.attrs() != b.attrs() || a.nodes().size() != b.nodes().size()) {
    return false;
  }
  if (a.is_text()) {
    return a.text() == b.text();
  }
  for (std::size_t i = 0; i < a.nodes().size(); ++i) {
    if (!same(a.nodes()[i], b.nodes()[i])) {
      return false;
    }
  }
  return true;
}

/// What inbound may drop in front of a message: whitespace, then optionally an XML declaration
/// ("<?xml" and a space ... "?>") and more whitespace. Returns the rest.
std::string_view after_prolog(std::string_view message) {
  std::string_view text = skip_space(message);
  // Not a processing instruction whose target merely starts with "xml" (<?xml-stylesheet?>):
  // the parser refuses that as restricted XML.
  if (text.size() > 5 && text.starts_with("<?xml") && is_space(text[5])) {
    const auto end = text.find("?>");
    if (end != std::string_view::npos) {
      text = skip_space(text.substr(end + 2));
    }
  }
  return text;
}

void check_inbound(std::string_view message) {
  const std::string out = ws::inbound(message);
  const std::string_view body = after_prolog(message);
  const std::string_view name = tag_name(body);

  if (out == body) {
    // Passed through: it must not be an <open/> or framed <close/> that parses.
    if (name == "open" || name == "close") {
      const auto element = single(kClientContext, body, kInboundLimits);
      check(!element || (name == "close" && element->xmlns() != kFraming));
    }
    return;
  }

  if (out == "</stream:stream>") {
    check(name == "close");
    const auto element = single(kClientContext, body, kInboundLimits);
    check(element && element->name() == "close" && element->xmlns() == kFraming);
    return;
  }

  // Otherwise a stream header, from an <open/> that parses.
  check(out.starts_with("<stream:stream xmlns='jabber:client' xmlns:stream='"));
  check(name == "open");
  const auto open = single(kClientContext, body, kInboundLimits);
  check(open.has_value() && open->name() == "open");

  StreamParser parser;
  std::vector<StreamEvent> events;
  const auto fed = parser.feed(out, events);
  const bool framed = open->xmlns() == kFraming;
  if (!framed) {
    check(!fed && fed.error() == make_error_code(Errc::InvalidNamespace) && events.empty());
    return;
  }
  check(fed && events.size() == 1 && events[0].kind == StreamEvent::Kind::StreamOpen);
  const XmlElement& header = events[0].element;
  check(header.name() == "stream" && header.xmlns() == kStreamNs &&
        header.attr("xmlns") == tc::xmpp::ns::kClient);
  for (const std::string_view key : {"to", "version", "xml:lang"}) {
    const std::string_view want = open->attr(key);
    const std::string_view got = header.attr(key);
    check(got == want);
  }
  // Nothing else is carried over.
  for (const auto& [key, value] : header.attrs()) {
    check(key == "xmlns" || key == "xmlns:stream" || key == "to" || key == "version" ||
          key == "xml:lang");
  }
}

void check_outbound(std::string_view message) {
  const std::string out = ws::outbound(message);
  const std::string_view name = tag_name(message);
  const bool stanza = name == "message" || name == "presence" || name == "iq";
  if (out != message) {
    // Only ever the one declaration, right after a stanza's name.
    check(stanza);
    const std::size_t at = 1 + name.size();
    check(out.size() == message.size() + kAddedDeclaration.size());
    check(std::string_view(out).substr(0, at) == message.substr(0, at));
    check(std::string_view(out).substr(at, kAddedDeclaration.size()) == kAddedDeclaration);
    check(std::string_view(out).substr(at + kAddedDeclaration.size()) == message.substr(at));
  }
  if (!stanza) {
    return;  // only stanzas are translated; the rest must have come back unchanged (above)
  }
  const auto in = single(kClientContext, message, ParserLimits{});
  if (!in) {
    return;
  }
  // The added declaration is one more attribute and a few more bytes.
  ParserLimits roomier;
  roomier.max_stanza_bytes += 64;
  roomier.max_attributes += 1;
  const auto back = single(kOwnContext, out, roomier);
  check(back && same(*in, *back));
}

/// A stanza the session parsed, written as the session writes it (inheriting jabber:client) and
/// framed: it reads back with the same name, namespace and attributes.
void check_written(const XmlElement& stanza) {
  const std::string_view name = stanza.name();
  if ((name != "message" && name != "presence" && name != "iq") || stanza.xmlns().empty()) {
    return;  // an element without a namespace serialises as one that inherits (XmlElement)
  }
  const std::string out = ws::outbound(stanza.to_string(tc::xmpp::ns::kClient));
  ParserLimits unlimited;
  unlimited.max_stanza_bytes = std::size_t{1} << 30;
  unlimited.max_attributes = std::size_t{1} << 20;
  unlimited.max_depth = std::size_t{1} << 20;
  const auto back = single(kOwnContext, out, unlimited);
  check(back && back->name() == stanza.name() && back->xmlns() == stanza.xmlns() &&
        back->attrs() == stanza.attrs());
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> messages;
  while (messages.size() < kMaxMessages) {
    const auto nul = input.find('\0');
    messages.push_back(input.substr(0, nul));
    if (nul == std::string_view::npos) {
      break;
    }
    input.remove_prefix(nul + 1);
  }

  // The session: small limits, so that they are reached.
  StreamParser session(ParserLimits{2048, 6, 12});
  std::vector<StreamEvent> events;
  check(static_cast<bool>(session.feed(ws::inbound(kClientOpen), events)) && events.size() == 1 &&
        events[0].kind == StreamEvent::Kind::StreamOpen);
  bool failed = false;
  for (const std::string_view message : messages) {
    check_inbound(message);
    check_outbound(message);
    if (failed) {
      continue;
    }
    const std::string translated = ws::inbound(message);
    if (translated.starts_with("<stream:stream ")) {
      session.reset();  // a stream restart, as after SASL success
    }
    failed = !session.feed(translated, events);
  }
  for (const auto& event : events) {
    if (event.kind == StreamEvent::Kind::Stanza) {
      check_written(event.element);
    }
  }
  return 0;
}
