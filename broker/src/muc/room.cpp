// SPDX-License-Identifier: Apache-2.0
#include "muc/room.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <boost/asio/bind_executor.hpp>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

#include "shard/store_worker.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- free helpers ----

storage::UnixMillis now_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string xep82_timestamp(storage::UnixMillis at) {
  const std::time_t secs = static_cast<std::time_t>(at / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(at % 1000));
  return buf;
}

std::optional<storage::UnixMillis> parse_xep82(std::string_view text) {
  // CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm)
  int y, mo, d, h, mi, s;
  if (text.size() < 20 || std::sscanf(std::string(text.substr(0, 19)).c_str(),
                                      "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 3) {
        millis = millis * 10 + (text[pos] - '0');
      }
      ++digits;
      ++pos;
    }
    for (; digits < 3; ++digits) {
      millis *= 10;
    }
  }
  int offset_min = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(std::string(text.substr(pos + 1)).c_str(), "%2d:%2d", &oh, &om) != 2) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
  } else if (pos >= text.size() || text[pos] != 'Z') {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t t = timegm(&tm);
  return (static_cast<storage::UnixMillis>(t) - offset_min * 60) * 1000 + millis;
}

std::string address_to(const std::string& serialised, const std::string& to) {
  const auto cut = serialised.find_first_of(" />", 1);
  std::string out;
  out.reserve(serialised.size() + to.size() + 8);
  out.append(serialised, 0, cut);
  out += " to='";
  out += xmpp::xml_escape(to);
  out += '\'';
  out.append(serialised, cut, std::string::npos);
  return out;
}

namespace {

XmlElement status_x(const std::vector<int>& codes) {
  XmlElement x("x", ns::kMucUser);
  for (int code : codes) {
    x.add_child("status", ns::kMucUser).set_attr("code", std::to_string(code));
  }
  return x;
}

std::string hmac_id(const std::string& key, const std::string& data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return xmpp::base64_encode(std::string_view(reinterpret_cast<const char*>(out), 18));
}

}  // namespace

// ---- construction ----

Room::Room(RoomHost& host, Jid jid, Loaded loaded)
    : host_(host),
      jid_(std::move(jid)),
      config_(RoomConfig::from_json(loaded.record.config_json)),
      record_(std::move(loaded.record)) {
  for (auto& a : loaded.affiliations) {
    affiliations_[a.user_jid] = std::move(a);
  }
  for (auto& m : loaded.recent) {
    if (m.kind == "groupchat") {
      history_.push_back({std::move(m.stanza_id), std::move(m.sender_nick), std::move(m.stanza_xml),
                          m.created_at});
    }
  }
  if (config_.occupant_id_salt.empty()) {
    config_.occupant_id_salt = xmpp::random_token(24);
  }
}

std::shared_ptr<Room> Room::create(RoomHost& host, Jid jid, const Jid& creator) {
  const Config& c = host.config();
  Loaded loaded;
  loaded.record.jid = jid.bare_str();
  RoomConfig config;
  config.persistent = c.muc_default_persistent &&
                      (!c.muc_persistent_admin_only || host.is_service_admin(creator.bare())) &&
                      host.reserve_persistent_room();
  config.max_users = c.muc_default_max_users;
  config.history_length = c.muc_default_history;
  config.occupant_id_salt = xmpp::random_token(24);
  loaded.record.config_json = config.to_json();
  loaded.record.persistent = config.persistent;
  loaded.record.host_node = host.partition_of(jid);
  loaded.record.created_at = now_millis();
  storage::AffiliationRecord owner;
  owner.fence = host.fence_for(jid);
  owner.room_jid = loaded.record.jid;
  owner.user_jid = creator.bare_str();
  owner.affiliation = Affiliation::Owner;
  loaded.affiliations.push_back(owner);
  auto room = std::make_shared<Room>(host, std::move(jid), std::move(loaded));
  room->awaiting_config_ = true;
  room->just_created_ = true;
  // Queued ahead of any message the room will archive (the worker is FIFO).
  auto job = [record = room->record(), owner](storage::Store& s) -> Result<void> {
    if (auto saved = s.save_room(record); !saved) {
      return saved;
    }
    return s.set_affiliation(owner);
  };
  host.store().async_call(
      std::move(job), asio::bind_executor(host.executor(), [jid = room->jid_](Result<void> r) {
        if (!r) {
          spdlog::error("room {}: could not be stored: {}", jid.bare_str(), r.error().message());
        }
      }));
  return room;
}

storage::RoomRecord Room::record() const {
  storage::RoomRecord r = record_;
  r.fence = host_.fence_for(jid_);
  r.config_json = config_.to_json();
  r.persistent = config_.persistent;
  return r;
}

// ---- state helpers ----

Affiliation Room::affiliation_of(const Jid& bare) const {
  if (host_.is_service_admin(bare)) {
    return Affiliation::Owner;
  }
  const auto it = affiliations_.find(bare.bare_str());
  return it == affiliations_.end() ? Affiliation::None : it->second.affiliation;
}

Role Room::default_role(Affiliation affiliation) const {
  switch (affiliation) {
    case Affiliation::Owner:
    case Affiliation::Admin:
      return Role::Moderator;
    case Affiliation::Member:
      return Role::Participant;
    case Affiliation::None:
      return config_.moderated ? Role::Visitor : Role::Participant;
    case Affiliation::Outcast:
      return Role::None;
  }
  return Role::None;
}

Room::Occupant* Room::occupant_of(const Jid& full) {
  const auto it = nick_of_session_.find(full.str());
  return it == nick_of_session_.end() ? nullptr : occupant_by_nick(it->second);
}

Room::Occupant* Room::occupant_by_nick(const std::string& nick) {
  const auto it = occupants_.find(nick);
  return it == occupants_.end() ? nullptr : &it->second;
}

std::string Room::occupant_id_for(const Jid& bare) const {
  // XEP-0421: stable for a user in a room, across restarts and nodes, and not revealing
  // the JID (an HMAC under a per-room secret kept in the room's configuration).
  return hmac_id(config_.occupant_id_salt, bare.bare_str());
}

bool Room::can_see_jids(const Occupant& viewer) const {
  return config_.non_anonymous() || viewer.role == Role::Moderator;
}

ConfigLimits Room::limits_for(const Jid& actor) const {
  const Config& c = host_.config();
  ConfigLimits l;
  l.max_history = c.muc_max_history;
  l.retention_min_days = c.muc_retention_min_days;
  l.retention_max_days = c.muc_retention_max_days;
  l.may_make_persistent = !c.muc_persistent_admin_only || host_.is_service_admin(actor.bare());
  return l;
}

