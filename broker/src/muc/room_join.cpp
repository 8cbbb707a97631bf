// SPDX-License-Identifier: Apache-2.0
// Presence: joining (XEP-0045 §7.2) with the history and subject a joiner gets, nickname
// changes (§7.6), status changes (§7.7), leaving (§7.14) and removals.
#include <algorithm>

#include <boost/asio/bind_executor.hpp>

#include "xmpp/datetime.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

#include "muc/room.h"
#include "shard/store_worker.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- presence ----

void Room::on_presence(const XmlElement& presence, const Jid& from, Completion done) {
  const Jid to = *Jid::parse(presence.attr("to"));
  const std::string_view type = presence.attr("type");
  if (type == "error") {
    // A client bouncing our presence: it is gone (XEP-0045 §7.14 lets us drop it).
    if (occupant_of(from) != nullptr) {
      leave(from, XmlElement("presence", ns::kClient));
    }
    return;
  }
  if (type == "unavailable") {
    leave(from, presence);
    return;
  }
  if (!type.empty()) {
    return;  // subscription requests to a room mean nothing
  }
  if (to.resource().empty()) {
    send_error(presence, from, Condition::JidMalformed, "a nickname is required");
    return;
  }
  Occupant* existing = occupant_of(from);
  if (existing == nullptr) {
    join(presence, from, to.resource());
  } else if (existing->nick != to.resource()) {
    change_nick(*existing, from, to.resource(), presence);
  } else {
    // A status change (XEP-0045 §7.7).
    existing->presence = presence;
    broadcast_presence(*existing, false, {}, {});
  }
  (void)done;
}

void Room::join(const XmlElement& presence, const Jid& from, const std::string& nick) {
  const Jid bare = from.bare();
  const Affiliation affiliation = affiliation_of(bare);
  const XmlElement* muc = presence.child("x", ns::kMuc);

  // XEP-0045 §7.2: the checks, in the order the XEP lists them.
  if (locked_ && affiliation != Affiliation::Owner) {
    send_error(presence, from, Condition::ItemNotFound, "the room is being configured");
    return;
  }
  if (affiliation == Affiliation::Outcast) {
    send_error(presence, from, Condition::Forbidden, "you are banned from this room");
    return;
  }
  if (config_.members_only && affiliation == Affiliation::None) {
    send_error(presence, from, Condition::RegistrationRequired, "this room is members-only");
    return;
  }
  Occupant* holder = occupant_by_nick(nick);
  if (holder != nullptr && holder->bare != bare) {
    send_error(presence, from, Condition::Conflict, "that nickname is in use");
    return;
  }
  for (const auto& [user, a] : affiliations_) {
    if (!a.nick.empty() && a.nick == nick && user != bare.bare_str()) {
      send_error(presence, from, Condition::Conflict, "that nickname is reserved");
      return;
    }
  }
  if (config_.password_protected && affiliation != Affiliation::Owner) {
    const std::string given = muc ? muc->child_text("password", ns::kMuc) : std::string();
    if (given != config_.password) {
      send_error(presence, from, Condition::NotAuthorized, "a correct password is required");
      return;
    }
  }
  if (holder == nullptr && config_.max_users > 0 && occupants_.size() >= config_.max_users &&
      affiliation != Affiliation::Owner && affiliation != Affiliation::Admin) {
    send_error(presence, from, {ErrorType::Wait, Condition::ServiceUnavailable},
               "the room is full");
    return;
  }

  const bool created = just_created_ && affiliation == Affiliation::Owner;
  just_created_ = false;
  Occupant* occupant = holder;
  if (occupant == nullptr) {
    Occupant o;
    o.nick = nick;
    o.bare = bare;
    o.affiliation = affiliation;
    o.role = default_role(affiliation);
    o.occupant_id = occupant_id_for(bare);
    occupant = &occupants_.emplace(nick, std::move(o)).first->second;
  }
  occupant->sessions.push_back(from);
  occupant->presence = presence;
  nick_of_session_[from.str()] = nick;

  // 1. The joiner learns who is here (above the broadcast cap: the moderators only).
  const std::size_t cap = host_.config().muc_presence_broadcast_cap;
  const bool capped = cap > 0 && occupants_.size() > cap;
  const bool sees_jids = can_see_jids(*occupant);
  for (const auto& [other_nick, other] : occupants_) {
    if (&other == occupant || (capped && other.role != Role::Moderator)) {
      continue;
    }
    XmlElement p = presence_of(other, false);
    XmlElement x("x", ns::kMucUser);
    auto& item = x.add_child("item", ns::kMucUser);
    item.set_attr("affiliation", std::string(affiliation_name(other.affiliation)));
    item.set_attr("role", std::string(role_name(other.role)));
    if (sees_jids && !other.sessions.empty()) {
      item.set_attr("jid", other.sessions.front().str());
    }
    p.add_child(std::move(x));
    send(from, p);
  }
  // 2. Everyone (and the joiner, with 110) learns of the joiner.
  std::vector<int> self_codes;
  if (config_.non_anonymous()) {
    self_codes.push_back(100);
  }
  self_codes.push_back(170);  // the room is archived (XEP-0045 §10.9 "logging")
  if (created) {
    self_codes.push_back(201);
  }
  broadcast_presence(*occupant, false, {}, self_codes);
  if (holder == nullptr) {
    archive_presence(*occupant, true);
  }
  // 3. History, then 4. the subject (XEP-0045 §7.2.15, §7.2.16).
  send_history(from, muc ? muc->child("history", ns::kMuc) : nullptr);
  send_subject(from);
}

