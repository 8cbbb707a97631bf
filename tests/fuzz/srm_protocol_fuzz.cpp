// SPDX-License-Identifier: Apache-2.0
// The SRM peer link's frames (broker/src/ha/srm_protocol): bytes go through the stream parser
// as the peer link reads them, each frame through the three decoders. A frame that decodes is
// written again, parsed again and decoded again: it must come back field for field (what a
// node sends, its peer reads). A frame that does not decode must say why.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/stream_parser.h"

#include "ha/srm_protocol.h"

namespace {

namespace proto = tc::broker::ha::proto;
using tc::xmpp::StreamEvent;
using tc::xmpp::StreamParser;
using tc::xmpp::XmlElement;

// The header the peer link opens each channel with.
constexpr std::string_view kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'>";

std::vector<XmlElement> frames_of(std::string_view bytes) {
  StreamParser parser;
  std::vector<StreamEvent> events;
  if (!parser.feed(kHeader, events)) {
    __builtin_trap();  // our own header must parse
  }
  (void)parser.feed(bytes, events);  // malformed input: the frames before the error count
  std::vector<XmlElement> out;
  for (auto& e : events) {
    if (e.kind == StreamEvent::Kind::Stanza) {
      out.push_back(std::move(e.element));
    }
  }
  return out;
}

/// `frame` written and read back as the peer would.
XmlElement reparsed(const XmlElement& frame) {
  std::string text;
  frame.append_to(text);
  auto frames = frames_of(text);
  if (frames.size() != 1) {
    __builtin_trap();  // what we write must parse as exactly one frame
  }
  return std::move(frames.front());
}

bool same(const proto::Heartbeat& a, const proto::Heartbeat& b) {
  return a.node == b.node && a.state == b.state && a.reason == b.reason && a.epoch == b.epoch &&
         a.holds == b.holds && a.services == b.services && a.rooms == b.rooms &&
         a.users == b.users && a.client == b.client && a.rebooting == b.rebooting &&
         a.hears == b.hears && a.version == b.version;
}

bool same(const proto::Control& a, const proto::Control& b) {
  return a.id == b.id && a.op == b.op && a.partition == b.partition && a.reason == b.reason &&
         a.handed == b.handed && a.action == b.action && a.service == b.service;
}

bool same(const proto::ControlReply& a, const proto::ControlReply& b) {
  return a.id == b.id && a.ok == b.ok && a.error == b.error && a.status == b.status &&
         a.epoch == b.epoch;
}

template <class T, class Decode>
void round_trip(const XmlElement& frame, Decode decode) {
  std::string error;
  const std::optional<T> first = decode(frame, &error);
  if (!first) {
    if (error.empty()) {
      __builtin_trap();  // a refusal names its reason
    }
    return;
  }
  std::string again_error;
  const std::optional<T> second = decode(reparsed(proto::encode(*first)), &again_error);
  if (!second || !same(*first, *second)) {
    __builtin_trap();
  }
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const XmlElement& frame : frames_of(input)) {
    round_trip<proto::Heartbeat>(frame, proto::decode_heartbeat);
    round_trip<proto::Control>(frame, proto::decode_control);
    round_trip<proto::ControlReply>(frame, proto::decode_reply);
  }
  return 0;
}