// ---- output ----

void Room::send(const Jid& to, const XmlElement& stanza) {
  XmlElement copy = stanza;
  copy.set_attr("to", to.str());
  host_.deliver({{to, to_wire(copy)}});
}

void Room::send_error(const XmlElement& stanza, const Jid& to, const std::string& type,
                      const std::string& condition, const std::string& text) {
  if (stanza.attr("type") == "error") {
    return;  // never answer an error with an error (RFC 6120 §8.3.1)
  }
  XmlElement reply(stanza.name(), ns::kClient);
  if (stanza.has_attr("id")) {
    reply.set_attr("id", std::string(stanza.attr("id")));
  }
  reply.set_attr("from", stanza.has_attr("to") ? std::string(stanza.attr("to")) : jid_.str());
  reply.set_attr("type", "error");
  if (stanza.name() == "presence") {
    reply.add_child("x", ns::kMuc);
  } else if (stanza.name() == "message") {
    if (const auto* body = stanza.child("body", ns::kClient)) {
      reply.add_child(*body);
    }
  }
  auto& error = reply.add_child("error", ns::kClient);
  error.set_attr("type", type).set_attr("by", jid_.bare_str());
  error.add_child(condition, ns::kStanzaErrors);
  if (!text.empty()) {
    error.add_child("text", ns::kStanzaErrors).add_text(text);
  }
  send(to, reply);
}

XmlElement Room::presence_of(const Occupant& occupant, bool unavailable) const {
  XmlElement p("presence", ns::kClient);
  p.set_attr("from", jid_.bare_str() + "/" + occupant.nick);
  if (unavailable) {
    p.set_attr("type", "unavailable");
    // XEP-0045 §7.14: a custom exit message goes to everyone.
    for (const XmlElement* status : occupant.presence.children("status", ns::kClient)) {
      p.add_child(*status);
    }
  } else {
    for (const auto& child : occupant.presence.nodes()) {
      if (!child.is_text() && child.xmlns() != ns::kMuc && child.xmlns() != ns::kMucUser &&
          child.xmlns() != ns::kOccupantId) {
        p.add_child(child);
      }
    }
  }
  p.add_child("occupant-id", ns::kOccupantId).set_attr("id", occupant.occupant_id);
  return p;
}

void Room::broadcast_presence(const Occupant& occupant, bool unavailable,
                              const std::vector<int>& codes, const std::vector<int>& self_codes,
                              const std::string& nick_change, const std::string& reason,
                              const std::string& actor_nick) {
  // Three variants, each serialised once: without the real JID, with it, and for the
  // occupant itself (with 110). Recipients get them with their own 'to'.
  auto build = [&](bool with_jid, bool self) {
    XmlElement p = presence_of(occupant, unavailable);
    XmlElement x = status_x({});
    auto& item = x.add_child("item", ns::kMucUser);
    item.set_attr("affiliation", std::string(affiliation_name(occupant.affiliation)));
    item.set_attr("role", std::string(role_name(unavailable ? Role::None : occupant.role)));
    if (with_jid && !occupant.sessions.empty()) {
      item.set_attr("jid", occupant.sessions.front().str());
    }
    if (!nick_change.empty()) {
      item.set_attr("nick", nick_change);
    }
    if (!actor_nick.empty()) {
      item.add_child("actor", ns::kMucUser).set_attr("nick", actor_nick);
    }
    if (!reason.empty()) {
      item.add_child("reason", ns::kMucUser).add_text(reason);
    }
    std::vector<int> all = codes;
    if (self) {
      all.insert(all.end(), self_codes.begin(), self_codes.end());
      all.push_back(110);
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (int code : all) {
      x.add_child("status", ns::kMucUser).set_attr("code", std::to_string(code));
    }
    p.add_child(std::move(x));
    return p.to_string(ns::kClient);
  };
  const std::string without_jid = build(false, false);
  const std::string with_jid = build(true, false);
  const std::string self = build(true, true);

  const std::size_t cap = host_.config().muc_presence_broadcast_cap;
  const bool capped = cap > 0 && occupants_.size() > cap && occupant.role != Role::Moderator;
  std::vector<RoomHost::Delivery> out;
  out.reserve(occupants_.size() + occupant.sessions.size());
  for (const auto& [nick, o] : occupants_) {
    if (&o == &occupant) {
      continue;
    }
    // Above the cap, ordinary comings and goings are shown to moderators only (as ejabberd's
    // max_users_presence and Prosody's presence limits do): joins stay O(1) per occupant.
    if (capped && o.role != Role::Moderator) {
      continue;
    }
    const std::string& wire = can_see_jids(o) ? with_jid : without_jid;
    for (const auto& s : o.sessions) {
      out.push_back({s, to_wire(address_to(wire, s.str()))});
    }
  }
  for (const auto& s : occupant.sessions) {
    out.push_back({s, to_wire(address_to(self, s.str()))});
  }
  host_.deliver(std::move(out));
}

void Room::broadcast(const XmlElement& stanza) {
  const std::string wire = stanza.to_string(ns::kClient);
  std::vector<RoomHost::Delivery> out;
  out.reserve(occupants_.size());
  for (const auto& [nick, o] : occupants_) {
    for (const auto& s : o.sessions) {
      out.push_back({s, to_wire(address_to(wire, s.str()))});
    }
  }
  host_.deliver(std::move(out));
}

void Room::broadcast_status(std::vector<int> codes) {
  XmlElement m("message", ns::kClient);
  m.set_attr("from", jid_.bare_str()).set_attr("type", "groupchat");
  m.set_attr("id", xmpp::random_token(12));
  m.add_child(status_x(codes));
  broadcast(m);
}

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
    send_error(presence, from, "modify", "jid-malformed", "a nickname is required");
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
    send_error(presence, from, "cancel", "item-not-found", "the room is being configured");
    return;
  }
  if (affiliation == Affiliation::Outcast) {
    send_error(presence, from, "auth", "forbidden", "you are banned from this room");
    return;
  }
  if (config_.members_only && affiliation == Affiliation::None) {
    send_error(presence, from, "auth", "registration-required", "this room is members-only");
    return;
  }
  Occupant* holder = occupant_by_nick(nick);
  if (holder != nullptr && holder->bare != bare) {
    send_error(presence, from, "cancel", "conflict", "that nickname is in use");
    return;
  }
  for (const auto& [user, a] : affiliations_) {
    if (!a.nick.empty() && a.nick == nick && user != bare.bare_str()) {
      send_error(presence, from, "cancel", "conflict", "that nickname is reserved");
      return;
    }
  }
  if (config_.password_protected && affiliation != Affiliation::Owner) {
    const std::string given = muc ? muc->child_text("password", ns::kMuc) : std::string();
    if (given != config_.password) {
      send_error(presence, from, "auth", "not-authorized", "a correct password is required");
      return;
    }
  }
  if (holder == nullptr && config_.max_users > 0 && occupants_.size() >= config_.max_users &&
      affiliation != Affiliation::Owner && affiliation != Affiliation::Admin) {
    send_error(presence, from, "wait", "service-unavailable", "the room is full");
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
    if (auto v = parse_xep82(request->attr("since"))) {
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
                           xep82_timestamp(it->at) + "'/>");
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
        .set_attr("stamp", xep82_timestamp(record_.subject_at));
  }
  send(to, m);
}

