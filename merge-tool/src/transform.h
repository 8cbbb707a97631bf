// SPDX-License-Identifier: Apache-2.0
// Pure text transformations of the merge: JID parts, JID rewriting inside columns and stored XML,
// and the conversions of the vendor's rows (ANCHORS.md 1.2) into our records. No I/O.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace tc::merge {

std::string to_lower(std::string_view text);
/// "local@domain/res" -> "local@domain"; "domain/res" -> "domain".
std::string_view bare_jid(std::string_view jid);
/// The part after '/', "" when none.
std::string_view jid_resource(std::string_view jid);
/// The part between '@' (if any) and '/' (if any).
std::string_view jid_domain(std::string_view jid);

/// Rewrites JIDs inside any text (a column or a serialised stanza) in one pass:
///  - a domain (the vendor's chat-node alias) becomes another wherever it follows '@' or stands
///    alone as an attribute value (`to='alias'`); matched case-insensitively;
///  - a whole bare room JID becomes another (collision policy "rename"), also when followed
///    by "/nick".
/// Domains are rewritten first, so room renames are keyed by the rewritten JID.
class JidRewriter {
 public:
  void rename_domain(std::string_view from, std::string_view to);
  void rename_room(std::string_view from_bare, std::string_view to_bare);
  bool empty() const { return domains_.empty() && rooms_.empty(); }
  std::string apply(std::string_view text) const;
  /// apply() for a single JID value (no XML context).
  std::string apply_jid(std::string_view jid) const { return apply(jid); }

 private:
  std::map<std::string, std::string, std::less<>> domains_;  // lower-case alias -> domain
  std::map<std::string, std::string, std::less<>> rooms_;    // lower-case bare -> bare
};

/// Renames a room in the address attributes of one stored stanza, in place (policy "rename").
/// Address attributes are `from`, `to`, `jid` and `by` on any element (the envelope of the
/// archived stanza, a nested forwarded stanza, MUC <item jid/>, XEP-0359 <stanza-id by/>,
/// XEP-0033 <address jid/>); one is renamed when its whole value is the room's bare JID or an
/// occupant JID of it (`room/nick`, the nick kept byte for byte), compared case-insensitively.
/// Nothing else changes: text content (bodies, subjects), CDATA, comments, other attributes
/// (reasons, ids, <occupant-id/>) and the stanza's spelling (quotes, spacing, entities) stay
/// byte-identical. Mentions of the room in text are history and are never rewritten.
/// `xml` must be well-formed (validation parses every stanza); returns the number of
/// attributes renamed, or nullopt when a tag or quoted value is not closed (nothing changed).
std::optional<std::size_t> rename_room_addresses(std::string& xml, std::string_view from_bare,
                                                 std::string_view to_bare);

std::string xml_escape(std::string_view text);
/// Replaces the five predefined entities and numeric character references.
std::string xml_unescape(std::string_view text);

/// The value of attribute `name` on the first element in `xml` whose tag starts with `tag`
/// (e.g. "<stanza-id"), unescaped; nullopt when absent.
std::optional<std::string> find_attr(std::string_view xml, std::string_view tag,
                                     std::string_view name);

/// A vendor TC_MSGARCHIVE stanza made ready for our archive: the root's jabber:client
/// namespace declaration removed (the broker adds it when forwarding, XEP-0313), and a
/// <stanza-id by=room/> (XEP-0359) appended when the stanza has none for this room.
std::string normalize_vendor_stanza(std::string_view xml, std::string_view room_jid,
                                    std::string_view stanza_id);
/// A stanza built from the archive's separate columns when no MESSAGE_STRING was stored.
std::string synthesize_stanza(std::string_view room_jid, std::string_view nick,
                              std::string_view body, std::string_view stanza_id);

/// The muc#roomconfig fields of a vendor CONFIG packet (an owner's submitted data form) as our
/// room-config JSON (broker's RoomConfig::to_json keys). Unknown fields are ignored; absent
/// ones keep the broker's defaults by being left out.
std::string vendor_config_to_json(std::string_view config_xml, bool persistent);

/// A timestamp column as milliseconds since the epoch, UTC: integer milliseconds, or
/// "YYYY-MM-DD[ T]HH:MM[:SS[.fff]][Z|+HH[:MM]|-HH[:MM]]". nullopt when unreadable.
std::optional<long long> parse_timestamp_ms(std::string_view text);

}  // namespace tc::merge