void Room::send_history(const Jid& to, const XmlElement* request) {
  std::size_t max_stanzas = config_.history_length;
  std::optional<std::size_t> max_chars;
  std::optional<storage::UnixMillis> since;
  if (request != nullptr) {
    auto number = [](std::string_view v) -> std::optional<std::size_t> {
      if (v.empty() || v.size() > 10 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
      }
      return static_cast<std::size_t>(std::stoull(std::string(v)));
    };
    if (auto v = number(request->attr("maxstanzas"))) {
      max_stanzas = std::min(*v, host_.config().muc_max_history);
    }
    if (auto v = number(request->attr("maxchars"))) {
      max_chars = *v;
    }
    if (auto v = number(request->attr("seconds"))) {
      since = now_millis() - static_cast<storage::UnixMillis>(*v) * 1000;
    }
    if (auto v = xmpp::parse_xep82(request->attr("since"))) {
      since = since ? std::max(*since, *v) : *v;
    }
  }
  // Walk back from the newest message while every limit allows it. maxchars counts the
  // characters of the stanzas exactly as sent (XEP-0045 §7.2.15).
  const std::string delay_from = xmpp::xml_escape(jid_.bare_str());
  std::vector<RoomHost::Delivery> out;
  std::size_t chars = 0;
  for (auto it = history_.rbegin(); it != history_.rend() && out.size() < max_stanzas; ++it) {
    if (since && it->at < *since) {
      break;
    }
    std::string wire = address_to(it->xml, to.str());
    const auto close = wire.rfind("</message>");
    if (close == std::string::npos) {
      continue;
    }
    // XEP-0203 delay from the room, before the closing tag.
    wire.insert(close, "<delay xmlns='urn:xmpp:delay' from='" + delay_from + "' stamp='" +
                           xmpp::xep82_timestamp(it->at) + "'/>");
    if (max_chars && chars + wire.size() > *max_chars) {
      break;
    }
    chars += wire.size();
    out.push_back({to, to_wire(std::move(wire))});
  }
  std::reverse(out.begin(), out.end());
  host_.deliver(std::move(out));
}

void Room::send_subject(const Jid& to) {
  XmlElement m("message", ns::kClient);
  m.set_attr("from", record_.subject_nick.empty() ? jid_.bare_str()
                                                  : jid_.bare_str() + "/" + record_.subject_nick);
  m.set_attr("type", "groupchat").set_attr("id", xmpp::random_token(12));
  m.add_child("subject", ns::kClient).add_text(record_.subject);
  if (record_.subject_at > 0) {
    m.add_child("delay", ns::kDelay)
        .set_attr("from", jid_.bare_str())
        .set_attr("stamp", xmpp::xep82_timestamp(record_.subject_at));
  }
  send(to, m);
}

