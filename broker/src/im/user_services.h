// SPDX-License-Identifier: Apache-2.0
// What the server keeps for each user besides its account: the roster and presence
// subscriptions (RFC 6121), offline messages (XEP-0160), vCards (XEP-0054), private XML
// storage (XEP-0049) and the personal eventing service (XEP-0163, with XEP-0402 bookmarks,
// XEP-0084 avatars and OMEMO device lists as its clients' nodes), and the message archive
// (XEP-0313). Everything lives in the cluster database (tc_user_data; the archive in
// tc_archive), so any node serves any user and a failover loses none of it; every change is
// committed before the client is answered or anyone is told.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "base/result.h"
#include "storage/records.h"
#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

#include "im/roster.h"
#include "routing/stanzas.h"

namespace tc::storage {
class Store;
}
namespace tc::broker {
struct ServerContext;
class StoreWorker;
}  // namespace tc::broker

namespace tc::broker::im {

template <class T>
using Awaitable = boost::asio::awaitable<T>;

/// The `kind` column of tc_user_data.
namespace kind {
inline constexpr char kRoster[] = "roster";             ///< key: contact bare JID; <item/>
inline constexpr char kRosterVersion[] = "roster-ver";  ///< key: ""; a number (XEP-0237)
inline constexpr char kRequest[] = "sub-request";       ///< key: requester; its <presence/>
inline constexpr char kOffline[] = "offline";           ///< key: time-ordered; the <message/>
inline constexpr char kVcard[] = "vcard";               ///< key: ""; <vCard/>
inline constexpr char kPrivate[] = "private";           ///< key: "{ns}name"; the element
inline constexpr char kPepNode[] = "pep-node";          ///< key: node; its <configure/>
inline constexpr char kPepItem[] = "pep";               ///< key: node "\n" item id; <item/>
}  // namespace kind

/// The wall clock in Unix milliseconds (archive and offline timestamps).
storage::UnixMillis now_ms();
/// The reply to an iq whose database work failed (type wait: the client may retry).
xmpp::XmlElement internal_error(const xmpp::XmlElement& iq);

// Reading in store jobs (on the store worker's thread).

/// The roster of `owner` (unreadable rows are logged and skipped) and its version ("0" when
/// it never changed).
struct RosterSnapshot {
  std::vector<RosterItem> items;
  std::string version = "0";
};
Result<RosterSnapshot> read_roster(storage::Store& s, const std::string& owner);
/// `owner`'s item for `contact`; nullopt when there is none.
Result<std::optional<RosterItem>> read_roster_item(storage::Store& s, const std::string& owner,
                                                   const std::string& contact);
/// One stored element; nullopt when there is none (or it no longer parses).
Result<std::optional<xmpp::XmlElement>> read_element(storage::Store& s, const std::string& owner,
                                                     const char* kind, const std::string& key);

/// Stateless: one per call site is fine. Runs on the caller's executor; the database work goes
/// to `store` (the cluster database's worker of the caller's shard).
class UserServices {
 public:
  UserServices(ServerContext& server, StoreWorker& store) : server_(server), store_(store) {}

  // ---- rosters and subscriptions ----
  /// The answer to a roster get or set (RFC 6121 §2) from `user` (a full JID). A set is
  /// committed, then pushed to every resource of the user, then answered.
  Awaitable<xmpp::XmlElement> roster_iq(const xmpp::Jid& user, const xmpp::XmlElement& iq);
  /// A subscription stanza (subscribe, subscribed, unsubscribe, unsubscribed) the user sent
  /// to `contact` (RFC 6121 §3): both rosters change in one transaction, then the pushes and
  /// presence the RFC calls for go out.
  Awaitable<void> subscription(const xmpp::Jid& user, const xmpp::XmlElement& presence,
                               const xmpp::Jid& contact);
  /// The user's broadcast presence goes to every contact subscribed to it (RFC 6121 §4.2-4.5);
  /// `initial` also probes the contacts it is subscribed to, whose resources answer. (The last
  /// PEP items are the session's to ask for, once it knows what its client wants.)
  Awaitable<void> broadcast_presence(const xmpp::Jid& user, const xmpp::XmlElement& presence,
                                     bool initial);
  /// What waited for the user: unanswered subscription requests (RFC 6121 §3.1.3) and offline
  /// messages (XEP-0160, oldest first, with their delay). `deliver` is called with each; the
  /// offline messages are deleted once delivered.
  Awaitable<void> deliver_waiting(const xmpp::Jid& user, const std::function<void(Wire)>& deliver);

