// SPDX-License-Identifier: Apache-2.0
// Feeds bytes to a StreamParser whole, split in two and byte by byte, checks that all three
// give the same events, and that every stanza serialises to XML that parses again.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/stream_parser.h"

namespace {

using tc::xmpp::ParserLimits;
using tc::xmpp::StreamEvent;
using tc::xmpp::StreamParser;

std::string describe(const std::vector<StreamEvent>& events) {
  std::string out;
  for (const auto& e : events) {
    out += std::to_string(static_cast<int>(e.kind));
    out += '{';
    out += e.element.xmlns();
    out += '}';
    for (const auto& [k, v] : e.element.attrs()) {
      out.append(k).append("=").append(v).append(" ");
    }
    e.element.append_to(out);
    out += '\n';
  }
  return out;
}

bool parse(std::string_view data, std::size_t cut, std::vector<StreamEvent>& events,
           ParserLimits limits = {}) {
  StreamParser parser(limits);
  if (!parser.feed(data.substr(0, cut), events)) {
    return false;
  }
  return static_cast<bool>(parser.feed(data.substr(cut), events));
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<StreamEvent> whole;
  const bool whole_ok = parse(input, input.size(), whole);
  std::vector<StreamEvent> halves;
  const bool halves_ok = parse(input, input.size() / 2, halves);
  // Where bytes are cut must never change the outcome.
  const std::string expected = describe(whole);
  if (whole_ok != halves_ok || expected != describe(halves)) {
    __builtin_trap();
  }
  if (input.size() <= 1024) {
    StreamParser parser;
    std::vector<StreamEvent> bytewise;
    bool ok = true;
    for (std::size_t i = 0; i < input.size() && ok; ++i) {
      ok = static_cast<bool>(parser.feed(input.substr(i, 1), bytewise));
    }
    if (ok != whole_ok || expected != describe(bytewise)) {
      __builtin_trap();
    }
  }
  // Whatever we parsed, we can write, and what we write parses again.
  ParserLimits unlimited;
  unlimited.max_stanza_bytes = std::numeric_limits<std::size_t>::max() / 2;
  unlimited.max_attributes = std::numeric_limits<std::size_t>::max() / 2;
  const std::string header =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
  for (const auto& e : whole) {
    if (e.kind != StreamEvent::Kind::Stanza) {
      continue;
    }
    const std::string wire = header + e.element.to_string("jabber:client");
    std::vector<StreamEvent> again;
    if (!parse(wire, wire.size(), again, unlimited) || again.size() != 2) {
      __builtin_trap();
    }
  }
  return 0;
}
