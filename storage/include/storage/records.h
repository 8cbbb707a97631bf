// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tc::storage {

/// Milliseconds since the Unix epoch, UTC. Every timestamp in the store uses it.
using UnixMillis = std::int64_t;

/// The claim a writer makes: "I am `holder` and hold `partition` at `epoch`". A fenced write
/// checks it inside its own transaction and fails with Errc::StaleEpoch when the lease row
/// says otherwise, so a node that lost its lease cannot change rooms it no longer owns.
struct Fence {
  std::string partition;
  std::string holder;
  std::int64_t epoch = 0;
};

/// Salted SCRAM credentials for one hash (RFC 5802 §3). Raw bytes, never a password.
struct ScramSecret {
  std::string salt;
  std::uint32_t iterations = 0;
  std::string stored_key;
  std::string server_key;
};

/// One account. `username` is already nodeprepped.
struct AccountRecord {
  std::string username;
  ScramSecret scram_sha1;
  ScramSecret scram_sha256;
  UnixMillis created_at = 0;
};

/// A room's durable state. `config_json` holds the muc#roomconfig values as a JSON object
/// owned by the broker; the store treats it as opaque text.
struct RoomRecord {
  std::optional<Fence> fence;  ///< save_room only: fenced write when set (not loaded back)
  std::string jid;             ///< bare room JID, normalised
  std::string config_json = "{}";
  bool persistent = true;
  std::string subject;
  std::string subject_nick;
  UnixMillis subject_at = 0;
  std::string host_node;  ///< node currently responsible for the room ("" = unassigned)
  UnixMillis created_at = 0;
};

/// XEP-0045 affiliations, as stored.
enum class Affiliation { None, Outcast, Member, Admin, Owner };

struct AffiliationRecord {
  std::optional<Fence> fence;  ///< set_affiliation only: fenced write when set
  std::string room_jid;
  std::string user_jid;  ///< bare user JID
  Affiliation affiliation = Affiliation::None;
  std::string reason;
  std::string nick;  ///< reserved nickname, "" when none
};

/// A message to archive. `stanza_id` is chosen by the broker (XEP-0359) and unique in the room.
struct NewMessage {
  std::optional<Fence> fence;  ///< when set, the batch fails with StaleEpoch unless it holds
  std::string room_jid;
  std::string stanza_id;
  std::string sender_nick;
  std::string sender_jid;          ///< real bare JID of the sender ("" when unknown)
  std::string kind = "groupchat";  ///< "groupchat", or "join"/"leave" when presence is archived
  std::string stanza_xml;          ///< the message as broadcast, serialised
  UnixMillis created_at = 0;
};

/// An archived message. `seq` orders a room's messages and is local to one database.
struct ArchivedMessage {
  std::int64_t seq = 0;
  std::string room_jid;
  std::string stanza_id;
  std::string sender_nick;
  std::string sender_jid;
  std::string kind;
  std::string stanza_xml;
  UnixMillis created_at = 0;
};

/// A room with everything a node needs to host it (Store::load_rooms).
struct RoomBundle {
  RoomRecord room;
  std::vector<AffiliationRecord> affiliations;  ///< sorted by user JID
  std::vector<ArchivedMessage> recent;          ///< the newest messages, oldest first
};

/// An archive query (XEP-0313 + XEP-0059). Paging cursors are stanza ids.
struct ArchiveQuery {
  std::string room_jid;
  std::optional<UnixMillis> start;       ///< inclusive
  std::optional<UnixMillis> end;         ///< inclusive
  std::string with_nick;                 ///< only messages from this occupant nick ("" = all)
  std::string with_jid;                  ///< only messages whose sender_jid is this ("" = all)
  std::optional<std::string> after_id;   ///< messages strictly after this stanza id
  std::optional<std::string> before_id;  ///< strictly before; "" means "the last page"
  /// XEP-0313 #extended after-id/before-id: these narrow what matches (and what is counted),
  /// where after_id/before_id are the page's cursors within it. An unknown id is NotFound.
  std::optional<std::string> window_after_id;
  std::optional<std::string> window_before_id;
  std::size_t max = 50;
  bool include_presence = false;  ///< include archived joins/leaves
};

struct ArchivePage {
  std::vector<ArchivedMessage> messages;  ///< always oldest first
  bool complete = false;                  ///< no more messages in the paging direction
  std::optional<std::size_t> count;       ///< total matching, when cheaply known
};

/// One node's entry in the shared registry (tc_nodes): which critical services it runs and
/// when it last said so. Tools (tc-merge) read it to know whether a service is running.
struct NodeRecord {
  std::string node;
  bool text_conference_running = false;
  UnixMillis heartbeat_at = 0;  ///< refreshed every few seconds while the node runs
  std::string admin_url;        ///< where its admin API listens ("" = none)
  // Schema version 3 (HA): where the node can be reached and what SRM last said.
  std::string client_endpoint;  ///< "host:port" of its XMPP client listener ("" = unknown)
  std::string srm_endpoint;     ///< "host:port" of its SRM service port ("" = unknown)
  std::string state;            ///< SRM state as shown by status ("Normal", ...; "" = unknown)
  std::string reason;           ///< SRM reason ("" = unknown)
  std::string version;          ///< software version of the node
};

/// A lease on one partition: the share of users and rooms whose home is one node (the
/// partition is named after that node). `holder` serves it now; `epoch` is bumped each time
/// the holder changes, and every fenced write is conditioned on it. Times are on the
/// database's clock, never a node's.
struct LeaseRecord {
  std::string partition;
  std::string holder;
  std::int64_t epoch = 0;
  UnixMillis expires_at = 0;  ///< database clock
  UnixMillis db_now = 0;      ///< database clock when this record was read or written
};

/// A redundancy group: one or two nodes sharing this database. Names and descriptions are
/// validated by the broker (SPEC.md section 1); the store keeps them as given.
struct GroupRecord {
  std::string name;
  std::string description;
  bool ha_enabled = false;
  std::vector<std::string> nodes;  ///< one or two node names, in order (first = primary)
};

/// One piece of a user's own data (schema version 5): a roster item, an offline message, a PEP
/// item, a private-storage fragment, a vCard. `owner` is the user's bare JID (or a room's, for a
/// room vCard), `kind` says which of those it is, `key` identifies it within the kind. The store
/// keeps `value` as given (serialised XML); the broker gives it meaning.
struct UserDatum {
  std::string key;
  std::string value;
  UnixMillis updated_at = 0;  ///< when it was last written (database clock)
};

/// One write of Store::apply_user_data: set (owner, kind, key) to `value`, or delete it when
/// `value` is empty (std::nullopt).
struct UserDataChange {
  std::string owner;
  std::string kind;
  std::string key;
  std::optional<std::string> value;
};

}  // namespace tc::storage
