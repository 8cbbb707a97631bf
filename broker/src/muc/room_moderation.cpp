// SPDX-License-Identifier: Apache-2.0
// Retractions: an author's own (XEP-0424) and a moderator's (XEP-0425). Either turns the
// retracted message into a tombstone in the archive and the history, committed together with
// the message that announces it before anyone sees that message (the durability rule).
#include "muc/room_moderation.h"

#include <span>

#include "storage/errc.h"
#include "xmpp/datetime.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"
#include "xmpp/stream_parser.h"

#include "muc/room.h"
#include "muc/room_commit.h"

namespace tc::broker::muc {

namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- pure helpers ----

bool refers_to_another_message(const XmlElement& message) {
  return message.child("reactions", ns_ext::kReactions) != nullptr ||
         message.child("retract", ns_ext::kRetract) != nullptr ||
         message.child("apply-to", ns_ext::kFasten) != nullptr ||
         message.child("replace", ns_ext::kCorrect) != nullptr ||
         message.child("reply", ns_ext::kReply) != nullptr;
}

RetractionTarget author_retraction_target(const XmlElement& message) {
  if (const XmlElement* retract = message.child("retract", ns_ext::kRetract)) {
    // One carrying <moderated/> claims to be the room's; from an occupant it is only relayed
    // (XEP-0425 §7: clients trust moderation only from the room's own JID).
    if (retract->child("moderated", ns_ext::kModerate) == nullptr) {
      return {std::string(retract->attr("id")), false};
    }
    return {};
  }
  if (const XmlElement* apply = message.child("apply-to", ns_ext::kFasten)) {
    if (apply->child("retract", ns_ext::kRetract0) != nullptr) {
      return {std::string(apply->attr("id")), true};
    }
  }
  return {};
}

std::optional<ModerationRequest> parse_moderation(const XmlElement& payload) {
  const XmlElement* moderate = nullptr;
  const char* retract_ns = nullptr;
  std::string id;
  if (payload.name() == "moderate" && payload.xmlns() == ns_ext::kModerate) {
    moderate = &payload;
    retract_ns = ns_ext::kRetract;
    id = std::string(payload.attr("id"));
  } else if (payload.name() == "apply-to" && payload.xmlns() == ns_ext::kFasten) {
    moderate = payload.child("moderate", ns_ext::kModerate0);
    retract_ns = ns_ext::kRetract0;
    id = std::string(payload.attr("id"));
  }
  if (moderate == nullptr || id.empty() || moderate->child("retract", retract_ns) == nullptr) {
    return std::nullopt;
  }
  return ModerationRequest{std::move(id), moderate->child_text("reason", moderate->xmlns())};
}

XmlElement moderation_announcement(const Moderation& m) {
  XmlElement out("message", ns::kClient);
  out.set_attr("type", "groupchat");
  // XEP-0425 0.3: <retract id/> holding <moderated by/> and the reason.
  auto& retract = out.add_child("retract", ns_ext::kRetract);
  retract.set_attr("id", m.target_id);
  auto& moderated = retract.add_child("moderated", ns_ext::kModerate);
  moderated.set_attr("by", m.by);
  moderated.add_child("occupant-id", ns::kOccupantId).set_attr("id", m.occupant_id);
  if (!m.reason.empty()) {
    retract.add_child("reason", ns_ext::kRetract).add_text(m.reason);
  }
  // XEP-0425 0.2 (fastening), still what some clients read.
  auto& apply = out.add_child("apply-to", ns_ext::kFasten);
  apply.set_attr("id", m.target_id);
  auto& old = apply.add_child("moderated", ns_ext::kModerate0);
  old.set_attr("by", m.by);
  old.add_child("retract", ns_ext::kRetract0);
  if (!m.reason.empty()) {
    old.add_child("reason", ns_ext::kModerate0).add_text(m.reason);
  }
  return out;
}

std::vector<XmlElement> moderated_marks(const Moderation& m) {
  std::vector<XmlElement> marks;
  XmlElement retracted("retracted", ns_ext::kRetract);
  retracted.set_attr("stamp", m.stamp);
  auto& moderated = retracted.add_child("moderated", ns_ext::kModerate);
  moderated.set_attr("by", m.by);
  moderated.add_child("occupant-id", ns::kOccupantId).set_attr("id", m.occupant_id);
  if (!m.reason.empty()) {
    retracted.add_child("reason", ns_ext::kRetract).add_text(m.reason);
  }
  marks.push_back(std::move(retracted));
  XmlElement old("moderated", ns_ext::kModerate0);
  old.set_attr("by", m.by);
  old.add_child("occupant-id", ns::kOccupantId).set_attr("id", m.occupant_id);
  old.add_child("retracted", ns_ext::kRetract0).set_attr("stamp", m.stamp);
  if (!m.reason.empty()) {
    old.add_child("reason", ns_ext::kModerate0).add_text(m.reason);
  }
  marks.push_back(std::move(old));
  return marks;
}

std::vector<XmlElement> retracted_marks(const std::string& stamp, bool legacy) {
  XmlElement retracted("retracted", legacy ? ns_ext::kRetract0 : ns_ext::kRetract);
  retracted.set_attr("stamp", stamp);
  return {std::move(retracted)};
}

std::optional<std::string> make_tombstone(std::string_view stored_xml,
                                          const std::vector<XmlElement>& marks) {
  auto original = xmpp::parse_element(stored_xml);
  if (!original) {
    return std::nullopt;
  }
  XmlElement tombstone(original->name(), ns::kClient);
  for (const auto& [k, v] : original->attrs()) {
    tombstone.set_attr(k, v);
  }
  // Identifiers stay, so that clients can match the tombstone to what they have.
  const XmlElement* origin_id = nullptr;
  for (const auto& child : original->nodes()) {
    if (child.is_text()) {
      continue;
    }
    const bool sid = child.xmlns() == ns::kStanzaId;
    if ((sid && (child.name() == "stanza-id" || child.name() == "origin-id")) ||
        (child.name() == "occupant-id" && child.xmlns() == ns::kOccupantId)) {
      tombstone.add_child(child);
    }
    if (sid && child.name() == "origin-id") {
      origin_id = &child;
    }
  }
  for (const auto& mark : marks) {
    XmlElement& added = tombstone.add_child(mark);
    // XEP-0424 0.2: the older <retracted/> carries the origin id inside.
    if (origin_id != nullptr && added.name() == "retracted" && added.xmlns() == ns_ext::kRetract0) {
      added.add_child(*origin_id);
    }
  }
  return tombstone.to_string(ns::kClient);
}

// ---- the room ----

namespace {

/// The job's answer: the tombstone written ("" when none was), or the store's error.
using TombstoneResult = Result<std::string>;

/// Runs on the store worker: replaces `target` with its tombstone when `may_replace` accepts
/// the original, then appends `announcement`. Not one transaction, but safe to repeat: a
/// retry after a failed append writes the same kind of tombstone again and then the append.
template <class MayReplace>
TombstoneResult tombstone_then_append(storage::Store& s, const storage::NewMessage& announcement,
                                      const std::string& target,
                                      const std::vector<XmlElement>& marks, bool must_exist,
                                      MayReplace may_replace) {
  const storage::Fence* fence = announcement.fence ? &*announcement.fence : nullptr;
  std::string tombstone;
  auto original = s.archived_message(announcement.room_jid, target);
  if (!original && (must_exist || original.error() != storage::Errc::NotFound)) {
    return original.error();
  }
  if (original && original->kind == "groupchat" && may_replace(*original)) {
    auto made = make_tombstone(original->stanza_xml, marks);
    if (!made) {
      return storage::make_error_code(storage::Errc::QueryFailed);  // unreadable stored row
    }
    if (auto r = s.replace_archived_stanza(announcement.room_jid, target, *made, fence); !r) {
      return r.error();
    }
    tombstone = std::move(*made);
  } else if (must_exist) {
    return storage::make_error_code(storage::Errc::NotFound);  // a join or leave
  }
  if (auto r = s.append_messages(std::span<const storage::NewMessage>(&announcement, 1)); !r) {
    return r.error();
  }
  return tombstone;
}

}  // namespace

void Room::replace_history(const std::string& stanza_id, const std::string& xml) {
  for (auto& entry : history_) {
    if (entry.stanza_id == stanza_id) {
      entry.xml = xml;
      return;
    }
  }
}

void Room::commit_retraction(storage::NewMessage record, std::string target_id, bool legacy,
                             const XmlElement& message, const Jid& from, Completion done) {
  HistoryEntry entry{record.stanza_id, record.sender_nick, record.stanza_xml, record.created_at};
  auto job = [record = std::move(record), target = target_id,
              marks = retracted_marks(xmpp::xep82_timestamp(now_millis()), legacy)](
                 storage::Store& s) -> TombstoneResult {
    // XEP-0424: only the author's own message becomes a tombstone; a retraction of anyone
    // else's (or of a message the archive no longer has) is archived and relayed as it is.
    return tombstone_then_append(
        s, record, target, marks, false, [&record](const storage::ArchivedMessage& original) {
          return !record.sender_jid.empty() && original.sender_jid == record.sender_jid;
        });
  };
  commit_then_apply(std::move(job),
                    [this, target = std::move(target_id), entry = std::move(entry), message, from,
                     done = std::move(done)](TombstoneResult r) mutable {
                      if (!r) {
                        send_error(message, from, Condition::ResourceConstraint,
                                   "the message could not be stored; send it again");
                        return;
                      }
                      if (!r->empty()) {
                        replace_history(target, *r);
                      }
                      reflect_archived(std::move(entry));
                      done();
                    });
}

void Room::on_moderate_iq(const XmlElement& iq, const Jid& from, Completion done) {
  if (iq.attr("type") != "set") {
    send_error(iq, from, Condition::BadRequest, "a moderation is an iq of type set");
    return;
  }
  const auto request = parse_moderation(*iq.first_element());
  if (!request) {
    send_error(iq, from, Condition::BadRequest,
               "expected <moderate id='stanza-id'><retract/></moderate>");
    return;
  }
  // XEP-0425 §4: moderators only; as in Prosody, a moderator present in the room.
  const Occupant* moderator = occupant_of(from);
  if (moderator == nullptr || moderator->role != Role::Moderator) {
    send_error(iq, from, Condition::Forbidden, "only moderators may retract others' messages");
    return;
  }
  Moderation m;
  m.target_id = request->id;
  m.by = jid_.bare_str() + "/" + moderator->nick;
  m.occupant_id = moderator->occupant_id;
  m.reason = request->reason;
  m.stamp = xmpp::xep82_timestamp(now_millis());

  // The announcement is archived too, so that a client catching up from the archive learns
  // of the retraction of a message it already has.
  XmlElement announcement = moderation_announcement(m);
  announcement.set_attr("from", jid_.bare_str());
  announcement.set_attr("id", xmpp::random_token(12));
  storage::NewMessage record;
  record.fence = host_.fence_for(jid_);
  record.room_jid = jid_.bare_str();
  record.stanza_id = xmpp::random_token(16);
  record.sender_jid = moderator->bare.bare_str();
  record.kind = "groupchat";
  announcement.add_child("stanza-id", ns::kStanzaId)
      .set_attr("id", record.stanza_id)
      .set_attr("by", jid_.bare_str());
  record.stanza_xml = announcement.to_string(ns::kClient);
  record.created_at = now_millis();
  HistoryEntry entry{record.stanza_id, {}, record.stanza_xml, record.created_at};

  auto job = [record = std::move(record), target = m.target_id,
              marks = moderated_marks(m)](storage::Store& s) -> TombstoneResult {
    return tombstone_then_append(s, record, target, marks, true,
                                 [](const storage::ArchivedMessage&) { return true; });
  };
  commit_then_apply(std::move(job), [this, iq, from, target = m.target_id, entry = std::move(entry),
                                     done = std::move(done)](TombstoneResult r) mutable {
    if (!r) {
      if (r.error() == storage::Errc::NotFound) {
        send_error(iq, from, Condition::ItemNotFound, "this room has no message with that id");
      } else {
        send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError},
                   "the retraction could not be stored");
      }
      return;
    }
    replace_history(target, *r);
    reflect_archived(std::move(entry));  // XEP-0425 §4: everyone, the moderator included
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    done();
  });
}

}  // namespace tc::broker::muc
