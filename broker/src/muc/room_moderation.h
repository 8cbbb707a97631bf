// SPDX-License-Identifier: Apache-2.0
// Messages that act on earlier messages (XEP-0424 retraction, XEP-0425 moderation, XEP-0444
// reactions, XEP-0308 corrections, XEP-0461 replies): recognising them and building the
// tombstones that replace retracted messages in the archive. Pure functions, no room state.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/xml_element.h"

namespace tc::broker::muc {

namespace ns_ext {
inline constexpr const char* kRetract = "urn:xmpp:message-retract:1";     // XEP-0424 0.4
inline constexpr const char* kRetract0 = "urn:xmpp:message-retract:0";    // older, fastened
inline constexpr const char* kModerate = "urn:xmpp:message-moderate:1";   // XEP-0425 0.3
inline constexpr const char* kModerate0 = "urn:xmpp:message-moderate:0";  // older, fastened
inline constexpr const char* kFasten = "urn:xmpp:fasten:0";               // XEP-0422
inline constexpr const char* kReactions = "urn:xmpp:reactions:0";         // XEP-0444
inline constexpr const char* kCorrect = "urn:xmpp:message-correct:0";     // XEP-0308
inline constexpr const char* kReply = "urn:xmpp:reply:0";                 // XEP-0461
}  // namespace ns_ext

/// True when `message` reacts to, retracts, corrects or replies to another message: such a
/// message is archived even without a body, so that the archive replays it in order.
bool refers_to_another_message(const xmpp::XmlElement& message);

/// The message an author's retraction names: <retract id='…' xmlns='…retract:1'/>, or the
/// older <apply-to id='…' xmlns='urn:xmpp:fasten:0'><retract xmlns='…retract:0'/></apply-to>
/// (`legacy`). `id` is "" when `message` retracts nothing.
struct RetractionTarget {
  std::string id;
  bool legacy = false;
};
RetractionTarget author_retraction_target(const xmpp::XmlElement& message);

/// A XEP-0425 request: <moderate id='…' xmlns='…moderate:1'><retract xmlns='…retract:1'/>
/// <reason/></moderate>, or the older <apply-to id='…'><moderate xmlns='…moderate:0'>
/// <retract xmlns='…retract:0'/></moderate></apply-to>. nullopt when `payload` is neither or
/// names no message.
struct ModerationRequest {
  std::string id;
  std::string reason;
};
std::optional<ModerationRequest> parse_moderation(const xmpp::XmlElement& payload);

/// Who moderated, when and why: what both the announcement and the tombstone say.
struct Moderation {
  std::string target_id;    ///< stanza id of the retracted message
  std::string by;           ///< the moderator's occupant JID, room@service/nick
  std::string occupant_id;  ///< the moderator's XEP-0421 id
  std::string reason;       ///< "" when none was given
  std::string stamp;        ///< XEP-0082 time of the retraction
};

/// The message the room sends everyone (XEP-0425 §4, in the current form and the fastened
/// one, so that clients of either version apply it). Without from, id or stanza-id.
xmpp::XmlElement moderation_announcement(const Moderation& m);

/// What a tombstone carries instead of the content: for a moderation, <retracted/> with
/// <moderated/> inside (and the older <moderated/> with <retracted/> inside); for an
/// author's retraction, <retracted stamp='…'/> in the namespace the retraction used.
std::vector<xmpp::XmlElement> moderated_marks(const Moderation& m);
std::vector<xmpp::XmlElement> retracted_marks(const std::string& stamp, bool legacy);

/// The tombstone of a stored groupchat stanza: its attributes (from, type, id), its stanza-id,
/// origin-id and occupant-id, then `marks`; the body and every other payload are gone (XEP-0424
/// §5.1, XEP-0425 §6). Serialised like the stored stanza; nullopt when `stored_xml` does not parse.
std::optional<std::string> make_tombstone(std::string_view stored_xml,
                                          const std::vector<xmpp::XmlElement>& marks);

}  // namespace tc::broker::muc
