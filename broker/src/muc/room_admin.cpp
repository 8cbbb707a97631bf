// SPDX-License-Identifier: Apache-2.0
// Moderation and affiliations: the muc#admin queries (XEP-0045 §8, §9, §10.3-10.5).
#include "storage/errc.h"
#include "xmpp/namespaces.h"

#include "muc/room.h"
#include "muc/room_commit.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

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
  const auto items = iq.first_element()->children("item", ns::kMucAdmin);
  if (items.empty()) {
    send_error(iq, from, Condition::BadRequest, "no item");
    return;
  }
  if (iq.attr("type") == "get") {
    // XEP-0045 §9.5 (members, outcasts: admins), §10.5 (owners, admins: owners),
    // §8.5 (moderators, participants by role: moderators).
    const XmlElement& item = *items.front();
    if (item.has_attr("affiliation")) {
      list_affiliation(iq, from, item.attr("affiliation"));
    } else if (item.has_attr("role")) {
      list_role(iq, from, item.attr("role"));
    } else {
      send_error(iq, from, Condition::BadRequest);
    }
    return;
  }
  // set: validate every item first; nothing changes unless all may change (§9, §10).
  auto changes = admin_changes(iq, from, items);
  if (!changes) {
    return;
  }
  const Occupant* actor = occupant_of(from);
  const std::string actor_nick = actor ? actor->nick : std::string();
  if (changes->affiliations.empty()) {
    // Roles are not persisted: apply at once.
    apply_role_changes(changes->roles, actor_nick);
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    return;
  }
  commit_affiliations(iq, from, std::move(*changes), actor_nick, std::move(done));
}

void Room::list_affiliation(const XmlElement& iq, const Jid& from, std::string_view name) {
  auto wanted = parse_affiliation(name);
  if (!wanted || *wanted == Affiliation::None) {
    send_error(iq, from, Condition::BadRequest, "unknown affiliation");
    return;
  }
  const Affiliation actor_aff = affiliation_of(from.bare());
  const bool allowed = actor_aff == Affiliation::Owner ||
                       (actor_aff == Affiliation::Admin &&
                        (*wanted == Affiliation::Member || *wanted == Affiliation::Outcast ||
                         *wanted == Affiliation::Admin || *wanted == Affiliation::Owner));
  if (!allowed) {
    send_error(iq, from, Condition::Forbidden);
    return;
  }
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kMucAdmin);
  for (const auto& [user, a] : affiliations_) {
    if (a.affiliation == *wanted) {
      auto& i = q.add_child("item", ns::kMucAdmin);
      i.set_attr("affiliation", std::string(affiliation_name(a.affiliation))).set_attr("jid", user);
      if (!a.nick.empty()) {
        i.set_attr("nick", a.nick);
      }
      if (!a.reason.empty()) {
        i.add_child("reason", ns::kMucAdmin).add_text(a.reason);
      }
    }
  }
  send(from, reply);
}

void Room::list_role(const XmlElement& iq, const Jid& from, std::string_view name) {
  auto wanted = parse_role(name);
  if (!wanted || *wanted == Role::None) {
    send_error(iq, from, Condition::BadRequest, "unknown role");
    return;
  }
  const Occupant* actor = occupant_of(from);
  if (actor == nullptr || actor->role != Role::Moderator) {
    send_error(iq, from, Condition::Forbidden);
    return;
  }
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kMucAdmin);
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
  send(from, reply);
}

std::optional<Room::AdminChanges> Room::admin_changes(const XmlElement& iq, const Jid& from,
                                                      const std::vector<const XmlElement*>& items) {
  AdminChanges changes;
  std::size_t owners = 0;
  for (const auto& [user, a] : affiliations_) {
    owners += a.affiliation == Affiliation::Owner ? 1 : 0;
  }
  for (const XmlElement* item : items) {
    bool ok = false;
    if (item->has_attr("role")) {
      ok = check_role_item(iq, from, *item, changes);
    } else if (item->has_attr("affiliation")) {
      ok = check_affiliation_item(iq, from, *item, owners, changes);
    } else {
      send_error(iq, from, Condition::BadRequest, "an item needs a role or an affiliation");
    }
    if (!ok) {
      return std::nullopt;
    }
  }
  return changes;
}