void Room::change_nick(Occupant& occupant, const Jid& from, const std::string& new_nick,
                       const XmlElement& presence) {
  // XEP-0045 §7.6.
  if (Occupant* holder = occupant_by_nick(new_nick); holder != nullptr) {
    send_error(presence, from, Condition::Conflict, "that nickname is in use");
    return;
  }
  for (const auto& [user, a] : affiliations_) {
    if (!a.nick.empty() && a.nick == new_nick && user != occupant.bare.bare_str()) {
      send_error(presence, from, Condition::Conflict, "that nickname is reserved");
      return;
    }
  }
  if (occupant.sessions.size() > 1) {
    send_error(presence, from, {ErrorType::Cancel, Condition::NotAcceptable},
               "leave with your other resources before changing nickname");
    return;
  }
  broadcast_presence(occupant, true, {303}, {}, new_nick);
  Occupant moved = std::move(occupant);
  occupants_.erase(moved.nick);
  moved.nick = new_nick;
  moved.presence = presence;
  nick_of_session_[from.str()] = new_nick;
  Occupant& now = occupants_.emplace(new_nick, std::move(moved)).first->second;
  std::vector<int> self_codes;
  if (config_.non_anonymous()) {
    self_codes.push_back(100);
  }
  broadcast_presence(now, false, {}, self_codes);
}

void Room::leave(const Jid& from, const XmlElement& presence) {
  Occupant* occupant = occupant_of(from);
  if (occupant == nullptr) {
    return;
  }
  nick_of_session_.erase(from.str());
  auto& sessions = occupant->sessions;
  if (sessions.size() > 1) {
    // One of several resources under this nick left: only it hears about it.
    sessions.erase(std::remove(sessions.begin(), sessions.end(), from), sessions.end());
    host_.on_occupant_gone(jid_, from);
    XmlElement p = presence_of(*occupant, true);
    XmlElement x = status_x({110});
    x.add_child("item", ns::kMucUser)
        .set_attr("affiliation", std::string(affiliation_name(occupant->affiliation)))
        .set_attr("role", "none");
    p.add_child(std::move(x));
    send(from, p);
    return;
  }
  occupant->presence = presence;
  broadcast_presence(*occupant, true, {}, {});
  archive_presence(*occupant, false);
  occupants_.erase(occupant->nick);
  host_.on_occupant_gone(jid_, from);
  maybe_empty();
}

void Room::remove_occupant(const std::string& nick, std::vector<int> codes,
                           const std::string& reason, const std::string& actor_nick) {
  Occupant* occupant = occupant_by_nick(nick);
  if (occupant == nullptr) {
    return;
  }
  broadcast_presence(*occupant, true, codes, {}, {}, reason, actor_nick);
  std::vector<Jid> gone = occupant->sessions;
  for (const auto& s : gone) {
    nick_of_session_.erase(s.str());
  }
  occupants_.erase(nick);
  for (const auto& s : gone) {
    host_.on_occupant_gone(jid_, s);
  }
  maybe_empty();
}

void Room::evict_all(std::string_view reason) {
  std::vector<std::string> nicks;
  for (const auto& [nick, o] : occupants_) {
    nicks.push_back(nick);
  }
  for (const auto& nick : nicks) {
    remove_occupant(nick, {332}, std::string(reason), {});
  }
}

void Room::maybe_empty() {
  if (occupants_.empty()) {
    host_.on_room_empty(jid_);
  }
}

void Room::archive_presence(const Occupant& occupant, bool joined) {
  if (!host_.config().muc_archive_presence) {
    return;
  }
  storage::NewMessage m;
  m.fence = host_.fence_for(jid_);
  m.room_jid = jid_.bare_str();
  m.stanza_id = xmpp::random_token(16);
  m.sender_nick = occupant.nick;
  m.sender_jid = occupant.bare.bare_str();
  m.kind = joined ? "join" : "leave";
  XmlElement p = presence_of(occupant, !joined);
  m.stanza_xml = p.to_string(ns::kClient);
  m.created_at = now_millis();
  host_.store().async_append(std::move(m),
                             asio::bind_executor(host_.executor(), [](Result<std::int64_t>) {}));
}

}  // namespace tc::broker::muc
