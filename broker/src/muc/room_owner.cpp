// SPDX-License-Identifier: Apache-2.0
// Room owners: configuration (XEP-0045 §10.1, §10.2) and destruction (§10.9).
#include "storage/errc.h"
#include "xmpp/namespaces.h"

#include "muc/room.h"
#include "muc/room_commit.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

void Room::on_owner_iq(const XmlElement& iq, const Jid& from, Completion done) {
  if (affiliation_of(from.bare()) != Affiliation::Owner) {
    send_error(iq, from, Condition::Forbidden, "only owners may configure the room");
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
    send_error(iq, from, Condition::BadRequest, "expected a data form or destroy");
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
    send_error(iq, from, Condition::BadRequest, "expected type submit or cancel");
    return;
  }
  RoomConfig next = config_;
  std::string why;
  if (!next.apply_form(*x, limits_for(from), why)) {
    send_error(iq, from, Condition::NotAcceptable, why);
    return;
  }
  if (next.persistent && !config_.persistent && !host_.reserve_persistent_room()) {
    send_error(iq, from, Condition::NotAllowed,
               "the service has reached its limit of persistent rooms");
    return;
  }
  storage::RoomRecord rec = record();
  rec.config_json = next.to_json();
  rec.persistent = next.persistent;
  auto job = [rec](storage::Store& s) { return s.save_room(rec); };
  commit_then_apply(std::move(job),
                    [this, iq, from, next, done = std::move(done)](Result<void> r) mutable {
                      if (!r) {
                        if (next.persistent && !config_.persistent) {
                          host_.release_persistent_room();
                        }
                        send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError},
                                   "the configuration could not be stored");
                        return;
                      }
                      const RoomConfig before = config_;
                      if (before.persistent && !next.persistent) {
                        host_.release_persistent_room();
                      }
                      config_ = next;
                      record_.persistent = next.persistent;
                      const bool first_configuration = awaiting_config_;
                      awaiting_config_ = false;
                      locked_ = false;
                      XmlElement result = make_iq_result(iq);
                      result.set_attr("from", jid_.bare_str());
                      send(from, result);
                      // XEP-0045 §10.2.1: tell occupants what changed.
                      std::vector<int> codes{104};
                      if (before.non_anonymous() != next.non_anonymous()) {
                        codes.push_back(next.non_anonymous() ? 172 : 173);
                      }
                      if (!first_configuration || occupants_.size() > 1) {
                        broadcast_status(codes);
                      }
                      if (next.members_only && !before.members_only) {
                        std::vector<std::string> outsiders;
                        for (const auto& [nick, o] : occupants_) {
                          if (affiliation_of(o.bare) == Affiliation::None) {
                            outsiders.push_back(nick);
                          }
                        }
                        for (const auto& nick : outsiders) {
                          remove_occupant(nick, {322}, "the room is now members-only", {});
                        }
                      }
                      if (next.moderated != before.moderated) {
                        for (auto& [nick, o] : occupants_) {
                          const Role role = default_role(o.affiliation);
                          if (o.role != Role::Moderator && role != o.role) {
                            set_role(o, role, {}, {});
                          }
                        }
                      }
                      done();
                    });
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
  commit_then_apply(std::move(job), [this, iq, from, destroy_element,
                                     done = std::move(done)](Result<void> r) mutable {
    if (!r) {
      send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError},
                 "the room could not be removed");
      return;
    }
    destroyed_ = true;
    if (config_.persistent) {
      host_.release_persistent_room();
    }
    // XEP-0045 §10.9: every occupant is told, with the alternate venue and reason.
    for (const auto& [nick, o] : occupants_) {
      XmlElement p = presence_of(o, true);
      auto& x = p.add_child("x", ns::kMucUser);
      x.add_child("item", ns::kMucUser).set_attr("affiliation", "none").set_attr("role", "none");
      auto& d = x.add_child("destroy", ns::kMucUser);
      if (destroy_element.has_attr("jid")) {
        d.set_attr("jid", std::string(destroy_element.attr("jid")));
      }
      const std::string reason = destroy_element.child_text("reason", ns::kMucOwner);
      if (!reason.empty()) {
        d.add_child("reason", ns::kMucUser).add_text(reason);
      }
      for (const auto& s : o.sessions) {
        send(s, p);
      }
    }
    occupants_.clear();
    nick_of_session_.clear();
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    host_.on_room_destroyed(jid_);
    done();
  });
}

}  // namespace tc::broker::muc
