// SPDX-License-Identifier: Apache-2.0
// RFC 6121 §3 subscription transitions (im/roster.cpp): every stanza type from every state of
// the two items, as Appendix A of the RFC tabulates them for each side.
#include "im/roster.h"

#include <gtest/gtest.h>

#include "xmpp/stream_parser.h"

namespace tc::broker::im {
namespace {

constexpr char kContact[] = "bob@example.com";
constexpr char kUser[] = "alice@example.com";

RosterItem item(const char* jid, Subscription s, bool ask = false, bool approved = false) {
  RosterItem out;
  out.jid = jid;
  out.subscription = s;
  out.ask = ask;
  out.approved = approved;
  return out;
}

TEST(Subscriptions, SubscribeWaitsForTheContactUnlessAlreadyAllowed) {
  // Nobody knows anybody: the user's item shows the request, the contact holds it.
  auto out = apply_subscription("subscribe", {}, kContact);
  ASSERT_TRUE(out.after.user_item);
  EXPECT_TRUE(out.after.user_item->ask);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::None);
  EXPECT_TRUE(out.user_item_changed);
  EXPECT_TRUE(out.after.request_at_contact);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_FALSE(out.auto_subscribed);

  // The contact already lets the user see it ('from' on its side): answered at once.
  SubscriptionState allowed;
  allowed.contact_item = item(kUser, Subscription::From);
  out = apply_subscription("subscribe", allowed, kContact);
  EXPECT_TRUE(out.auto_subscribed);
  EXPECT_TRUE(out.presence_to_user);
  EXPECT_FALSE(out.deliver_to_contact);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::To);
  EXPECT_FALSE(out.after.user_item->ask);
  EXPECT_FALSE(out.contact_item_changed);

  // Pre-approved (§3.4): answered at once, and the approval is used up.
  SubscriptionState preapproved;
  preapproved.contact_item = item(kUser, Subscription::None, false, true);
  out = apply_subscription("subscribe", preapproved, kContact);
  EXPECT_TRUE(out.auto_subscribed);
  EXPECT_EQ(out.after.contact_item->subscription, Subscription::From);
  EXPECT_FALSE(out.after.contact_item->approved);
  EXPECT_TRUE(out.contact_item_changed);
}

TEST(Subscriptions, SubscribedAnswersARequestOrPreApproves) {
  // The contact asked (its request is held by the user): both sides move on.
  SubscriptionState asked;
  asked.request_at_user = true;
  asked.contact_item = item(kUser, Subscription::None, true);
  auto out = apply_subscription("subscribed", asked, kContact);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::From);
  EXPECT_EQ(out.after.contact_item->subscription, Subscription::To);
  EXPECT_FALSE(out.after.contact_item->ask);
  EXPECT_FALSE(out.after.request_at_user);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_TRUE(out.presence_to_contact);

  // From 'to' it becomes 'both'.
  asked.user_item = item(kContact, Subscription::To);
  out = apply_subscription("subscribed", asked, kContact);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::Both);

  // Nobody asked: a pre-approval, nothing sent.
  out = apply_subscription("subscribed", {}, kContact);
  EXPECT_TRUE(out.after.user_item->approved);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::None);
  EXPECT_FALSE(out.deliver_to_contact);

  // Already 'from': nothing changes (§3.1.5).
  SubscriptionState already;
  already.user_item = item(kContact, Subscription::Both);
  out = apply_subscription("subscribed", already, kContact);
  EXPECT_FALSE(out.user_item_changed);
  EXPECT_FALSE(out.deliver_to_contact);
}

TEST(Subscriptions, UnsubscribeAndUnsubscribedUndoEachDirection) {
  SubscriptionState both;
  both.user_item = item(kContact, Subscription::Both);
  both.contact_item = item(kUser, Subscription::Both);

  auto out = apply_subscription("unsubscribe", both, kContact);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::From);
  EXPECT_EQ(out.after.contact_item->subscription, Subscription::To);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_TRUE(out.unavailable_to_user);

  out = apply_subscription("unsubscribed", both, kContact);
  EXPECT_EQ(out.after.user_item->subscription, Subscription::To);
  EXPECT_EQ(out.after.contact_item->subscription, Subscription::From);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_TRUE(out.unavailable_to_contact);

  // Denying a pending request: the asker's 'ask' goes, the held request goes.
  SubscriptionState pending;
  pending.request_at_user = true;
  pending.contact_item = item(kUser, Subscription::None, true);
  out = apply_subscription("unsubscribed", pending, kContact);
  EXPECT_FALSE(out.after.contact_item->ask);
  EXPECT_FALSE(out.after.request_at_user);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_FALSE(out.unavailable_to_contact);

  // Withdrawing one's own request before it is answered.
  SubscriptionState asking;
  asking.user_item = item(kContact, Subscription::None, true);
  asking.request_at_contact = true;
  out = apply_subscription("unsubscribe", asking, kContact);
  EXPECT_FALSE(out.after.user_item->ask);
  EXPECT_FALSE(out.after.request_at_contact);
  EXPECT_TRUE(out.deliver_to_contact);
  EXPECT_FALSE(out.unavailable_to_user);

  // Nothing to undo: nothing sent.
  out = apply_subscription("unsubscribe", {}, kContact);
  EXPECT_FALSE(out.deliver_to_contact);
  EXPECT_FALSE(out.user_item_changed);
}

TEST(RosterItems, RoundTripThroughTheirStoredForm) {
  RosterItem original = item(kContact, Subscription::From, true, true);
  original.name = "Bob <the builder>";
  original.groups = {"Friends", "Work & Play"};
  auto parsed = xmpp::parse_element(original.to_xml().to_string());
  ASSERT_TRUE(parsed);
  auto back = RosterItem::from_stored(*parsed);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->jid, original.jid);
  EXPECT_EQ(back->name, original.name);
  EXPECT_EQ(back->subscription, Subscription::From);
  EXPECT_TRUE(back->ask);
  EXPECT_TRUE(back->approved);
  EXPECT_EQ(back->groups, original.groups);
  EXPECT_FALSE(xmpp::parse_element("<item jid='x'/><item jid='y'/>"));
  EXPECT_FALSE(xmpp::parse_element("<item"));
}

}  // namespace
}  // namespace tc::broker::im
