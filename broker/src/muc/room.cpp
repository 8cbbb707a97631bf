// SPDX-License-Identifier: Apache-2.0
#include "muc/room.h"

#include <algorithm>
#include <chrono>

#include <boost/asio/bind_executor.hpp>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

#include "muc/room_moderation.h"
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
  avatar_hash_ = vcard_avatar_hash(config_.vcard);
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

XmlElement Room::status_x(const std::vector<int>& codes) {
  XmlElement x("x", ns::kMucUser);
  for (int code : codes) {
    x.add_child("status", ns::kMucUser).set_attr("code", std::to_string(code));
  }
  return x;
}

void Room::send(const Jid& to, const XmlElement& stanza) {
  XmlElement copy = stanza;
  copy.set_attr("to", to.str());
  host_.deliver({{to, to_wire(copy)}});
}

void Room::send_error(const XmlElement& stanza, const Jid& to, const StanzaError& error,
                      std::string_view text) {
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
  reply.add_child(xmpp::make_error_element(error, text, jid_.bare_str()));
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

// ---- iq ----

void Room::on_iq(const XmlElement& iq, const Jid& from, Completion done) {
  const Jid to = *Jid::parse(iq.attr("to"));
  const std::string_view type = iq.attr("type");
  if (type == "result" || type == "error") {
    return;
  }
  const XmlElement* payload = iq.first_element();
  if (payload == nullptr) {
    send_error(iq, from, Condition::BadRequest);
    return;
  }
  const bool get = type == "get";
  if (!to.resource().empty()) {
    // iq to an occupant. XEP-0410: a ping to one's own nick is answered by the room.
    Occupant* self = occupant_of(from);
    if (payload->name() == "ping" && payload->xmlns() == ns::kPing) {
      if (self == nullptr) {
        send_error(iq, from, {ErrorType::Cancel, Condition::NotAcceptable},
                   "you are not joined to this room");
      } else if (self->nick == to.resource()) {
        XmlElement result = make_iq_result(iq);
        send(from, result);
      } else if (occupant_by_nick(to.resource()) == nullptr) {
        send_error(iq, from, Condition::ItemNotFound);
      } else {
        send(from, make_iq_result(iq));  // the room vouches that the occupant is present
      }
      return;
    }
    send_error(iq, from, Condition::ServiceUnavailable);
    return;
  }
  const std::string& xmlns = payload->xmlns();
  if (xmlns == ns::kMucAdmin && payload->name() == "query") {
    on_admin_iq(iq, from, std::move(done));
  } else if (xmlns == ns::kMucOwner && payload->name() == "query") {
    on_owner_iq(iq, from, std::move(done));
  } else if (xmlns == ns::kMam && payload->name() == "query") {
    on_mam_iq(iq, from, std::move(done));
  } else if ((xmlns == ns_ext::kModerate && payload->name() == "moderate") ||
             (xmlns == ns_ext::kFasten && payload->name() == "apply-to")) {
    on_moderate_iq(iq, from, std::move(done));
  } else if (xmlns == "vcard-temp" && payload->name() == "vCard") {
    on_vcard_iq(iq, from, std::move(done));
  } else if (get && xmlns == ns::kDiscoInfo) {
    on_disco_info(iq);
  } else if (get && xmlns == ns::kDiscoItems) {
    on_disco_items(iq);
  } else if (get && xmlns == ns::kPing) {
    send(from, make_iq_result(iq));
  } else {
    send_error(iq, from, Condition::ServiceUnavailable);
  }
}

}  // namespace tc::broker::muc
