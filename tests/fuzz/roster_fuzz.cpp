// SPDX-License-Identifier: Apache-2.0
// Users' rosters (broker/src/im/roster): what the database hands back and what subscription
// stanzas do to it. The first byte picks a subscription stanza type and the two items' states;
// the rest is a stored <item/> (as tc_user_data keeps it).
//  - A stored item that reads back is written and read again: the same fields.
//  - A subscription stanza applied twice changes nothing the second time (clients resend:
//    RFC 6121 §3 makes a repeated request or answer a no-op), and never leaves an item both
//    asking for and holding a subscription it did not hold before.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "xmpp/stream_parser.h"

#include "im/roster.h"

namespace {

using tc::broker::im::RosterItem;
using tc::broker::im::Subscription;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

bool same(const RosterItem& a, const RosterItem& b) {
  return a.jid == b.jid && a.name == b.name && a.subscription == b.subscription && a.ask == b.ask &&
         a.approved == b.approved && a.groups == b.groups;
}

RosterItem state(std::uint8_t bits, const char* jid) {
  RosterItem item;
  item.jid = jid;
  item.subscription = static_cast<Subscription>(bits & 3);
  item.ask = (bits & 4) != 0 && !item.has_to();
  item.approved = (bits & 8) != 0 && !item.has_from();
  return item;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const std::string_view xml(reinterpret_cast<const char*>(data + 2), size - 2);
  if (auto element = tc::xmpp::parse_element(xml)) {
    if (auto item = RosterItem::from_stored(*element)) {
      auto again = tc::xmpp::parse_element(item->to_xml().to_string());
      check(again.has_value());
      auto back = RosterItem::from_stored(*again);
      check(back.has_value() && same(*item, *back));
    }
  }

  static constexpr const char* kTypes[] = {"subscribe", "subscribed", "unsubscribe",
                                           "unsubscribed"};
  const std::uint8_t a = data[0];
  const std::uint8_t b = data[1];
  tc::broker::im::SubscriptionState before;
  if ((a & 16) != 0) {
    before.user_item = state(a, "bob@example.com");
  }
  if ((b & 16) != 0) {
    before.contact_item = state(b, "alice@example.com");
  }
  before.request_at_contact = (a & 32) != 0;
  before.request_at_user = (b & 32) != 0;
  const char* type = kTypes[(a >> 6) & 3];
  const auto first = tc::broker::im::apply_subscription(type, before, "bob@example.com");
  const auto second = tc::broker::im::apply_subscription(type, first.after, "bob@example.com");
  check(!second.user_item_changed && !second.contact_item_changed);
  for (const auto& [was, now] : {std::pair{before.user_item, first.after.user_item},
                                 std::pair{before.contact_item, first.after.contact_item}}) {
    if (now && now->ask && now->has_to()) {
      check(was && was->has_to());  // a granted subscription is never asked for again
    }
  }
  return 0;
}