  // ---- offline messages ----
  /// Whether `message` (sent to `to`, whom no session serves) is one XEP-0160 stores: chat or
  /// normal with a body.
  static bool offline_eligible(const xmpp::XmlElement& message);
  /// Stores it for `to`'s next login, with `archive` (prepare_archive's rows) committed too:
  /// both or neither. An error reply to send back when it cannot be (no such user, the queue
  /// is full, the database failed); nullopt when stored.
  Awaitable<std::optional<xmpp::XmlElement>> store_offline(
      const xmpp::Jid& to, const xmpp::XmlElement& message,
      std::vector<storage::NewMessage> archive = {});

  // ---- message archives (XEP-0313), user_mam.cpp ----
  /// Whether a user's message to another user is archived: chat or normal with a body, and no
  /// XEP-0334 <no-store/> or <no-permanent-store/> hint.
  static bool archive_eligible(const xmpp::XmlElement& message);
  /// Readies `message` (from `from`, a full JID, to `to`, both users of this domain) for
  /// both users' archives: drops any stanza-id it claims from either archive (XEP-0359 §3.1)
  /// and, when archive_eligible, stamps it with the recipient's stanza-id and returns the
  /// rows to commit (the sender's and the recipient's; one for a message to oneself).
  static std::vector<storage::NewMessage> prepare_archive(const xmpp::Jid& from,
                                                          const xmpp::Jid& to,
                                                          xmpp::XmlElement& message);
  /// Commits `rows` in one transaction. An error reply to `message` when the database failed;
  /// nullopt when committed.
  Awaitable<std::optional<xmpp::XmlElement>> archive(const xmpp::XmlElement& message,
                                                     std::vector<storage::NewMessage> rows);
  /// A XEP-0313 query of `user` (a full JID) on its own archive: a get is answered with the
  /// search form; for a set, each result goes to `deliver`, then the returned <fin/> result.
  Awaitable<xmpp::XmlElement> mam_iq(const xmpp::Jid& user, const xmpp::XmlElement& iq,
                                     const std::function<void(Wire)>& deliver);

  // ---- vCards, private storage, PEP ----
  /// vcard-temp get (of `owner`, anyone) or set (own only).
  Awaitable<xmpp::XmlElement> vcard_iq(const xmpp::Jid& user, const xmpp::Jid& owner,
                                       const xmpp::XmlElement& iq);
  /// jabber:iq:private get or set (own only).
  Awaitable<xmpp::XmlElement> private_iq(const xmpp::Jid& user, const xmpp::XmlElement& iq);
  /// pubsub or pubsub#owner on `owner`'s PEP service, from `user`.
  Awaitable<xmpp::XmlElement> pep_iq(const xmpp::Jid& user, const xmpp::Jid& owner,
                                     const xmpp::XmlElement& iq);

  /// XEP-0163 §6.2: a resource that comes online gets the last item of each PEP node of
  /// `owners` (itself and the contacts whose presence it receives) that sends it on presence.
  Awaitable<void> send_last_items(const xmpp::Jid& user, std::vector<std::string> owners);
  /// The same for the user itself and every contact whose presence it receives (its roster).
  Awaitable<void> send_last_items(const xmpp::Jid& user);

  /// The features a user's account (its bare JID) offers (disco#info), for the server's answer.
  static const std::vector<const char*>& account_features();

 private:
  /// Sends `stanza` (from set) to every resource of `bare`, on any node.
  void to_each_resource(const xmpp::Jid& bare, const xmpp::XmlElement& stanza);
  void push_roster_item(const xmpp::Jid& owner, const RosterItem& item, const std::string& ver,
                        bool removed);
  /// A PEP event from `owner` to its own resources and to `contacts` (bare JIDs).
  void notify(const xmpp::Jid& owner, const xmpp::XmlElement& event,
              const std::vector<std::string>& contacts);
  /// Presence type unavailable from every resource of `from` to `to`.
  void unavailable_from_each(const xmpp::Jid& from, const xmpp::Jid& to);
  /// Asks every available resource of `of` to send its presence to `to`.
  void probe(const xmpp::Jid& to, const xmpp::Jid& of);

  ServerContext& server_;
  StoreWorker& store_;
};

}  // namespace tc::broker::im
