// SPDX-License-Identifier: Apache-2.0
#include "net/framing.h"

#include <vector>

#include "xmpp/namespaces.h"
#include "xmpp/stream_parser.h"

namespace tc::broker::net {

namespace ns = xmpp::ns;

namespace {

constexpr std::string_view kSpace = " \t\r\n";

bool is_space(char c) {
  return kSpace.find(c) != std::string_view::npos;
}

/// The element's name when `text` starts with a start tag ("" otherwise).
std::string_view start_tag_name(std::string_view text) {
  if (text.size() < 2 || text[0] != '<') {
    return {};
  }
  std::size_t end = 1;
  while (end < text.size() && !is_space(text[end]) && text[end] != '/' && text[end] != '>') {
    ++end;
  }
  return text.substr(1, end - 1);
}

/// Whether the start tag at the beginning of `text` (after its name) declares a default
/// namespace. Attribute values cannot hold their own quote character, so skipping from quote
/// to quote never mistakes a value for an attribute.
bool declares_default_namespace(std::string_view text, std::size_t pos) {
  while (pos < text.size()) {
    while (pos < text.size() && is_space(text[pos])) {
      ++pos;
    }
    if (pos >= text.size() || text[pos] == '>' || text[pos] == '/') {
      return false;
    }
    const std::size_t name_start = pos;
    while (pos < text.size() && text[pos] != '=' && !is_space(text[pos]) && text[pos] != '>') {
      ++pos;
    }
    if (text.substr(name_start, pos - name_start) == "xmlns") {
      return true;
    }
    const auto quote = text.find_first_of("'\"", pos);
    if (quote == std::string_view::npos) {
      return false;
    }
    const auto close = text.find(text[quote], quote + 1);
    if (close == std::string_view::npos) {
      return false;
    }
    pos = close + 1;
  }
  return false;
}

/// A namespace that is not the streams one: an <open/> outside the framing namespace gets a
/// header in it, which the session refuses with invalid-namespace (an empty one would not
/// even be well-formed XML).
constexpr std::string_view kNotTheStreamNamespace = "urn:tcbroker:not-the-framing-namespace";

void append_attr(std::string& out, std::string_view key, const std::string& value) {
  if (value.empty()) {
    return;
  }
  out += ' ';
  out += key;
  out += "='";
  for (const char c : xmpp::xml_escape(value)) {
    // Attribute-value normalisation would turn these into spaces (XML 1.0 §3.3.3).
    switch (c) {
      case '\t':
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  out += '\'';
}

}  // namespace

std::string stream_open(Framing framing, std::string_view id, std::string_view domain) {
  std::string out;
  if (framing == Framing::WebSocket) {
    out = "<open xmlns='" + std::string(kFramingNamespace) + "' id='" + std::string(id) +
          "' from='" + xmpp::xml_escape(domain) + "' version='1.0' xml:lang='en'/>";
    return out;
  }
  out =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
      "xmlns:stream='http://etherx.jabber.org/streams' id='" +
      std::string(id) + "' from='" + xmpp::xml_escape(domain) + "' version='1.0' xml:lang='en'>";
  return out;
}

std::string_view stream_close(Framing framing) {
  return framing == Framing::WebSocket ? "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
                                       : "</stream:stream>";
}

std::string stream_element_start(Framing framing, std::string_view name) {
  std::string out = "<stream:" + std::string(name);
  if (framing == Framing::WebSocket) {
    out += " xmlns:stream='";
    out += ns::kStream;
    out += '\'';
  }
  out += '>';
  return out;
}

namespace ws {

std::string inbound(std::string_view message) {
  std::string_view text = message;
  while (!text.empty() && is_space(text.front())) {
    text.remove_prefix(1);
  }
  if (text.size() > 5 && text.substr(0, 5) == "<?xml" && is_space(text[5])) {
    // An XML declaration (not a processing instruction whose name starts with "xml").
    const auto end = text.find("?>");
    if (end != std::string_view::npos) {
      text.remove_prefix(end + 2);
      while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
      }
    }
  }
  const auto name = start_tag_name(text);
  if (name != "open" && name != "close") {
    return std::string(text);
  }
  // Parse the one element inside a stream of its own to read its namespace and attributes.
  xmpp::StreamParser parser(xmpp::ParserLimits{64 * 1024, 4, 32});
  std::vector<xmpp::StreamEvent> events;
  const auto opened = parser.feed(
      "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>",
      events);
  const auto parsed = parser.feed(text, events);
  if (!opened || !parsed || events.size() != 2 ||
      events[1].kind != xmpp::StreamEvent::Kind::Stanza) {
    return std::string(text);  // the session's parser reports what is wrong with it
  }
  const auto& element = events[1].element;
  const bool framed = element.xmlns() == kFramingNamespace;
  if (name == "close") {
    return framed ? std::string("</stream:stream>") : std::string(text);
  }
  std::string header = "<stream:stream xmlns='jabber:client' xmlns:stream='";
  header += framed ? std::string_view(ns::kStream) : kNotTheStreamNamespace;
  header += '\'';
  append_attr(header, "to", std::string(element.attr("to")));
  append_attr(header, "version", std::string(element.attr("version")));
  append_attr(header, "xml:lang", std::string(element.attr("xml:lang")));
  header += '>';
  return header;
}

std::string outbound(std::string_view element) {
  const auto name = start_tag_name(element);
  if ((name != "message" && name != "presence" && name != "iq") ||
      declares_default_namespace(element, 1 + name.size())) {
    return std::string(element);
  }
  std::string out;
  out.reserve(element.size() + 24);
  out += element.substr(0, 1 + name.size());
  out += " xmlns='jabber:client'";
  out += element.substr(1 + name.size());
  return out;
}

}  // namespace ws
}  // namespace tc::broker::net