void Room::change_nick(Occupant& occupant, const Jid& from, const std::string& new_nick,
                       const XmlElement& presence) {
  // XEP-0045 §7.6.
  if (Occupant* holder = occupant_by_nick(new_nick); holder != nullptr) {
    send_error(presence, from, "cancel", "conflict", "that nickname is in use");
    return;
  }
  for (const auto& [user, a] : affiliations_) {
    if (!a.nick.empty() && a.nick == new_nick && user != occupant.bare.bare_str()) {
      send_error(presence, from, "cancel", "conflict", "that nickname is reserved");
      return;
    }
  }
  if (occupant.sessions.size() > 1) {
    send_error(presence, from, "cancel", "not-acceptable",
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

// ---- messages ----

void Room::on_message(const XmlElement& message, const Jid& from, Completion done) {
  const Jid to = *Jid::parse(message.attr("to"));
  const std::string_view type = message.attr("type");
  if (type == "error") {
    // A bounced message: the occupant's client is gone (XEP-0045 §7.14).
    if (occupant_of(from) != nullptr && message.child("error", ns::kClient) != nullptr) {
      leave(from, XmlElement("presence", ns::kClient));
    }
    return;
  }
  if (!to.resource().empty()) {
    on_private_message(message, from, to.resource());
    return;
  }
  if (const XmlElement* x = message.child("x", ns::kMucUser); x != nullptr) {
    if (x->child("invite", ns::kMucUser) != nullptr) {
      on_invite(message, from);
      return;
    }
    if (const XmlElement* decline = x->child("decline", ns::kMucUser)) {
      on_decline(message, *decline, from);
      return;
    }
  }
  if (type != "groupchat") {
    send_error(message, from, "modify", "bad-request", "messages to a room are type groupchat");
    return;
  }
  Occupant* sender = occupant_of(from);
  if (sender == nullptr) {
    send_error(message, from, "modify", "not-acceptable", "only occupants may send messages");
    return;
  }
  if (message.child("subject", ns::kClient) != nullptr &&
      message.child("body", ns::kClient) == nullptr) {
    on_subject_change(message, *sender, from, std::move(done));
    return;
  }
  on_groupchat(message, *sender, from, std::move(done));
}

void Room::on_groupchat(const XmlElement& message, Occupant& sender, const Jid& from,
                        Completion done) {
  if (sender.role == Role::Visitor) {
    send_error(message, from, "auth", "forbidden", "visitors may not speak in this room");
    return;
  }
  XmlElement out("message", ns::kClient);
  for (const auto& [k, v] : message.attrs()) {
    if (k != "to" && k != "from") {
      out.set_attr(k, v);
    }
  }
  out.set_attr("from", jid_.bare_str() + "/" + sender.nick);
  for (const auto& child : message.nodes()) {
    if (child.is_text()) {
      continue;
    }
    // XEP-0359 §7 and XEP-0421: ids claimed by the sender are not trusted.
    if ((child.name() == "stanza-id" && child.xmlns() == ns::kStanzaId) ||
        (child.name() == "occupant-id" && child.xmlns() == ns::kOccupantId)) {
      continue;
    }
    out.add_child(child);
  }
  out.add_child("occupant-id", ns::kOccupantId).set_attr("id", sender.occupant_id);
  const bool archived = message.child("body", ns::kClient) != nullptr;
  if (!archived) {
    // Chat states and other body-less messages are relayed, not archived (XEP-0313 §5).
    broadcast(out);
    return;
  }
  const std::string stanza_id = xmpp::random_token(16);
  out.add_child("stanza-id", ns::kStanzaId)
      .set_attr("id", stanza_id)
      .set_attr("by", jid_.bare_str());

  storage::NewMessage record;
  record.fence = host_.fence_for(jid_);
  record.room_jid = jid_.bare_str();
  record.stanza_id = stanza_id;
  record.sender_nick = sender.nick;
  record.sender_jid = sender.bare.bare_str();
  record.kind = "groupchat";
  record.stanza_xml = out.to_string(ns::kClient);
  record.created_at = now_millis();

  HistoryEntry entry{stanza_id, sender.nick, record.stanza_xml, record.created_at};
  // The durability rule: nobody, the sender included, sees the message before it is
  // committed; the session's XEP-0198 count waits on `done` too.
  host_.store().async_append(
      std::move(record),
      asio::bind_executor(host_.executor(),
                          [self = shared_from_this(), entry = std::move(entry), message, from,
                           done = std::move(done)](Result<std::int64_t> committed) mutable {
                            if (self->destroyed_) {
                              return;
                            }
                            if (!committed) {
                              self->send_error(message, from, "wait", "resource-constraint",
                                               "the message could not be stored; send it again");
                              return;
                            }
                            const std::string wire = entry.xml;
                            self->history_.push_back(std::move(entry));
                            while (self->history_.size() > self->host_.config().muc_max_history) {
                              self->history_.pop_front();
                            }
                            std::vector<RoomHost::Delivery> deliveries;
                            deliveries.reserve(self->occupants_.size());
                            for (const auto& [nick, o] : self->occupants_) {
                              for (const auto& s : o.sessions) {
                                deliveries.push_back({s, to_wire(address_to(wire, s.str()))});
                              }
                            }
                            self->host_.deliver(std::move(deliveries));
                            done();
                          }));
}

void Room::on_subject_change(const XmlElement& message, Occupant& sender, const Jid& from,
                             Completion done) {
  // XEP-0045 §8.1: moderators always; participants when the room allows it.
  if (!(sender.role == Role::Moderator ||
        (config_.change_subject && sender.role == Role::Participant))) {
    send_error(message, from, "auth", "forbidden", "you may not change the subject");
    return;
  }
  storage::RoomRecord next = record();
  next.subject = message.child_text("subject", ns::kClient);
  next.subject_nick = sender.nick;
  next.subject_at = now_millis();
  auto job = [next](storage::Store& s) { return s.save_room(next); };
  host_.store().async_call(
      std::move(job),
      asio::bind_executor(host_.executor(), [self = shared_from_this(), next, message, from,
                                             done = std::move(done)](Result<void> r) mutable {
        if (self->destroyed_) {
          return;
        }
        if (!r) {
          self->send_error(message, from, "wait", "resource-constraint",
                           "the subject could not be stored");
          return;
        }
        self->record_.subject = next.subject;
        self->record_.subject_nick = next.subject_nick;
        self->record_.subject_at = next.subject_at;
        XmlElement out("message", ns::kClient);
        out.set_attr("from", self->jid_.bare_str() + "/" + next.subject_nick);
        out.set_attr("type", "groupchat");
        out.set_attr("id", message.has_attr("id") ? std::string(message.attr("id"))
                                                  : xmpp::random_token(12));
        out.add_child("subject", ns::kClient).add_text(next.subject);
        self->broadcast(out);
        done();
      }));
}

void Room::on_private_message(const XmlElement& message, const Jid& from,
                              const std::string& to_nick) {
  Occupant* sender = occupant_of(from);
  if (sender == nullptr) {
    send_error(message, from, "modify", "not-acceptable", "only occupants may send messages");
    return;
  }
  if (message.attr("type") == "groupchat") {
    send_error(message, from, "modify", "bad-request", "groupchat goes to the room");
    return;
  }
  const std::string& policy = config_.allow_pm;
  const bool allowed = policy == "anyone" ||
                       (policy == "participants" && sender->role != Role::Visitor) ||
                       (policy == "moderators" && sender->role == Role::Moderator);
  if (!allowed) {
    send_error(message, from, "cancel", "forbidden", "private messages are not allowed here");
    return;
  }
  Occupant* target = occupant_by_nick(to_nick);
  if (target == nullptr) {
    send_error(message, from, "cancel", "item-not-found", "no occupant has that nickname");
    return;
  }
  XmlElement out = message;
  out.remove_attr("to");
  out.set_attr("from", jid_.bare_str() + "/" + sender->nick);
  if (out.child("x", ns::kMucUser) == nullptr) {
    out.add_child("x", ns::kMucUser);  // XEP-0045 §7.5: marks it as a private message
  }
  out.remove_children("occupant-id", ns::kOccupantId);
  out.add_child("occupant-id", ns::kOccupantId).set_attr("id", sender->occupant_id);
  const std::string wire = out.to_string(ns::kClient);
  std::vector<RoomHost::Delivery> deliveries;
  for (const auto& s : target->sessions) {
    deliveries.push_back({s, to_wire(address_to(wire, s.str()))});
  }
  host_.deliver(std::move(deliveries));
}

void Room::on_invite(const XmlElement& message, const Jid& from) {
  // XEP-0045 §7.8.2 mediated invitation.
  Occupant* sender = occupant_of(from);
  if (sender == nullptr) {
    send_error(message, from, "modify", "not-acceptable", "only occupants may invite");
    return;
  }
  if (config_.members_only && !config_.allow_invites && sender->role != Role::Moderator) {
    send_error(message, from, "auth", "forbidden", "only moderators may invite here");
    return;
  }
  for (const XmlElement* invite :
       message.child("x", ns::kMucUser)->children("invite", ns::kMucUser)) {
    auto invitee = Jid::parse(invite->attr("to"));
    if (!invitee) {
      send_error(message, from, "modify", "jid-malformed", "bad invitee address");
      continue;
    }
    XmlElement out("message", ns::kClient);
    out.set_attr("from", jid_.bare_str());
    out.set_attr("id", xmpp::random_token(12));
    auto& x = out.add_child("x", ns::kMucUser);
    auto& i = x.add_child("invite", ns::kMucUser);
    i.set_attr("from", from.bare_str());
    const std::string reason = invite->child_text("reason", ns::kMucUser);
    if (!reason.empty()) {
      i.add_child("reason", ns::kMucUser).add_text(reason);
    }
    if (config_.password_protected) {
      x.add_child("password", ns::kMucUser).add_text(config_.password);
    }
    // XEP-0249-style direct hint that many clients also read.
    out.add_child("x", "jabber:x:conference").set_attr("jid", jid_.bare_str());
    send(*invitee, out);
  }
}

void Room::on_decline(const XmlElement& message, const XmlElement& decline, const Jid& from) {
  // XEP-0045 §7.8.2: the service passes a declined invitation back to the inviter.
  auto inviter = Jid::parse(decline.attr("to"));
  if (!inviter) {
    send_error(message, from, "modify", "jid-malformed", "decline needs the inviter's JID");
    return;
  }
  XmlElement out("message", ns::kClient);
  out.set_attr("from", jid_.bare_str());
  out.set_attr("id", xmpp::random_token(12));
  auto& d = out.add_child("x", ns::kMucUser).add_child("decline", ns::kMucUser);
  d.set_attr("from", from.bare_str());
  const std::string reason = decline.child_text("reason", ns::kMucUser);
  if (!reason.empty()) {
    d.add_child("reason", ns::kMucUser).add_text(reason);
  }
  send(*inviter, out);
}

// ---- iq ----

void Room::on_iq(const XmlElement& iq, const Jid& from, Completion done) {
  const Jid to = *Jid::parse(iq.attr("to"));
  const std::string_view type = iq.attr("type");
  if (type == "result" || type == "error") {
    return;
  }
  const XmlElement* payload = iq.first_element();
  if (payload == nullptr) {
    send_error(iq, from, "modify", "bad-request");
    return;
  }
  const bool get = type == "get";
  if (!to.resource().empty()) {
    // iq to an occupant. XEP-0410: a ping to one's own nick is answered by the room.
    Occupant* self = occupant_of(from);
    if (payload->name() == "ping" && payload->xmlns() == ns::kPing) {
      if (self == nullptr) {
        send_error(iq, from, "cancel", "not-acceptable", "you are not joined to this room");
      } else if (self->nick == to.resource()) {
        XmlElement result = make_iq_result(iq);
        send(from, result);
      } else if (occupant_by_nick(to.resource()) == nullptr) {
        send_error(iq, from, "cancel", "item-not-found");
      } else {
        send(from, make_iq_result(iq));  // the room vouches that the occupant is present
      }
      return;
    }
    send_error(iq, from, "cancel", "service-unavailable");
    return;
  }
  const std::string& xmlns = payload->xmlns();
  if (xmlns == ns::kMucAdmin && payload->name() == "query") {
    on_admin_iq(iq, from, std::move(done));
  } else if (xmlns == ns::kMucOwner && payload->name() == "query") {
    on_owner_iq(iq, from, std::move(done));
  } else if (xmlns == ns::kMam && payload->name() == "query") {
    on_mam_iq(iq, from, std::move(done));
  } else if (get && xmlns == ns::kDiscoInfo) {
    on_disco_info(iq);
  } else if (get && xmlns == ns::kDiscoItems) {
    on_disco_items(iq);
  } else if (get && xmlns == ns::kPing) {
    send(from, make_iq_result(iq));
  } else {
    send_error(iq, from, "cancel", "service-unavailable");
  }
}

void Room::on_disco_info(const XmlElement& iq) {
  const Jid from = *Jid::parse(iq.attr("from"));
  if (!iq.first_element()->attr("node").empty()) {
    send_error(iq, from, "cancel", "item-not-found");
    return;
  }
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kDiscoInfo);
  q.add_child("identity", ns::kDiscoInfo)
      .set_attr("category", "conference")
      .set_attr("type", "text")
      .set_attr("name", config_.name.empty() ? jid_.local() : config_.name);
  std::vector<std::string> features = {
      ns::kMuc,
      ns::kDiscoInfo,
      ns::kDiscoItems,
      ns::kMam,
      ns::kStanzaId,
      ns::kOccupantId,
      "http://jabber.org/protocol/muc#self-ping-optimization",
      "http://jabber.org/protocol/muc#stable_id",
      config_.persistent ? "muc_persistent" : "muc_temporary",
      config_.members_only ? "muc_membersonly" : "muc_open",
      config_.password_protected ? "muc_passwordprotected" : "muc_unsecured",
      config_.moderated ? "muc_moderated" : "muc_unmoderated",
      config_.public_room ? "muc_public" : "muc_hidden",
      config_.non_anonymous() ? "muc_nonanonymous" : "muc_semianonymous",
  };
  for (const auto& f : features) {
    q.add_child("feature", ns::kDiscoInfo).set_attr("var", f);
  }
  // XEP-0045 §6.4: the muc#roominfo extended form.
  auto& x = q.add_child("x", ns::kXData);
  x.set_attr("type", "result");
  auto field = [&](const char* var, const std::string& value, const char* label) {
    auto& f = x.add_child("field", ns::kXData);
    f.set_attr("var", var);
    if (*label != '\0') {
      f.set_attr("label", label);
    }
    f.add_child("value", ns::kXData).add_text(value);
  };
  x.add_child("field", ns::kXData)
      .set_attr("var", "FORM_TYPE")
      .set_attr("type", "hidden")
      .add_child("value", ns::kXData)
      .add_text("http://jabber.org/protocol/muc#roominfo");
  field("muc#roominfo_description", config_.description, "Description");
  field("muc#roominfo_occupants", std::to_string(occupants_.size()), "Number of occupants");
  field("muc#roominfo_subject", record_.subject, "Subject");
  field("muc#roominfo_changesubject", config_.change_subject ? "1" : "0",
        "Occupants may change the subject");
  field("muc#roomconfig_roomname", config_.name, "Name");
  field("muc#maxhistoryfetch", std::to_string(config_.history_length), "History on join");
  send(from, reply);
}

void Room::on_disco_items(const XmlElement& iq) {
  const Jid from = *Jid::parse(iq.attr("from"));
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kDiscoItems);
  // XEP-0045 §6.5: occupants may be listed where that reveals nothing private; in
  // semi-anonymous rooms the list goes to occupants only.
  if (config_.non_anonymous() || occupant_of(from) != nullptr) {
    for (const auto& [nick, o] : occupants_) {
      q.add_child("item", ns::kDiscoItems)
          .set_attr("jid", jid_.bare_str() + "/" + nick)
          .set_attr("name", nick);
    }
  }
  send(from, reply);
}

void Room::set_role(Occupant& occupant, Role role, const std::string& reason,
                    const std::string& actor_nick) {
  occupant.role = role;
  broadcast_presence(occupant, false, {}, {}, {}, reason, actor_nick);
}

void Room::apply_affiliation(const Jid& bare, Affiliation affiliation, const std::string& reason,
                             const std::string& actor_nick) {
  std::vector<std::string> present;
  for (const auto& [nick, o] : occupants_) {
    if (o.bare == bare) {
      present.push_back(nick);
    }
  }
  for (const auto& nick : present) {
    Occupant& o = occupants_.at(nick);
    o.affiliation = affiliation;  // the removal presence says outcast / none (XEP-0045 §9.1)
    if (affiliation == Affiliation::Outcast) {
      remove_occupant(nick, {301}, reason, actor_nick);  // banned
    } else if (config_.members_only && affiliation == Affiliation::None) {
      remove_occupant(nick, {321}, reason, actor_nick);  // membership revoked
    } else {
      o.affiliation = affiliation;
      o.role = default_role(affiliation);
      broadcast_presence(o, false, {}, {}, {}, reason, actor_nick);
    }
  }
}

void Room::on_admin_iq(const XmlElement& iq, const Jid& from, Completion done) {
  const XmlElement* query = iq.first_element();
  const Affiliation actor_aff = affiliation_of(from.bare());
  Occupant* actor = occupant_of(from);
  const Role actor_role = actor ? actor->role : Role::None;
  const auto items = query->children("item", ns::kMucAdmin);
  if (items.empty()) {
    send_error(iq, from, "modify", "bad-request", "no item");
    return;
  }

  if (iq.attr("type") == "get") {
    // XEP-0045 §9.5 (members, outcasts: admins), §10.5 (owners, admins: owners),
    // §8.5 (moderators, participants by role: moderators).
    const XmlElement* item = items.front();
    XmlElement reply = make_iq_result(iq);
    reply.set_attr("from", jid_.bare_str());
    auto& q = reply.add_child("query", ns::kMucAdmin);
    if (item->has_attr("affiliation")) {
      auto wanted = parse_affiliation(item->attr("affiliation"));
      if (!wanted || *wanted == Affiliation::None) {
        send_error(iq, from, "modify", "bad-request", "unknown affiliation");
        return;
      }
      const bool allowed = actor_aff == Affiliation::Owner ||
                           (actor_aff == Affiliation::Admin &&
                            (*wanted == Affiliation::Member || *wanted == Affiliation::Outcast ||
                             *wanted == Affiliation::Admin || *wanted == Affiliation::Owner));
      if (!allowed) {
        send_error(iq, from, "auth", "forbidden");
        return;
      }
      for (const auto& [user, a] : affiliations_) {
        if (a.affiliation == *wanted) {
          auto& i = q.add_child("item", ns::kMucAdmin);
          i.set_attr("affiliation", std::string(affiliation_name(a.affiliation)))
              .set_attr("jid", user);
          if (!a.nick.empty()) {
            i.set_attr("nick", a.nick);
          }
          if (!a.reason.empty()) {
            i.add_child("reason", ns::kMucAdmin).add_text(a.reason);
          }
        }
      }
    } else if (item->has_attr("role")) {
      auto wanted = parse_role(item->attr("role"));
      if (!wanted || *wanted == Role::None) {
        send_error(iq, from, "modify", "bad-request", "unknown role");
        return;
      }
      if (actor_role != Role::Moderator) {
        send_error(iq, from, "auth", "forbidden");
        return;
      }
      for (const auto& [nick, o] : occupants_) {
        if (o.role == *wanted) {
          auto& i = q.add_child("item", ns::kMucAdmin);
          i.set_attr("role", std::string(role_name(o.role)))
              .set_attr("affiliation", std::string(affiliation_name(o.affiliation)))
              .set_attr("nick", nick);
          if (!o.sessions.empty()) {
            i.set_attr("jid", o.sessions.front().str());
          }
        }
      }
    } else {
      send_error(iq, from, "modify", "bad-request");
      return;
    }
    send(from, reply);
    return;
  }

  // set: validate every item first; nothing changes unless all may change (§9, §10).
  struct RoleChange {
    std::string nick;
    Role role;
    std::string reason;
  };
  struct AffChange {
    Jid bare;
    Affiliation affiliation;
    std::string reason;
    std::string nick;
  };
  std::vector<RoleChange> role_changes;
  std::vector<AffChange> aff_changes;
  std::size_t owners = 0;
  for (const auto& [user, a] : affiliations_) {
    owners += a.affiliation == Affiliation::Owner ? 1 : 0;
  }
  for (const XmlElement* item : items) {
    const std::string reason = item->child_text("reason", ns::kMucAdmin);
    if (item->has_attr("role")) {
      auto role = parse_role(item->attr("role"));
      Occupant* target = occupant_by_nick(std::string(item->attr("nick")));
      if (!role) {
        send_error(iq, from, "modify", "bad-request", "unknown role");
        return;
      }
      if (target == nullptr) {
        send_error(iq, from, "cancel", "item-not-found", "no occupant has that nickname");
        return;
      }
      if (actor_role != Role::Moderator) {
        send_error(iq, from, "auth", "forbidden", "only moderators may change roles");
        return;
      }
      const bool target_privileged =
          target->affiliation == Affiliation::Owner || target->affiliation == Affiliation::Admin;
      if (*role == Role::Moderator || target->role == Role::Moderator) {
        // Granting or revoking moderator status needs an admin (§9.6, §9.7).
        if (actor_aff != Affiliation::Owner && actor_aff != Affiliation::Admin) {
          send_error(iq, from, "auth", "forbidden", "only admins may change moderators");
          return;
        }
      }
      if (target_privileged && *role != Role::Moderator) {
        send_error(iq, from, "cancel", "not-allowed",
                   "an admin or owner cannot be kicked or silenced");
        return;
      }
      role_changes.push_back({target->nick, *role, reason});
    } else if (item->has_attr("affiliation")) {
      auto affiliation = parse_affiliation(item->attr("affiliation"));
      auto target = item->has_attr("jid") ? Jid::parse(item->attr("jid"))
                                          : Result<Jid>(make_error_code(storage::Errc::NotFound));
      if (!target && item->has_attr("nick")) {
        if (Occupant* o = occupant_by_nick(std::string(item->attr("nick")))) {
          target = o->bare;
        }
      }
      if (!affiliation || !target) {
        send_error(iq, from, "modify", "bad-request", "an item needs an affiliation and a jid");
        return;
      }
      const Jid bare = target->bare();
      const Affiliation current = affiliation_of(bare);
      const bool touches_privileged =
          current == Affiliation::Owner || current == Affiliation::Admin ||
          *affiliation == Affiliation::Owner || *affiliation == Affiliation::Admin;
      if (actor_aff != Affiliation::Owner &&
          !(actor_aff == Affiliation::Admin && !touches_privileged)) {
        send_error(iq, from, touches_privileged ? "cancel" : "auth",
                   touches_privileged ? "not-allowed" : "forbidden",
                   "you may not change that affiliation");
        return;
      }
      if (current == Affiliation::Owner && *affiliation != Affiliation::Owner && owners <= 1) {
        send_error(iq, from, "cancel", "conflict", "a room keeps at least one owner");
        return;
      }
      if (current == Affiliation::Owner && *affiliation != Affiliation::Owner) {
        --owners;
      }
      aff_changes.push_back({bare, *affiliation, reason, std::string(item->attr("nick"))});
    } else {
      send_error(iq, from, "modify", "bad-request", "an item needs a role or an affiliation");
      return;
    }
  }

  const std::string actor_nick = actor ? actor->nick : std::string();
  if (aff_changes.empty()) {
    // Roles are not persisted: apply at once.
    for (const auto& c : role_changes) {
      if (c.role == Role::None) {
        remove_occupant(c.nick, {307}, c.reason, actor_nick);  // kicked
      } else if (Occupant* o = occupant_by_nick(c.nick)) {
        set_role(*o, c.role, c.reason, actor_nick);
      }
    }
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    return;
  }
  std::vector<storage::AffiliationRecord> records;
  for (const auto& c : aff_changes) {
    storage::AffiliationRecord r;
    r.fence = host_.fence_for(jid_);
    r.room_jid = jid_.bare_str();
    r.user_jid = c.bare.bare_str();
    r.affiliation = c.affiliation;
    r.reason = c.reason;
    r.nick = c.nick;
    records.push_back(std::move(r));
  }
  auto job = [records](storage::Store& s) -> Result<void> {
    for (const auto& r : records) {
      if (auto set = s.set_affiliation(r); !set) {
        return set;
      }
    }
    return {};
  };
  host_.store().async_call(
      std::move(job),
      asio::bind_executor(host_.executor(),
                          [self = shared_from_this(), iq, from, records, aff_changes, role_changes,
                           actor_nick, done = std::move(done)](Result<void> r) mutable {
                            if (self->destroyed_) {
                              return;
                            }
                            if (!r) {
                              self->send_error(iq, from, "wait", "internal-server-error",
                                               "the change could not be stored");
                              return;
                            }
                            for (const auto& rec : records) {
                              if (rec.affiliation == Affiliation::None) {
                                self->affiliations_.erase(rec.user_jid);
                              } else {
                                self->affiliations_[rec.user_jid] = rec;
                              }
                            }
                            for (const auto& c : aff_changes) {
                              self->apply_affiliation(c.bare, c.affiliation, c.reason, actor_nick);
                            }
                            for (const auto& c : role_changes) {
                              if (c.role == Role::None) {
                                self->remove_occupant(c.nick, {307}, c.reason, actor_nick);
                              } else if (Occupant* o = self->occupant_by_nick(c.nick)) {
                                self->set_role(*o, c.role, c.reason, actor_nick);
                              }
                            }
                            XmlElement result = make_iq_result(iq);
                            result.set_attr("from", self->jid_.bare_str());
                            self->send(from, result);
                            done();
                          }));
}

void Room::on_owner_iq(const XmlElement& iq, const Jid& from, Completion done) {
  if (affiliation_of(from.bare()) != Affiliation::Owner) {
    send_error(iq, from, "auth", "forbidden", "only owners may configure the room");
    return;
  }
  const XmlElement* query = iq.first_element();
  if (iq.attr("type") == "get") {
    // Asking for the form before the new room was configured makes it a reserved room:
    // locked until the form comes back (XEP-0045 §10.1.3).
    if (awaiting_config_) {
      locked_ = true;
    }
    XmlElement reply = make_iq_result(iq);
    reply.set_attr("from", jid_.bare_str());
    reply.add_child("query", ns::kMucOwner).add_child(config_.to_form(limits_for(from)));
    send(from, reply);
    return;
  }
  if (const XmlElement* d = query->child("destroy", ns::kMucOwner)) {
    destroy(iq, *d, std::move(done));
    return;
  }
  const XmlElement* x = query->child("x", ns::kXData);
  if (x == nullptr) {
    send_error(iq, from, "modify", "bad-request", "expected a data form or destroy");
    return;
  }
  if (x->attr("type") == "cancel") {
    awaiting_config_ = false;
    locked_ = false;
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    return;
  }
  if (x->attr("type") != "submit") {
    send_error(iq, from, "modify", "bad-request", "expected type submit or cancel");
    return;
  }
  RoomConfig next = config_;
  std::string why;
  if (!next.apply_form(*x, limits_for(from), why)) {
    send_error(iq, from, "modify", "not-acceptable", why);
    return;
  }
  if (next.persistent && !config_.persistent && !host_.reserve_persistent_room()) {
    send_error(iq, from, "cancel", "not-allowed",
               "the service has reached its limit of persistent rooms");
    return;
  }
  storage::RoomRecord rec = record();
  rec.config_json = next.to_json();
  rec.persistent = next.persistent;
  auto job = [rec](storage::Store& s) { return s.save_room(rec); };
  host_.store().async_call(
      std::move(job),
      asio::bind_executor(host_.executor(), [self = shared_from_this(), iq, from, next,
                                             done = std::move(done)](Result<void> r) mutable {
        if (self->destroyed_) {
          return;
        }
        if (!r) {
          if (next.persistent && !self->config_.persistent) {
            self->host_.release_persistent_room();
          }
          self->send_error(iq, from, "wait", "internal-server-error",
                           "the configuration could not be stored");
          return;
        }
        const RoomConfig before = self->config_;
        if (before.persistent && !next.persistent) {
          self->host_.release_persistent_room();
        }
        self->config_ = next;
        self->record_.persistent = next.persistent;
        const bool first_configuration = self->awaiting_config_;
        self->awaiting_config_ = false;
        self->locked_ = false;
        XmlElement result = make_iq_result(iq);
        result.set_attr("from", self->jid_.bare_str());
        self->send(from, result);
        // XEP-0045 §10.2.1: tell occupants what changed.
        std::vector<int> codes{104};
        if (before.non_anonymous() != next.non_anonymous()) {
          codes.push_back(next.non_anonymous() ? 172 : 173);
        }
        if (!first_configuration || self->occupants_.size() > 1) {
          self->broadcast_status(codes);
        }
        if (next.members_only && !before.members_only) {
          std::vector<std::string> outsiders;
          for (const auto& [nick, o] : self->occupants_) {
            if (self->affiliation_of(o.bare) == Affiliation::None) {
              outsiders.push_back(nick);
            }
          }
          for (const auto& nick : outsiders) {
            self->remove_occupant(nick, {322}, "the room is now members-only", {});
          }
        }
        if (next.moderated != before.moderated) {
          for (auto& [nick, o] : self->occupants_) {
            const Role role = self->default_role(o.affiliation);
            if (o.role != Role::Moderator && role != o.role) {
              self->set_role(o, role, {}, {});
            }
          }
        }
        done();
      }));
}

void Room::destroy(const XmlElement& iq, const XmlElement& destroy_element, Completion done) {
  const Jid from = *Jid::parse(iq.attr("from"));
  auto job = [room = jid_.bare_str(),
              fence = host_.fence_for(jid_)](storage::Store& s) -> Result<void> {
    auto deleted = s.delete_room(room, fence ? &*fence : nullptr);
    if (!deleted && deleted.error() == storage::Errc::NotFound) {
      return {};
    }
    return deleted;
  };
  host_.store().async_call(
      std::move(job),
      asio::bind_executor(host_.executor(), [self = shared_from_this(), iq, from, destroy_element,
                                             done = std::move(done)](Result<void> r) mutable {
        if (self->destroyed_) {
          return;
        }
        if (!r) {
          self->send_error(iq, from, "wait", "internal-server-error",
                           "the room could not be removed");
          return;
        }
        self->destroyed_ = true;
        if (self->config_.persistent) {
          self->host_.release_persistent_room();
        }
        // XEP-0045 §10.9: every occupant is told, with the alternate venue and reason.
        for (const auto& [nick, o] : self->occupants_) {
          XmlElement p = self->presence_of(o, true);
          auto& x = p.add_child("x", ns::kMucUser);
          x.add_child("item", ns::kMucUser)
              .set_attr("affiliation", "none")
              .set_attr("role", "none");
          auto& d = x.add_child("destroy", ns::kMucUser);
          if (destroy_element.has_attr("jid")) {
            d.set_attr("jid", std::string(destroy_element.attr("jid")));
          }
          const std::string reason = destroy_element.child_text("reason", ns::kMucOwner);
          if (!reason.empty()) {
            d.add_child("reason", ns::kMucUser).add_text(reason);
          }
          for (const auto& s : o.sessions) {
            self->send(s, p);
          }
        }
        self->occupants_.clear();
        self->nick_of_session_.clear();
        XmlElement result = make_iq_result(iq);
        result.set_attr("from", self->jid_.bare_str());
        self->send(from, result);
        self->host_.on_room_destroyed(self->jid_);
        done();
      }));
}

// ---- XEP-0313 archive queries ----

void Room::on_mam_iq(const XmlElement& iq, const Jid& from, Completion done) {
  // Only those who may join may read (XEP-0313 §4.1.2 for MUC).
  const Affiliation affiliation = affiliation_of(from.bare());
  if (affiliation == Affiliation::Outcast ||
      (config_.members_only && affiliation == Affiliation::None)) {
    send_error(iq, from, "auth", "forbidden", "you may not read this room's archive");
    return;
  }
  const XmlElement* query = iq.first_element();
  if (iq.attr("type") == "get") {
    // XEP-0313 §6.1: the search form.
    XmlElement reply = make_iq_result(iq);
    reply.set_attr("from", jid_.bare_str());
    auto& q = reply.add_child("query", ns::kMam);
    auto& x = q.add_child("x", ns::kXData);
    x.set_attr("type", "form");
    x.add_child("field", ns::kXData)
        .set_attr("var", "FORM_TYPE")
        .set_attr("type", "hidden")
        .add_child("value", ns::kXData)
        .add_text(ns::kMam);
    for (const char* var : {"with", "start", "end"}) {
      x.add_child("field", ns::kXData)
          .set_attr("var", var)
          .set_attr("type", std::string(var) == "with" ? "jid-single" : "text-single");
    }
    send(from, reply);
    return;
  }
  storage::ArchiveQuery q;
  q.room_jid = jid_.bare_str();
  q.include_presence = false;
  const std::size_t cap = host_.config().muc_mam_max_page;
  q.max = cap;
  if (const XmlElement* x = query->child("x", ns::kXData)) {
    for (const XmlElement* field : x->children("field", ns::kXData)) {
      const std::string_view var = field->attr("var");
      const std::string value = field->child_text("value", ns::kXData);
      if (var == "start" || var == "end") {
        auto t = parse_xep82(value);
        if (!t) {
          send_error(iq, from, "modify", "bad-request", std::string(var) + " is not a date-time");
          return;
        }
        (var == "start" ? q.start : q.end) = *t;
      } else if (var == "with") {
        auto with = Jid::parse(value);
        if (!with || with->bare() != jid_.bare() || with->resource().empty()) {
          // In a room archive, 'with' names an occupant: room@service/nick.
          send_error(iq, from, "modify", "bad-request", "with must be an occupant JID");
          return;
        }
        q.with_nick = with->resource();
      } else if (var != "FORM_TYPE" && !var.empty()) {
        send_error(iq, from, "modify", "bad-request", "unsupported field " + std::string(var));
        return;
      }
    }
  }
  if (const XmlElement* set = query->child("set", ns::kRsm)) {
    const std::string max = set->child_text("max", ns::kRsm);
    if (!max.empty()) {
      if (!std::all_of(max.begin(), max.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          max.size() > 9) {
        send_error(iq, from, "modify", "bad-request", "bad RSM max");
        return;
      }
      q.max = std::min<std::size_t>(std::stoul(max), cap);
    }
    if (const XmlElement* after = set->child("after", ns::kRsm)) {
      q.after_id = after->text();
    }
    if (const XmlElement* before = set->child("before", ns::kRsm)) {
      q.before_id = before->text();  // empty: the last page (XEP-0059 §2.5)
    }
  }
  const std::string query_id(query->attr("queryid"));
  auto job = [q](storage::Store& s) { return s.query_archive(q); };
  host_.store().async_call(
      std::move(job),
      asio::bind_executor(
          host_.executor(), [self = shared_from_this(), iq, from, query_id,
                             done = std::move(done)](Result<storage::ArchivePage> page) mutable {
            if (!page) {
              if (page.error() == storage::Errc::NotFound) {
                self->send_error(iq, from, "cancel", "item-not-found", "unknown RSM cursor");
              } else {
                self->send_error(iq, from, "wait", "internal-server-error");
              }
              return;
            }
            std::vector<RoomHost::Delivery> out;
            out.reserve(page->messages.size() + 1);
            for (const auto& m : page->messages) {
              std::string wire = "<message to='" + xmpp::xml_escape(from.str()) + "' from='" +
                                 xmpp::xml_escape(self->jid_.bare_str()) +
                                 "'><result xmlns='urn:xmpp:mam:2'";
              if (!query_id.empty()) {
                wire += " queryid='" + xmpp::xml_escape(query_id) + "'";
              }
              wire +=
                  " id='" + xmpp::xml_escape(m.stanza_id) +
                  "'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='" +
                  xep82_timestamp(m.created_at) + "'/>";
              // The stored stanza is in jabber:client; inside <forwarded/> it must say so.
              std::string inner = m.stanza_xml;
              if (inner.rfind("<message", 0) == 0) {
                inner.insert(8, " xmlns='jabber:client'");
              }
              wire += inner + "</forwarded></result></message>";
              out.push_back({from, to_wire(std::move(wire))});
            }
            XmlElement result = make_iq_result(iq);
            result.set_attr("from", self->jid_.bare_str());
            auto& fin = result.add_child("fin", ns::kMam);
            if (page->complete) {
              fin.set_attr("complete", "true");
            }
            auto& set = fin.add_child("set", ns::kRsm);
            if (!page->messages.empty()) {
              set.add_child("first", ns::kRsm).add_text(page->messages.front().stanza_id);
              set.add_child("last", ns::kRsm).add_text(page->messages.back().stanza_id);
            }
            if (page->count) {
              set.add_child("count", ns::kRsm).add_text(std::to_string(*page->count));
            }
            XmlElement addressed = result;
            addressed.set_attr("to", from.str());
            out.push_back({from, to_wire(addressed)});
            self->host_.deliver(std::move(out));
            done();
          }));
}

}  // namespace tc::broker::muc