bool Room::check_role_item(const XmlElement& iq, const Jid& from, const XmlElement& item,
                           AdminChanges& changes) {
  const Affiliation actor_aff = affiliation_of(from.bare());
  const Occupant* actor = occupant_of(from);
  const Role actor_role = actor ? actor->role : Role::None;
  auto role = parse_role(item.attr("role"));
  const Occupant* target = occupant_by_nick(std::string(item.attr("nick")));
  if (!role) {
    send_error(iq, from, Condition::BadRequest, "unknown role");
    return false;
  }
  if (target == nullptr) {
    send_error(iq, from, Condition::ItemNotFound, "no occupant has that nickname");
    return false;
  }
  if (actor_role != Role::Moderator) {
    send_error(iq, from, Condition::Forbidden, "only moderators may change roles");
    return false;
  }
  const bool target_privileged =
      target->affiliation == Affiliation::Owner || target->affiliation == Affiliation::Admin;
  if (*role == Role::Moderator || target->role == Role::Moderator) {
    // Granting or revoking moderator status needs an admin (§9.6, §9.7).
    if (actor_aff != Affiliation::Owner && actor_aff != Affiliation::Admin) {
      send_error(iq, from, Condition::Forbidden, "only admins may change moderators");
      return false;
    }
  }
  if (target_privileged && *role != Role::Moderator) {
    send_error(iq, from, Condition::NotAllowed, "an admin or owner cannot be kicked or silenced");
    return false;
  }
  changes.roles.push_back({target->nick, *role, item.child_text("reason", ns::kMucAdmin)});
  return true;
}

bool Room::check_affiliation_item(const XmlElement& iq, const Jid& from, const XmlElement& item,
                                  std::size_t& owners, AdminChanges& changes) {
  const Affiliation actor_aff = affiliation_of(from.bare());
  auto affiliation = parse_affiliation(item.attr("affiliation"));
  auto target = item.has_attr("jid") ? Jid::parse(item.attr("jid"))
                                     : Result<Jid>(make_error_code(storage::Errc::NotFound));
  if (!target && item.has_attr("nick")) {
    if (const Occupant* o = occupant_by_nick(std::string(item.attr("nick")))) {
      target = o->bare;
    }
  }
  if (!affiliation || !target) {
    send_error(iq, from, Condition::BadRequest, "an item needs an affiliation and a jid");
    return false;
  }
  const Jid bare = target->bare();
  const Affiliation current = affiliation_of(bare);
  const bool touches_privileged = current == Affiliation::Owner || current == Affiliation::Admin ||
                                  *affiliation == Affiliation::Owner ||
                                  *affiliation == Affiliation::Admin;
  if (actor_aff != Affiliation::Owner &&
      !(actor_aff == Affiliation::Admin && !touches_privileged)) {
    send_error(iq, from, touches_privileged ? Condition::NotAllowed : Condition::Forbidden,
               "you may not change that affiliation");
    return false;
  }
  if (current == Affiliation::Owner && *affiliation != Affiliation::Owner) {
    if (owners <= 1) {
      send_error(iq, from, Condition::Conflict, "a room keeps at least one owner");
      return false;
    }
    --owners;
  }
  changes.affiliations.push_back({bare, *affiliation, item.child_text("reason", ns::kMucAdmin),
                                  std::string(item.attr("nick"))});
  return true;
}

void Room::apply_role_changes(const std::vector<RoleChange>& changes,
                              const std::string& actor_nick) {
  for (const auto& c : changes) {
    if (c.role == Role::None) {
      remove_occupant(c.nick, {307}, c.reason, actor_nick);  // kicked
    } else if (Occupant* o = occupant_by_nick(c.nick)) {
      set_role(*o, c.role, c.reason, actor_nick);
    }
  }
}

void Room::commit_affiliations(const XmlElement& iq, const Jid& from, AdminChanges changes,
                               const std::string& actor_nick, Completion done) {
  std::vector<storage::AffiliationRecord> records;
  for (const auto& c : changes.affiliations) {
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
  commit_then_apply(std::move(job), [this, iq, from, records, changes = std::move(changes),
                                     actor_nick, done = std::move(done)](Result<void> r) mutable {
    if (!r) {
      send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError},
                 "the change could not be stored");
      return;
    }
    for (const auto& rec : records) {
      if (rec.affiliation == Affiliation::None) {
        affiliations_.erase(rec.user_jid);
      } else {
        affiliations_[rec.user_jid] = rec;
      }
    }
    for (const auto& c : changes.affiliations) {
      apply_affiliation(c.bare, c.affiliation, c.reason, actor_nick);
    }
    apply_role_changes(changes.roles, actor_nick);
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    done();
  });
}

}  // namespace tc::broker::muc
