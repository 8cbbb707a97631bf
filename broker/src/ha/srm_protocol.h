// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SRM control channel's frames (heartbeats, control requests and their replies): what
// they carry, how they are written and how they are read. Reading checks every number, so a
// garbled frame is refused with a reason instead of turning into a zero.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/xml_element.h"

#include "ha/states.h"

namespace tc::broker::ha::proto {

inline constexpr std::string_view kSrmNs = "urn:tcbroker:srm:1";
/// The frame version this node writes. Heartbeats name it; a frame without one is version 1
/// (nodes before versioning). Fields a reader does not know are ignored, so a newer peer can
/// add some without breaking an older one.
inline constexpr int kVersion = 1;

/// A node's heartbeat: what it is, what it holds and whether it hears its peer.
struct Heartbeat {
  std::string node;
  State state = State::Unknown;
  Reason reason = Reason::Unknown;
  std::int64_t epoch = 0;          // the lease epoch of the sender's own partition (0: none)
  std::vector<std::string> holds;  // partitions the sender holds
  std::map<std::string, std::string> services;  // critical service -> running|stopped|failed
  std::uint64_t rooms = 0;
  std::uint64_t users = 0;
  std::string client;  // the sender's client endpoint (host:port)
  bool rebooting = false;
  bool hears = true;  // the sender hears the receiver's heartbeats
  int version = kVersion;
};

/// A request to the peer. `op`: adopt (take my partition), release (hand mine back), hosting
/// (I serve my partition again), recover, admin (carry out `action` on yourself).
struct Control {
  std::string id;
  std::string op;
  std::string partition;
  Reason reason = Reason::Unknown;
  bool handed = false;  // adopt: the lease was transferred already
  std::string action;   // admin: failover, fallback, service-stop, service-start
  std::string service;  // admin: the critical service
};

struct ControlReply {
  std::string id;
  bool ok = false;
  std::string error;
  unsigned status = 0;     // the HTTP-like status of an admin request (0: none)
  std::int64_t epoch = 0;  // release: the epoch the lease was handed back at
};

xmpp::XmlElement encode(const Heartbeat& hb);
xmpp::XmlElement encode(const Control& ctl);
xmpp::XmlElement encode(const ControlReply& reply);

/// Each reads its frame (`hb`, `ctl`, `ctl-reply`); nullopt with `*error` saying what is
/// wrong when a field is malformed.
std::optional<Heartbeat> decode_heartbeat(const xmpp::XmlElement& frame, std::string* error);
std::optional<Control> decode_control(const xmpp::XmlElement& frame, std::string* error);
std::optional<ControlReply> decode_reply(const xmpp::XmlElement& frame, std::string* error);

}  // namespace tc::broker::ha::proto
