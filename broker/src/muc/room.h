// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"
#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

#include "muc/room_config.h"
#include "muc/room_host.h"
#include "muc/types.h"

namespace tc::broker::muc {

/// Live state of one XEP-0045 room. Shard-affine: every method runs on the shard that owns
/// the room, so the room needs no locks. Writes go to the shard's store worker and the room
/// applies them, and tells anyone, only once they are committed (the durability rule).
///
/// One file per feature, as Prosody's MUC modules: room.cpp (state, output, iq dispatch),
/// room_join.cpp, room_message.cpp, room_admin.cpp, room_owner.cpp, room_mam.cpp and
/// room_disco.cpp, room_moderation.cpp (XEP-0424/0425 retractions) and room_vcard.cpp.
class Room : public std::enable_shared_from_this<Room> {
 public:
  /// What the store holds for a room.
  struct Loaded {
    storage::RoomRecord record;
    std::vector<storage::AffiliationRecord> affiliations;
    std::vector<storage::ArchivedMessage> recent;  ///< oldest first
  };

  Room(RoomHost& host, xmpp::Jid jid, Loaded loaded);

  /// A new room owned by `creator`; its row and the owner's affiliation are queued for the
  /// store ahead of anything else the room writes.
  static std::shared_ptr<Room> create(RoomHost& host, xmpp::Jid jid, const xmpp::Jid& creator);

  const xmpp::Jid& jid() const { return jid_; }
  const RoomConfig& config() const { return config_; }
  bool empty() const { return occupants_.empty(); }
  std::size_t occupant_count() const { return occupants_.size(); }
  const std::string& subject() const { return record_.subject; }

  /// A stanza from the user at `from` (a full real JID) to the room or to room/nick.
  void on_presence(const xmpp::XmlElement& presence, const xmpp::Jid& from, Completion done);
  void on_message(const xmpp::XmlElement& message, const xmpp::Jid& from, Completion done);
  void on_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);

  /// Removes every occupant with status 332 (service shutting down or room moving away).
  void evict_all(std::string_view reason);

 private:
  struct Occupant {
    std::string nick;
    xmpp::Jid bare;
    std::vector<xmpp::Jid> sessions;  // several resources may share one nick
    Role role = Role::None;
    Affiliation affiliation = Affiliation::None;
    std::string occupant_id;
    xmpp::XmlElement presence;  // the client's last presence payload (show, status, ...)
  };
  struct HistoryEntry {
    std::string stanza_id;
    std::string nick;
    std::string xml;  // as broadcast, without 'to'
    storage::UnixMillis at = 0;
  };

  // presence (room_join.cpp)
  void join(const xmpp::XmlElement& presence, const xmpp::Jid& from, const std::string& nick);
  void change_nick(Occupant& occupant, const xmpp::Jid& from, const std::string& new_nick,
                   const xmpp::XmlElement& presence);
  void leave(const xmpp::Jid& from, const xmpp::XmlElement& presence);
  void send_history(const xmpp::Jid& to, const xmpp::XmlElement* history_request);
  void send_subject(const xmpp::Jid& to);

  // messages (room_message.cpp)
  void on_groupchat(const xmpp::XmlElement& message, Occupant& sender, const xmpp::Jid& from,
                    Completion done);
  void on_subject_change(const xmpp::XmlElement& message, Occupant& sender, const xmpp::Jid& from,
                         Completion done);
  void on_private_message(const xmpp::XmlElement& message, const xmpp::Jid& from,
                          const std::string& to_nick);
  void on_invite(const xmpp::XmlElement& message, const xmpp::Jid& from);
  void on_decline(const xmpp::XmlElement& message, const xmpp::XmlElement& decline,
                  const xmpp::Jid& from);
  /// Appends a committed message to the discussion history and reflects it to everyone.
  void reflect_archived(HistoryEntry entry);

