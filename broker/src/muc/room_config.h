// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "xmpp/xml_element.h"

namespace tc::broker::muc {

/// Limits the service imposes on room configuration (from the node's [muc] settings).
struct ConfigLimits {
  std::size_t max_history = 200;
  int retention_min_days = 1;
  int retention_max_days = 3650;
  bool may_make_persistent = true;  ///< false for non-admins when persistent rooms are admin-only
};

/// A room's muc#roomconfig settings (XEP-0045 §10.2), persisted as JSON in tc_rooms.
struct RoomConfig {
  std::string name;
  std::string description;
  bool persistent = true;
  bool public_room = true;
  bool members_only = false;
  bool password_protected = false;
  std::string password;
  bool moderated = false;
  std::size_t max_users = 200;       ///< 0 = no limit
  std::string whois = "moderators";  ///< "moderators" (semi-anonymous) or "anyone"
  bool change_subject = false;       ///< participants may change the subject
  std::string allow_pm = "anyone";   ///< anyone, participants, moderators, none
  std::size_t history_length = 20;   ///< default discussion history on join
  bool allow_invites = false;        ///< participants may invite to members-only rooms
  int retention_days = 0;            ///< archive retention override; 0 = service default
  std::string occupant_id_salt;      ///< XEP-0421 ids are HMACs under this room secret
  /// The room's vCard (XEP-0054 on the room JID, its avatar for XEP-0486), serialised; ""
  /// when none. Kept here so that it is stored with the room and moves with it on failover.
  std::string vcard;

  bool non_anonymous() const { return whois == "anyone"; }

  std::string to_json() const;
  /// Unknown keys are ignored; missing keys keep their defaults.
  static RoomConfig from_json(std::string_view json);

  /// The owner's configuration form (type='form'), filled with the current values.
  xmpp::XmlElement to_form(const ConfigLimits& limits) const;
  /// Applies a submitted form (type='submit'). Fails with xmpp::Errc::MalformedRequest on a
  /// value out of range; `error_text` then says which field.
  Result<void> apply_form(const xmpp::XmlElement& x, const ConfigLimits& limits,
                          std::string& error_text);
};

}  // namespace tc::broker::muc
