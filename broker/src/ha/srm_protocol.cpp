// SPDX-License-Identifier: Apache-2.0
#include "ha/srm_protocol.h"

#include <charconv>

namespace tc::broker::ha::proto {

using xmpp::XmlElement;

namespace {

constexpr std::string_view kServiceNames[] = {"router", "text-conference", "database",
                                              "authentication"};

/// Reads attribute `name` as a number; absent is `fallback`, anything else malformed.
template <class T>
bool read_number(const XmlElement& frame, std::string_view name, T fallback, T* out,
                 std::string* error) {
  const std::string_view text = frame.attr(name);
  if (text.empty()) {
    *out = fallback;
    return true;
  }
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    *error = "malformed " + std::string(name) + " '" + std::string(text) + "' in <" + frame.name() +
             "/>";
    return false;
  }
  *out = value;
  return true;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    if (!item.empty()) {
      out.emplace_back(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

XmlElement encode(const Heartbeat& hb) {
  XmlElement out("hb", std::string(kSrmNs));
  out.set_attr("v", std::to_string(hb.version));
  out.set_attr("node", hb.node);
  out.set_attr("state", std::string(to_string(hb.state)));
  out.set_attr("reason", std::string(to_string(hb.reason)));
  out.set_attr("epoch", std::to_string(hb.epoch));
  std::string holds;
  for (const auto& p : hb.holds) {
    holds += (holds.empty() ? "" : ",") + p;
  }
  out.set_attr("holds", holds);
  for (const auto& [name, status] : hb.services) {
    out.set_attr(name, status);
  }
  out.set_attr("rooms", std::to_string(hb.rooms));
  out.set_attr("users", std::to_string(hb.users));
  out.set_attr("client", hb.client);
  if (hb.rebooting) {
    out.set_attr("rebooting", "1");
  }
  out.set_attr("hears", hb.hears ? "1" : "0");
  return out;
}

std::optional<Heartbeat> decode_heartbeat(const XmlElement& frame, std::string* error) {
  Heartbeat hb;
  if (!read_number(frame, "v", 1, &hb.version, error) ||
      !read_number(frame, "epoch", std::int64_t{0}, &hb.epoch, error) ||
      !read_number(frame, "rooms", std::uint64_t{0}, &hb.rooms, error) ||
      !read_number(frame, "users", std::uint64_t{0}, &hb.users, error)) {
    return std::nullopt;
  }
  hb.node = std::string(frame.attr("node"));
  // A state or reason this node does not know (a newer peer's) reads as Unknown.
  hb.state = state_from(frame.attr("state")).value_or(State::Unknown);
  hb.reason = reason_from(frame.attr("reason")).value_or(Reason::Unknown);
  hb.holds = split_list(frame.attr("holds"));
  for (const auto name : kServiceNames) {
    hb.services[std::string(name)] = std::string(frame.attr(name));
  }
  hb.client = std::string(frame.attr("client"));
  hb.rebooting = frame.attr("rebooting") == "1";
  hb.hears = frame.attr("hears") != "0";  // absent: a peer from before one-way detection
  return hb;
}

XmlElement encode(const Control& ctl) {
  XmlElement out("ctl", std::string(kSrmNs));
  out.set_attr("id", ctl.id).set_attr("op", ctl.op);
  if (!ctl.partition.empty()) {
    out.set_attr("partition", ctl.partition);
  }
  out.set_attr("reason", std::string(to_string(ctl.reason)));
  if (ctl.op == "adopt") {
    out.set_attr("handed", ctl.handed ? "1" : "0");
  }
  if (!ctl.action.empty()) {
    out.set_attr("action", ctl.action);
  }
  if (!ctl.service.empty()) {
    out.set_attr("service", ctl.service);
  }
  return out;
}

std::optional<Control> decode_control(const XmlElement& frame, std::string* error) {
  Control ctl;
  ctl.id = std::string(frame.attr("id"));
  ctl.op = std::string(frame.attr("op"));
  if (ctl.id.empty() || ctl.op.empty()) {
    *error = "a <ctl/> without id or op";
    return std::nullopt;
  }
  ctl.partition = std::string(frame.attr("partition"));
  ctl.reason = reason_from(frame.attr("reason")).value_or(Reason::Unknown);
  ctl.handed = ctl.op == "adopt" && frame.attr("handed") == "1";  // only an adopt hands over
  ctl.action = std::string(frame.attr("action"));
  ctl.service = std::string(frame.attr("service"));
  return ctl;
}

XmlElement encode(const ControlReply& reply) {
  XmlElement out("ctl-reply", std::string(kSrmNs));
  out.set_attr("id", reply.id).set_attr("ok", reply.ok ? "1" : "0");
  if (!reply.error.empty()) {
    out.set_attr("error", reply.error);
  }
  if (reply.status != 0) {
    out.set_attr("status", std::to_string(reply.status));
  }
  if (reply.epoch != 0) {
    out.set_attr("epoch", std::to_string(reply.epoch));
  }
  return out;
}

std::optional<ControlReply> decode_reply(const XmlElement& frame, std::string* error) {
  ControlReply reply;
  reply.id = std::string(frame.attr("id"));
  if (reply.id.empty()) {
    *error = "a <ctl-reply/> without id";
    return std::nullopt;
  }
  if (!read_number(frame, "status", 0U, &reply.status, error) ||
      !read_number(frame, "epoch", std::int64_t{0}, &reply.epoch, error)) {
    return std::nullopt;
  }
  reply.ok = frame.attr("ok") == "1";
  reply.error = std::string(frame.attr("error"));
  return reply;
}

}  // namespace tc::broker::ha::proto