  // retractions and moderation (room_moderation.cpp)
  /// Archives a groupchat message that retracts an earlier one of its author (XEP-0424), and
  /// turns that earlier one into a tombstone in the archive and the history, in one job on
  /// the store worker; then reflects it. `record` is the retraction, ready to append.
  void commit_retraction(storage::NewMessage record, std::string target_id, bool legacy,
                         const xmpp::XmlElement& message, const xmpp::Jid& from, Completion done);
  /// XEP-0425: a moderator retracts someone's message (the iq payload is <moderate/>, or
  /// the older <apply-to><moderate/></apply-to>).
  void on_moderate_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);
  /// Replaces the history entry of `stanza_id`, if the history still holds it.
  void replace_history(const std::string& stanza_id, const std::string& xml);

  // room vCard (room_vcard.cpp)
  void on_vcard_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);

  // muc#admin (room_admin.cpp)
  struct RoleChange {
    std::string nick;
    Role role = Role::None;
    std::string reason;
  };
  struct AffiliationChange {
    xmpp::Jid bare;
    Affiliation affiliation = Affiliation::None;
    std::string reason;
    std::string nick;
  };
  /// The items of one muc#admin set, all validated.
  struct AdminChanges {
    std::vector<RoleChange> roles;
    std::vector<AffiliationChange> affiliations;
  };
  void on_admin_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);
  void list_affiliation(const xmpp::XmlElement& iq, const xmpp::Jid& from, std::string_view name);
  void list_role(const xmpp::XmlElement& iq, const xmpp::Jid& from, std::string_view name);
  /// Validates every item of a set; on the first refusal, answers `iq` with the error and
  /// returns nullopt.
  std::optional<AdminChanges> admin_changes(const xmpp::XmlElement& iq, const xmpp::Jid& from,
                                            const std::vector<const xmpp::XmlElement*>& items);
  bool check_role_item(const xmpp::XmlElement& iq, const xmpp::Jid& from,
                       const xmpp::XmlElement& item, AdminChanges& changes);
  /// `owners` counts the owners left after the items before this one.
  bool check_affiliation_item(const xmpp::XmlElement& iq, const xmpp::Jid& from,
                              const xmpp::XmlElement& item, std::size_t& owners,
                              AdminChanges& changes);
  void apply_role_changes(const std::vector<RoleChange>& changes, const std::string& actor_nick);
  /// Affiliations are persisted: stored first, then applied (with the roles of the same set).
  void commit_affiliations(const xmpp::XmlElement& iq, const xmpp::Jid& from, AdminChanges changes,
                           const std::string& actor_nick, Completion done);

  // muc#owner (room_owner.cpp), archive queries (room_mam.cpp), disco (room_disco.cpp)
  void on_owner_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);
  void destroy(const xmpp::XmlElement& iq, const xmpp::XmlElement& destroy_element,
               Completion done);
  void on_mam_iq(const xmpp::XmlElement& iq, const xmpp::Jid& from, Completion done);
  void on_disco_info(const xmpp::XmlElement& iq);
  void on_disco_items(const xmpp::XmlElement& iq);

  // state helpers
  Affiliation affiliation_of(const xmpp::Jid& bare) const;
  Role default_role(Affiliation affiliation) const;
  Occupant* occupant_of(const xmpp::Jid& full);
  Occupant* occupant_by_nick(const std::string& nick);
  std::string occupant_id_for(const xmpp::Jid& bare) const;
  bool can_see_jids(const Occupant& viewer) const;
  storage::RoomRecord record() const;
  ConfigLimits limits_for(const xmpp::Jid& actor) const;
  /// Applies a new affiliation to anyone present with that bare JID (roles, removals).
  void apply_affiliation(const xmpp::Jid& bare, Affiliation affiliation, const std::string& reason,
                         const std::string& actor_nick);
  /// Removes an occupant with an unavailable presence carrying `codes` (307 kick, 301 ban,
  /// 321/322 membership, 332 shutdown).
  void remove_occupant(const std::string& nick, std::vector<int> codes, const std::string& reason,
                       const std::string& actor_nick);
  void set_role(Occupant& occupant, Role role, const std::string& reason,
                const std::string& actor_nick);

  // output (room.cpp)
  /// <x xmlns='muc#user'/> with these status codes.
  static xmpp::XmlElement status_x(const std::vector<int>& codes);
  xmpp::XmlElement presence_of(const Occupant& occupant, bool unavailable) const;
  /// Broadcasts `occupant`'s presence: each recipient sees the real JID only if allowed; the
  /// occupant's own sessions get status 110 and `self_codes` as well.
  void broadcast_presence(const Occupant& occupant, bool unavailable, const std::vector<int>& codes,
                          const std::vector<int>& self_codes, const std::string& nick_change = {},
                          const std::string& reason = {}, const std::string& actor_nick = {});
  /// Sends `stanza` (without 'to') to every session of every occupant.
  void broadcast(const xmpp::XmlElement& stanza);
  void broadcast_status(std::vector<int> codes);
  void send(const xmpp::Jid& to, const xmpp::XmlElement& stanza);
  /// Answers `stanza` with a stanza error from the room (by='room@service'); never answers
  /// an error.
  void send_error(const xmpp::XmlElement& stanza, const xmpp::Jid& to, const StanzaError& error,
                  std::string_view text = {});
  void archive_presence(const Occupant& occupant, bool joined);

  /// The durability rule in one place: `write` runs on the shard's store worker (a job
  /// `Result<T>(storage::Store&)`, or a storage::NewMessage to append with group commit),
  /// then `apply(Result<T>)` runs back on the room's shard, unless the room was destroyed in
  /// the meantime: then `apply` is dropped uncalled (a Completion it holds fires on its own).
  /// `apply` may capture `this`: the room lives until it has run. The wait is counted in the
  /// host's metrics as a commit, or (`archive_query`) as a MAM query. Defined in
  /// room_commit.h.
  template <class Write, class Apply>
  void commit_then_apply(Write write, Apply apply, bool archive_query = false);
  void maybe_empty();

  RoomHost& host_;
  xmpp::Jid jid_;
  RoomConfig config_;
  storage::RoomRecord record_;
  std::map<std::string, Occupant> occupants_;                       // nick -> occupant
  std::map<std::string, std::string> nick_of_session_;              // full real JID -> nick
  std::map<std::string, storage::AffiliationRecord> affiliations_;  // bare JID -> record
  std::deque<HistoryEntry> history_;
  std::string avatar_hash_;       // XEP-0486, of config_.vcard
  bool awaiting_config_ = false;  // created, creator has not configured or accepted yet
  bool locked_ = false;           // reserved room: no one else may enter until configured
  bool just_created_ = false;     // the creator's join still has to say 201
  bool destroyed_ = false;
};

/// "<presence ...": inserts to='...' after the element name of a serialised stanza.
std::string address_to(const std::string& serialised, const std::string& to);

/// XEP-0486: the hex SHA-1 of the photo in a serialised vCard (PHOTO/BINVAL), "" when there
/// is none or it is not base64. Defined in room_vcard.cpp.
std::string vcard_avatar_hash(std::string_view vcard_xml);

/// The wall clock in milliseconds since the Unix epoch (XEP-0082 formatting: xmpp/datetime.h).
storage::UnixMillis now_millis();

}  // namespace tc::broker::muc
