// SPDX-License-Identifier: Apache-2.0
#include "im/roster.h"

#include "xmpp/namespaces.h"

namespace tc::broker::im {

namespace ns = xmpp::ns;

bool RosterItem::has_to() const {
  return subscription == Subscription::To || subscription == Subscription::Both;
}

bool RosterItem::has_from() const {
  return subscription == Subscription::From || subscription == Subscription::Both;
}

void RosterItem::set_to(bool on) {
  const bool from = has_from();
  subscription = on ? (from ? Subscription::Both : Subscription::To)
                    : (from ? Subscription::From : Subscription::None);
}

void RosterItem::set_from(bool on) {
  const bool to = has_to();
  subscription = on ? (to ? Subscription::Both : Subscription::From)
                    : (to ? Subscription::To : Subscription::None);
}

bool RosterItem::empty() const {
  return subscription == Subscription::None && !ask && !approved && name.empty() && groups.empty();
}

std::string_view subscription_name(Subscription s) {
  switch (s) {
    case Subscription::To:
      return "to";
    case Subscription::From:
      return "from";
    case Subscription::Both:
      return "both";
    case Subscription::None:
      break;
  }
  return "none";
}

xmpp::XmlElement RosterItem::to_xml() const {
  xmpp::XmlElement item("item", ns::kRoster);
  item.set_attr("jid", jid);
  if (!name.empty()) {
    item.set_attr("name", name);
  }
  item.set_attr("subscription", std::string(subscription_name(subscription)));
  if (ask) {
    item.set_attr("ask", "subscribe");
  }
  if (approved) {
    item.set_attr("approved", "true");
  }
  for (const auto& g : groups) {
    item.add_child("group", ns::kRoster).add_text(g);
  }
  return item;
}

std::optional<RosterItem> RosterItem::from_stored(const xmpp::XmlElement& element) {
  if (element.name() != "item" || element.attr("jid").empty()) {
    return std::nullopt;
  }
  RosterItem item;
  item.jid = std::string(element.attr("jid"));
  item.name = std::string(element.attr("name"));
  const std::string_view sub = element.attr("subscription");
  item.subscription = sub == "both"   ? Subscription::Both
                      : sub == "to"   ? Subscription::To
                      : sub == "from" ? Subscription::From
                                      : Subscription::None;
  item.ask = element.attr("ask") == "subscribe";
  item.approved = element.attr("approved") == "true";
  for (const auto* g : element.children("group", ns::kRoster)) {
    item.groups.push_back(g->text());
  }
  return item;
}

namespace {

RosterItem& item_for(std::optional<RosterItem>& item, std::string_view jid) {
  if (!item) {
    item.emplace();
    item->jid = std::string(jid);
  }
  return *item;
}

}  // namespace

SubscriptionOutcome apply_subscription(std::string_view type, SubscriptionState before,
                                       std::string_view contact_bare) {
  SubscriptionOutcome out;
  out.after = std::move(before);
  auto& mine = out.after.user_item;       // the user's item for the contact
  auto& theirs = out.after.contact_item;  // the contact's item for the user
  const bool i_have_to = mine && mine->has_to();
  const bool i_have_from = mine && mine->has_from();
  const bool they_have_from = theirs && theirs->has_from();
  const bool they_have_to = theirs && theirs->has_to();

  if (type == "subscribe") {
    // §3.1.2: the user's item shows the pending request, unless it is granted already.
    if (!i_have_to && !(mine && mine->ask)) {
      item_for(mine, contact_bare).ask = true;
      out.user_item_changed = true;
    }
    if (they_have_from || (theirs && theirs->approved)) {
      // §3.1.3 (already subscribed, or pre-approved §3.4): answered on the contact's behalf.
      if (!they_have_from || theirs->approved) {
        theirs->set_from(true);
        theirs->approved = false;
        out.contact_item_changed = true;
      }
      if (mine->ask || !i_have_to) {
        mine->ask = false;
        mine->set_to(true);
        out.user_item_changed = true;
      }
      out.auto_subscribed = true;
      out.presence_to_user = true;
      out.after.request_at_contact = false;
    } else {
      out.after.request_at_contact = true;
      out.deliver_to_contact = true;
    }
  } else if (type == "subscribed") {
    // The user approves the contact's request (§3.1.5), or pre-approves one (§3.4).
    if (i_have_from) {
      out.after.request_at_user = false;
      return out;  // §3.1.5: already subscribed; nothing to do
    }
    const bool requested = before.request_at_user || (theirs && theirs->ask);
    if (!requested) {
      if (!(mine && mine->approved)) {
        item_for(mine, contact_bare).approved = true;
        out.user_item_changed = true;
      }
      return out;
    }
    item_for(mine, contact_bare).set_from(true);
    mine->approved = false;
    out.user_item_changed = true;
    out.after.request_at_user = false;
    if (theirs && (theirs->ask || !they_have_to)) {
      theirs->ask = false;
      theirs->set_to(true);
      out.contact_item_changed = true;
    }
    out.deliver_to_contact = true;
    out.presence_to_contact = true;
  } else if (type == "unsubscribe") {
    // §3.3: the user no longer wants the contact's presence (or withdraws its request).
    if (mine && (mine->ask || i_have_to)) {
      mine->ask = false;
      mine->set_to(false);
      out.user_item_changed = true;
    }
    const bool had_request = before.request_at_contact;
    out.after.request_at_contact = false;
    if (they_have_from) {
      theirs->set_from(false);
      out.contact_item_changed = true;
    }
    if (they_have_from || had_request) {
      out.deliver_to_contact = true;
      out.unavailable_to_user = they_have_from;
    }
  } else if (type == "unsubscribed") {
    // §3.2: the user cancels the contact's subscription, or denies its request.
    if (mine && (i_have_from || mine->approved)) {
      mine->set_from(false);
      mine->approved = false;
      out.user_item_changed = true;
    }
    const bool had_request = before.request_at_user;
    out.after.request_at_user = false;
    if (theirs && (they_have_to || theirs->ask)) {
      theirs->ask = false;
      theirs->set_to(false);
      out.contact_item_changed = true;
      out.deliver_to_contact = true;
      out.unavailable_to_contact = i_have_from;
    } else if (had_request) {
      out.deliver_to_contact = true;
    }
  }
  return out;
}

}  // namespace tc::broker::im
