// SPDX-License-Identifier: Apache-2.0
// Messages: groupchat (archived, then reflected), subject changes (XEP-0045 §8.1), private
// messages (§7.5), mediated invitations and declines (§7.8.2).
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

#include "muc/room.h"
#include "muc/room_commit.h"
#include "muc/room_moderation.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

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
    send_error(message, from, Condition::BadRequest, "messages to a room are type groupchat");
    return;
  }
  Occupant* sender = occupant_of(from);
  if (sender == nullptr) {
    send_error(message, from, Condition::NotAcceptable, "only occupants may send messages");
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
    send_error(message, from, Condition::Forbidden, "visitors may not speak in this room");
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
  // A body, or a reference to another message (a reaction, retraction, correction or reply,
  // which clients apply to what they have) makes a message part of the room's record.
  const bool archived =
      message.child("body", ns::kClient) != nullptr || refers_to_another_message(message);
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

  if (const RetractionTarget target = author_retraction_target(message); !target.id.empty()) {
    commit_retraction(std::move(record), target.id, target.legacy, message, from, std::move(done));
    return;
  }
  HistoryEntry entry{stanza_id, sender.nick, record.stanza_xml, record.created_at};
  // The durability rule: nobody, the sender included, sees the message before it is
  // committed; the session's XEP-0198 count waits on `done` too.
  commit_then_apply(std::move(record),
                    [this, entry = std::move(entry), message, from,
                     done = std::move(done)](Result<std::int64_t> committed) mutable {
                      if (!committed) {
                        send_error(message, from, Condition::ResourceConstraint,
                                   "the message could not be stored; send it again");
                        return;
                      }
                      reflect_archived(std::move(entry));
                      done();
                    });
}

void Room::reflect_archived(HistoryEntry entry) {
  const std::string wire = entry.xml;
  history_.push_back(std::move(entry));
  while (history_.size() > host_.config().muc_max_history) {
    history_.pop_front();
  }
  std::vector<RoomHost::Delivery> deliveries;
  deliveries.reserve(occupants_.size());
  for (const auto& [nick, o] : occupants_) {
    for (const auto& s : o.sessions) {
      deliveries.push_back({s, to_wire(address_to(wire, s.str()))});
    }
  }
  host_.deliver(std::move(deliveries));
}

void Room::on_subject_change(const XmlElement& message, Occupant& sender, const Jid& from,
                             Completion done) {
  // XEP-0045 §8.1: moderators always; participants when the room allows it.
  if (!(sender.role == Role::Moderator ||
        (config_.change_subject && sender.role == Role::Participant))) {
    send_error(message, from, Condition::Forbidden, "you may not change the subject");
    return;
  }
  storage::RoomRecord next = record();
  next.subject = message.child_text("subject", ns::kClient);
  next.subject_nick = sender.nick;
  next.subject_at = now_millis();
  auto job = [next](storage::Store& s) { return s.save_room(next); };
  commit_then_apply(std::move(job), [this, next, message, from,
                                     done = std::move(done)](Result<void> r) mutable {
    if (!r) {
      send_error(message, from, Condition::ResourceConstraint, "the subject could not be stored");
      return;
    }
    record_.subject = next.subject;
    record_.subject_nick = next.subject_nick;
    record_.subject_at = next.subject_at;
    XmlElement out("message", ns::kClient);
    out.set_attr("from", jid_.bare_str() + "/" + next.subject_nick);
    out.set_attr("type", "groupchat");
    out.set_attr("id",
                 message.has_attr("id") ? std::string(message.attr("id")) : xmpp::random_token(12));
    out.add_child("subject", ns::kClient).add_text(next.subject);
    broadcast(out);
    done();
  });
}

void Room::on_private_message(const XmlElement& message, const Jid& from,
                              const std::string& to_nick) {
  Occupant* sender = occupant_of(from);
  if (sender == nullptr) {
    send_error(message, from, Condition::NotAcceptable, "only occupants may send messages");
    return;
  }
  if (message.attr("type") == "groupchat") {
    send_error(message, from, Condition::BadRequest, "groupchat goes to the room");
    return;
  }
  const std::string& policy = config_.allow_pm;
  const bool allowed = policy == "anyone" ||
                       (policy == "participants" && sender->role != Role::Visitor) ||
                       (policy == "moderators" && sender->role == Role::Moderator);
  if (!allowed) {
    send_error(message, from, {ErrorType::Cancel, Condition::Forbidden},
               "private messages are not allowed here");
    return;
  }
  Occupant* target = occupant_by_nick(to_nick);
  if (target == nullptr) {
    send_error(message, from, Condition::ItemNotFound, "no occupant has that nickname");
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
    send_error(message, from, Condition::NotAcceptable, "only occupants may invite");
    return;
  }
  if (config_.members_only && !config_.allow_invites && sender->role != Role::Moderator) {
    send_error(message, from, Condition::Forbidden, "only moderators may invite here");
    return;
  }
  for (const XmlElement* invite :
       message.child("x", ns::kMucUser)->children("invite", ns::kMucUser)) {
    auto invitee = Jid::parse(invite->attr("to"));
    if (!invitee) {
      send_error(message, from, Condition::JidMalformed, "bad invitee address");
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
    send_error(message, from, Condition::JidMalformed, "decline needs the inviter's JID");
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

}  // namespace tc::broker::muc
