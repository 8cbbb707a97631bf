// SPDX-License-Identifier: Apache-2.0
// Rosters and presence subscriptions (RFC 6121 §2 and §3): the item a user keeps for each
// contact, and what each subscription stanza does to the two items involved. Pure: the store
// and the routing are UserServices' (user_services.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/xml_element.h"

namespace tc::broker::im {

/// RFC 6121 §2.1.2.5. "to": the user receives the contact's presence; "from": the contact
/// receives the user's.
enum class Subscription { None, To, From, Both };

struct RosterItem {
  std::string jid;  ///< the contact's bare JID (the item's key)
  std::string name;
  Subscription subscription = Subscription::None;
  bool ask = false;       ///< the user asked for the contact's presence; no answer yet
  bool approved = false;  ///< the user pre-approved the contact's request (§3.4)
  std::vector<std::string> groups;

  bool has_to() const;
  bool has_from() const;
  void set_to(bool on);
  void set_from(bool on);
  /// Neither way, nothing pending, nothing named: an item a subscription change may drop.
  bool empty() const;

  /// <item xmlns='jabber:iq:roster'>, as a client sees it (`approved` only when set) and as
  /// it is stored.
  xmpp::XmlElement to_xml() const;
  /// Reads an <item/> as stored (every attribute trusted).
  static std::optional<RosterItem> from_stored(const xmpp::XmlElement& item);
};

std::string_view subscription_name(Subscription s);

/// What one subscription stanza (RFC 6121 §3) from `user` to `contact` does. The inputs are
/// the user's item for the contact, the contact's item for the user, and whether each holds
/// the other's unanswered request (stored until answered, §3.1.3).
struct SubscriptionState {
  std::optional<RosterItem> user_item;
  std::optional<RosterItem> contact_item;
  bool request_at_contact = false;  ///< the contact has the user's unanswered subscribe
  bool request_at_user = false;     ///< the user has the contact's unanswered subscribe
};

struct SubscriptionOutcome {
  SubscriptionState after;
  bool user_item_changed = false;     ///< push it to the user's resources
  bool contact_item_changed = false;  ///< push it to the contact's resources
  bool deliver_to_contact = false;    ///< the contact's resources get the stanza
  /// The contact had already allowed the user: the server answers 'subscribed' for it (§3.1.3),
  /// which the user's resources get, followed by the contact's presence.
  bool auto_subscribed = false;
  bool presence_to_contact = false;     ///< the user's available resources send theirs (§3.1.5)
  bool presence_to_user = false;        ///< the contact's available resources send theirs
  bool unavailable_to_user = false;     ///< the contact's resources' unavailable to the user
  bool unavailable_to_contact = false;  ///< the user's resources' unavailable to the contact
};

/// `type` is subscribe, subscribed, unsubscribe or unsubscribed, sent by the user.
SubscriptionOutcome apply_subscription(std::string_view type, SubscriptionState before,
                                       std::string_view contact_bare);

}  // namespace tc::broker::im
