// SPDX-License-Identifier: Apache-2.0
// UserServices: rosters and subscriptions, presence to contacts, offline messages, and what
// waits for a user at login. vCards, private storage and PEP are in user_pep.cpp.
#include "im/user_services.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "storage/store.h"
#include "xmpp/datetime.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"
#include "xmpp/stream_parser.h"

#include "net/user_routing.h"
#include "server_context.h"
#include "shard/store_worker.h"

namespace tc::broker::im {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using storage::UserDataChange;
using storage::UserDatum;
using xmpp::Condition;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {

/// The next roster version of `owner` (XEP-0237: any string that changes with the roster).
/// Later than the last one and than the clock, so a roster rebuilt after a delete never
/// repeats an old version.
Result<std::string> next_version(storage::Store& s, const std::string& owner) {
  auto ver = s.get_user_datum(owner, kind::kRosterVersion, "");
  std::int64_t last = 0;
  if (ver) {
    last = std::atoll(ver->c_str());
  } else if (ver.error() != storage::Errc::NotFound) {
    return ver.error();
  }
  return std::to_string(std::max(last + 1, now_ms()));
}

UserDataChange put_item(const std::string& owner, const RosterItem& item) {
  return {owner, kind::kRoster, item.jid, item.to_xml().to_string()};
}

bool exists(const Result<std::string>& r) {
  return r.has_value();
}

XmlElement error(const XmlElement& iq, const xmpp::StanzaError& e, std::string_view text = {}) {
  return make_error_reply(iq, e, text);
}

}  // namespace

storage::UnixMillis now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

XmlElement internal_error(const XmlElement& iq) {
  return make_error_reply(iq, {xmpp::ErrorType::Wait, Condition::InternalServerError},
                          "the server's database failed; try again");
}

Result<std::optional<XmlElement>> read_element(storage::Store& s, const std::string& owner,
                                               const char* kind, const std::string& key) {
  auto value = s.get_user_datum(owner, kind, key);
  if (!value) {
    if (value.error() == storage::Errc::NotFound) {
      return std::optional<XmlElement>();
    }
    return value.error();
  }
  auto xml = xmpp::parse_element(*value);
  if (!xml) {
    spdlog::warn("im: {}'s {} {} is unreadable; taken for absent", owner, kind, key);
    return std::optional<XmlElement>();
  }
  return std::optional(std::move(*xml));
}

Result<RosterSnapshot> read_roster(storage::Store& s, const std::string& owner) {
  auto rows = s.list_user_data(owner, kind::kRoster);
  if (!rows) {
    return rows.error();
  }
  RosterSnapshot out;
  for (const auto& row : *rows) {
    auto xml = xmpp::parse_element(row.value);
    auto item = xml ? RosterItem::from_stored(*xml) : std::nullopt;
    if (!item) {
      spdlog::warn("im: {}'s roster item {} is unreadable; skipped", owner, row.key);
      continue;
    }
    out.items.push_back(std::move(*item));
  }
  auto ver = s.get_user_datum(owner, kind::kRosterVersion, "");
  if (ver) {
    out.version = *ver;
  } else if (ver.error() != storage::Errc::NotFound) {
    return ver.error();
  }
  return out;
}

Result<std::optional<RosterItem>> read_roster_item(storage::Store& s, const std::string& owner,
                                                   const std::string& contact) {
  auto xml = read_element(s, owner, kind::kRoster, contact);
  if (!xml) {
    return xml.error();
  }
  return *xml ? RosterItem::from_stored(**xml) : std::nullopt;
}

// ---- delivery helpers ----

void UserServices::notify(const Jid& owner, const XmlElement& event,
                          const std::vector<std::string>& contacts) {
  to_each_resource(owner.bare(), event);
  for (const auto& contact : contacts) {
    if (auto jid = Jid::parse(contact); jid && jid->domain() == server_.config.domain) {
      XmlElement copy = event;
      copy.set_attr("to", contact);
      route_to_user(server_, copy, *jid, UserHop::Origin, false);
    }
  }
}

void UserServices::to_each_resource(const Jid& bare, const XmlElement& stanza) {
  for (const auto& full : resources_of(server_, bare)) {
    XmlElement copy = stanza;
    copy.set_attr("to", full.str());
    route_to_user(server_, copy, full, UserHop::Origin, false);
  }
}

void UserServices::push_roster_item(const Jid& owner, const RosterItem& item,
                                    const std::string& ver, bool removed) {
  // RFC 6121 §2.1.6: a push to every resource, from the user's bare JID.
  XmlElement push("iq", ns::kClient);
  push.set_attr("type", "set");
  push.set_attr("id", "push-" + xmpp::random_token(10));
  push.set_attr("from", owner.bare_str());
  auto& query = push.add_child("query", ns::kRoster);
  query.set_attr("ver", ver);
  XmlElement xml = item.to_xml();
  xml.remove_attr("approved");
  if (removed) {
    xml = XmlElement("item", ns::kRoster);
    xml.set_attr("jid", item.jid).set_attr("subscription", "remove");
  }
  query.add_child(std::move(xml));
  to_each_resource(owner.bare(), push);
}

void UserServices::unavailable_from_each(const Jid& from, const Jid& to) {
  for (const auto& full : resources_of(server_, from.bare())) {
    XmlElement gone("presence", ns::kClient);
    gone.set_attr("type", "unavailable").set_attr("from", full.str()).set_attr("to", to.str());
    route_to_user(server_, gone, to, UserHop::Origin, false);
  }
}

void UserServices::probe(const Jid& to, const Jid& of) {
  // Answered by each session of `of` (route_to_user hands probes to ClientStream::answer_probe).
  XmlElement probe("presence", ns::kClient);
  probe.set_attr("type", "probe").set_attr("from", to.str()).set_attr("to", of.bare_str());
  route_to_user(server_, probe, of.bare(), UserHop::Origin, false);
}

// ---- roster ----

Awaitable<XmlElement> UserServices::roster_iq(const Jid& user, const XmlElement& iq) {
  const XmlElement* query = iq.child("query", ns::kRoster);
  const std::string owner = user.bare_str();
  if (iq.attr("type") == "get") {
    auto job = [owner](storage::Store& s) { return read_roster(s, owner); };
    auto roster = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!roster) {
      co_return internal_error(iq);
    }
    auto reply = make_iq_result(iq);
    if (query->has_attr("ver") && query->attr("ver") == roster->version) {
      co_return reply;  // XEP-0237 §2.3: the client's copy is current; pushes follow
    }
    auto& out = reply.add_child("query", ns::kRoster);
    out.set_attr("ver", roster->version);
    for (const auto& item : roster->items) {
      XmlElement xml = item.to_xml();
      xml.remove_attr("approved");
      out.add_child(std::move(xml));
    }
    co_return reply;
  }

  // A set (RFC 6121 §2.3 and §2.5): exactly one item, a bare JID, distinct non-empty groups.
  const auto items = query->children("item", ns::kRoster);
  if (items.size() != 1) {
    co_return error(iq, Condition::BadRequest, "a roster set has exactly one item");
  }
  const XmlElement& given = *items.front();
  const auto contact = Jid::parse(given.attr("jid"));
  if (!contact || !contact->is_bare()) {
    co_return error(iq, Condition::BadRequest, "the item's jid must be a bare JID");
  }
  RosterItem wanted;
  wanted.jid = contact->bare_str();
  wanted.name = std::string(given.attr("name"));
  std::set<std::string> seen;
  for (const auto* g : given.children("group", ns::kRoster)) {
    std::string name = g->text();
    if (name.empty() || name.size() > 1024) {
      co_return error(iq, Condition::NotAcceptable, "a group name is 1 to 1024 bytes");
    }
    if (!seen.insert(name).second) {
      co_return error(iq, Condition::BadRequest, "a group is listed twice");
    }
    wanted.groups.push_back(std::move(name));
  }
  if (wanted.name.size() > 1024) {
    co_return error(iq, Condition::NotAcceptable, "a contact's name is at most 1024 bytes");
  }
  const bool remove = given.attr("subscription") == "remove";
  const std::size_t max_items = server_.config.im_max_roster_items;
  const std::string domain = server_.config.domain;

  struct Done {
    std::optional<Condition> refused;
    std::string text;
    RosterItem item;
    std::string version;
    // A removal cancels the subscriptions both ways (RFC 6121 §2.5.2).
    SubscriptionOutcome unsubscribe, unsubscribed;
    std::string contact_version;
  };
  auto job = [=](storage::Store& s) -> Result<Done> {
    Done done;
    auto existing = read_roster_item(s, owner, wanted.jid);
    if (!existing) {
      return existing.error();
    }
    std::vector<UserDataChange> changes;
    auto ver = next_version(s, owner);
    if (!ver) {
      return ver.error();
    }
    done.version = *ver;
    if (remove) {
      if (!*existing) {
        done.refused = Condition::ItemNotFound;
        done.text = "no such contact in the roster";
        return done;
      }
      done.item = **existing;
      // Both subscriptions end: what the contact's side holds changes too.
      const bool local_contact = contact->domain() == domain;
      if (local_contact) {
        SubscriptionState state;
        state.user_item = *existing;
        auto theirs = read_roster_item(s, wanted.jid, owner);
        if (!theirs) {
          return theirs.error();
        }
        state.contact_item = *theirs;
        state.request_at_contact = exists(s.get_user_datum(wanted.jid, kind::kRequest, owner));
        state.request_at_user = exists(s.get_user_datum(owner, kind::kRequest, wanted.jid));
        done.unsubscribe = apply_subscription("unsubscribe", state, wanted.jid);
        done.unsubscribed = apply_subscription("unsubscribed", done.unsubscribe.after, wanted.jid);
        const auto& after = done.unsubscribed.after;
        if (after.contact_item &&
            (done.unsubscribe.contact_item_changed || done.unsubscribed.contact_item_changed)) {
          changes.push_back(put_item(wanted.jid, *after.contact_item));
          auto their_ver = next_version(s, wanted.jid);
          if (!their_ver) {
            return their_ver.error();
          }
          done.contact_version = *their_ver;
          changes.push_back({wanted.jid, kind::kRosterVersion, "", *their_ver});
        }
        changes.push_back({wanted.jid, kind::kRequest, owner, std::nullopt});
      }
      changes.push_back({owner, kind::kRequest, wanted.jid, std::nullopt});
      changes.push_back({owner, kind::kRoster, wanted.jid, std::nullopt});
    } else {
      RosterItem item = *existing ? **existing : RosterItem{};
      if (!*existing) {
        auto count = s.count_user_data(owner, kind::kRoster);
        if (!count) {
          return count.error();
        }
        if (*count >= max_items) {
          done.refused = Condition::ResourceConstraint;
          done.text = "the roster is full (" + std::to_string(max_items) +
                      " contacts, im.max_roster_items)";
          return done;
        }
      }
      item.jid = wanted.jid;
      item.name = wanted.name;
      item.groups = wanted.groups;
      done.item = item;
      changes.push_back(put_item(owner, item));
    }
    changes.push_back({owner, kind::kRosterVersion, "", done.version});
    if (auto applied = s.apply_user_data(changes); !applied) {
      return applied.error();
    }
    return done;
  };
  auto done = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!done) {
    co_return internal_error(iq);
  }
  if (done->refused) {
    co_return error(iq, *done->refused, done->text);
  }
  push_roster_item(user, done->item, done->version, remove);
  if (remove) {
    const Jid contact_bare = contact->bare();
    const auto& last = done->unsubscribed;
    if (last.after.contact_item &&
        (done->unsubscribe.contact_item_changed || last.contact_item_changed)) {
      push_roster_item(contact_bare, *last.after.contact_item, done->contact_version, false);
    }
    // The contact is told (RFC 6121 §2.5.2), and each side stops seeing the other.
    for (const char* type : {"unsubscribe", "unsubscribed"}) {
      const auto& outcome = std::string_view(type) == "unsubscribe" ? done->unsubscribe : last;
      if (!outcome.deliver_to_contact) {
        continue;
      }
      XmlElement p("presence", ns::kClient);
      p.set_attr("type", type).set_attr("from", owner).set_attr("to", contact_bare.str());
      route_to_user(server_, p, contact_bare, UserHop::Origin, false);
    }
    if (done->unsubscribe.unavailable_to_user) {
      unavailable_from_each(contact_bare, user.bare());
    }
    if (last.unavailable_to_contact) {
      unavailable_from_each(user.bare(), contact_bare);
    }
  }
  co_return make_iq_result(iq);
}

Awaitable<void> UserServices::subscription(const Jid& user, const XmlElement& presence,
                                           const Jid& contact) {
  const std::string type(presence.attr("type"));
  const std::string owner = user.bare_str();
  const std::string other = contact.bare_str();
  // RFC 6121 §3.1.2: subscription stanzas carry bare JIDs.
  XmlElement stanza = presence;
  stanza.set_attr("from", owner);
  stanza.set_attr("to", other);
  const std::string stanza_xml = stanza.to_string();
  const std::size_t max_items = server_.config.im_max_roster_items;

  struct Done {
    SubscriptionOutcome outcome;
    std::string user_version, contact_version;
    bool no_such_contact = false;
  };
  auto job = [=](storage::Store& s) -> Result<Done> {
    Done done;
    auto account = s.load_account(contact.local());
    if (!account) {
      if (account.error() != storage::Errc::NotFound) {
        return account.error();
      }
      done.no_such_contact = true;
      return done;
    }
    SubscriptionState state;
    auto mine = read_roster_item(s, owner, other);
    auto theirs = read_roster_item(s, other, owner);
    if (!mine || !theirs) {
      return !mine ? mine.error() : theirs.error();
    }
    state.user_item = *mine;
    state.contact_item = *theirs;
    state.request_at_contact = exists(s.get_user_datum(other, kind::kRequest, owner));
    state.request_at_user = exists(s.get_user_datum(owner, kind::kRequest, other));
    done.outcome = apply_subscription(type, state, other);
    const auto& after = done.outcome.after;
    std::vector<UserDataChange> changes;
    if (done.outcome.user_item_changed && after.user_item) {
      if (!*mine) {
        auto count = s.count_user_data(owner, kind::kRoster);
        if (!count) {
          return count.error();
        }
        if (*count >= max_items) {
          done.outcome = {};  // the roster is full: the request goes nowhere
          return done;
        }
      }
      auto ver = next_version(s, owner);
      if (!ver) {
        return ver.error();
      }
      done.user_version = *ver;
      changes.push_back(put_item(owner, *after.user_item));
      changes.push_back({owner, kind::kRosterVersion, "", *ver});
    }
    if (done.outcome.contact_item_changed && after.contact_item) {
      auto ver = next_version(s, other);
      if (!ver) {
        return ver.error();
      }
      done.contact_version = *ver;
      changes.push_back(put_item(other, *after.contact_item));
      changes.push_back({other, kind::kRosterVersion, "", *ver});
    }
    if (after.request_at_contact != state.request_at_contact) {
      changes.push_back({other, kind::kRequest, owner,
                         after.request_at_contact ? std::optional(stanza_xml) : std::nullopt});
    }
    if (after.request_at_user != state.request_at_user) {
      changes.push_back({owner, kind::kRequest, other, std::nullopt});
    }
    if (auto applied = s.apply_user_data(changes); !applied) {
      return applied.error();
    }
    return done;
  };
  auto done = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!done) {
    spdlog::warn("im: {} {} {} not applied: {}", owner, type, other, done.error().message());
    co_return;  // presence is never answered with an error (RFC 6121 §4.6.3)
  }
  if (done->no_such_contact) {
    if (type == "subscribe") {
      // Nobody will ever answer: say so at once (RFC 6121 §3.1.3, "unsubscribed").
      XmlElement no("presence", ns::kClient);
      no.set_attr("type", "unsubscribed").set_attr("from", other).set_attr("to", owner);
      route_to_user(server_, no, user.bare(), UserHop::Origin, false);
    }
    co_return;
  }
  const auto& outcome = done->outcome;
  const Jid user_bare = user.bare();
  const Jid contact_bare = contact.bare();
  if (outcome.user_item_changed && outcome.after.user_item) {
    push_roster_item(user_bare, *outcome.after.user_item, done->user_version, false);
  }
  if (outcome.contact_item_changed && outcome.after.contact_item) {
    push_roster_item(contact_bare, *outcome.after.contact_item, done->contact_version, false);
  }
  if (outcome.deliver_to_contact) {
    route_to_user(server_, stanza, contact_bare, UserHop::Origin, false);
  }
  if (outcome.auto_subscribed) {
    XmlElement yes("presence", ns::kClient);
    yes.set_attr("type", "subscribed").set_attr("from", other).set_attr("to", owner);
    route_to_user(server_, yes, user_bare, UserHop::Origin, false);
  }
  if (outcome.presence_to_user) {
    probe(user_bare, contact_bare);
  }
  if (outcome.presence_to_contact) {
    probe(contact_bare, user_bare);
  }
  if (outcome.unavailable_to_user) {
    unavailable_from_each(contact_bare, user_bare);
  }
  if (outcome.unavailable_to_contact) {
    unavailable_from_each(user_bare, contact_bare);
  }
}

Awaitable<void> UserServices::broadcast_presence(const Jid& user, const XmlElement& presence,
                                                 bool initial) {
  const std::string owner = user.bare_str();
  auto job = [owner](storage::Store& s) { return read_roster(s, owner); };
  auto roster = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!roster) {
    spdlog::warn("im: {}'s roster could not be read; presence not sent to contacts: {}", owner,
                 roster.error().message());
    co_return;
  }
  for (const auto& item : roster->items) {
    const auto contact = Jid::parse(item.jid);
    if (!contact || contact->domain() != server_.config.domain || *contact == user.bare()) {
      continue;  // no federation; the user's own resources have it already
    }
    if (item.has_from()) {
      XmlElement copy = presence;
      copy.set_attr("from", user.str());
      copy.set_attr("to", contact->str());
      route_to_user(server_, copy, *contact, UserHop::Origin, false);
    }
    if (initial && item.has_to()) {
      probe(user, *contact);
    }
  }
}

Awaitable<void> UserServices::send_last_items(const Jid& user) {
  const std::string owner = user.bare_str();
  auto job = [owner](storage::Store& s) { return read_roster(s, owner); };
  auto roster = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!roster) {
    co_return;
  }
  std::vector<std::string> publishers = {owner};
  for (const auto& item : roster->items) {
    if (item.has_to() && item.jid != owner) {
      publishers.push_back(item.jid);
    }
  }
  co_await send_last_items(user, std::move(publishers));
}

Awaitable<void> UserServices::deliver_waiting(const Jid& user,
                                              const std::function<void(Wire)>& deliver) {
  const std::string owner = user.bare_str();
  auto job = [owner](storage::Store& s) -> Result<std::vector<std::vector<UserDatum>>> {
    auto requests = s.list_user_data(owner, kind::kRequest);
    if (!requests) {
      return requests.error();
    }
    auto offline = s.list_user_data(owner, kind::kOffline);
    if (!offline) {
      return offline.error();
    }
    return std::vector{std::move(*requests), std::move(*offline)};
  };
  auto waiting = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!waiting) {
    spdlog::warn("im: what waits for {} could not be read: {}", owner, waiting.error().message());
    co_return;
  }
  for (const auto& request : (*waiting)[0]) {
    deliver(to_wire(request.value));
  }
  std::vector<UserDataChange> delivered;
  for (const auto& message : (*waiting)[1]) {
    deliver(to_wire(message.value));
    delivered.push_back({owner, kind::kOffline, message.key, std::nullopt});
  }
  if (delivered.empty()) {
    co_return;
  }
  auto remove = [delivered = std::move(delivered)](storage::Store& s) {
    return s.apply_user_data(delivered);
  };
  auto removed = co_await store_.async_call(std::move(remove), asio::use_awaitable);
  if (!removed) {
    spdlog::warn("im: {}'s delivered offline messages stay stored (delete failed: {})", owner,
                 removed.error().message());
  }
}

// ---- offline messages ----

bool UserServices::offline_eligible(const XmlElement& message) {
  const std::string_view type = message.attr("type");
  if (type != "" && type != "normal" && type != "chat") {
    return false;  // groupchat, headline and error are never stored (XEP-0160 §3)
  }
  if (message.child("no-store", ns::kHints) != nullptr) {
    return false;  // XEP-0334
  }
  return message.child("body", ns::kClient) != nullptr;
}

Awaitable<std::optional<XmlElement>> UserServices::store_offline(
    const Jid& to, const XmlElement& message, std::vector<storage::NewMessage> archive) {
  const std::size_t limit = server_.config.im_max_offline_messages;
  if (limit == 0) {
    co_return make_error_reply(message, Condition::ServiceUnavailable,
                               "the recipient is not online");
  }
  XmlElement stored = message;
  const std::int64_t at = now_ms();
  // XEP-0203: when it was sent, said by the server.
  stored.add_child("delay", ns::kDelay)
      .set_attr("from", server_.config.domain)
      .set_attr("stamp", xmpp::xep82_timestamp(at));
  // Time order, then a random tail: two messages of one millisecond keep distinct keys.
  char stamp[24];
  std::snprintf(stamp, sizeof stamp, "%016lld", static_cast<long long>(at));
  const std::string key = std::string(stamp) + "-" + xmpp::random_token(8);
  const std::string owner = to.bare_str();
  const std::string local(to.local());
  auto job = [owner, local, key, limit, value = stored.to_string(),
              archive = std::move(archive)](storage::Store& s) -> Result<std::optional<Condition>> {
    auto account = s.load_account(local);
    if (!account) {
      if (account.error() == storage::Errc::NotFound) {
        return std::optional(Condition::ServiceUnavailable);
      }
      return account.error();
    }
    auto count = s.count_user_data(owner, kind::kOffline);
    if (!count) {
      return count.error();
    }
    if (*count >= limit) {
      return std::optional(Condition::ResourceConstraint);
    }
    const std::vector<UserDataChange> changes = {{owner, kind::kOffline, key, value}};
    if (auto applied = s.apply_user_data(changes); !applied) {
      return applied.error();
    }
    if (!archive.empty()) {
      // Two transactions (user data and the archive are two Store calls): when the second
      // fails the first is undone, so the sender's retry stores neither twice.
      if (auto archived = s.append_messages(archive); !archived) {
        const std::vector<UserDataChange> undo = {{owner, kind::kOffline, key, std::nullopt}};
        if (!s.apply_user_data(undo)) {
          spdlog::warn("im: an offline message for {} stays stored though not archived", owner);
        }
        return archived.error();
      }
    }
    return std::optional<Condition>();
  };
  auto done = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!done) {
    co_return make_error_reply(message, {xmpp::ErrorType::Wait, Condition::InternalServerError},
                               "the message could not be stored; send it again");
  }
  if (!*done) {
    co_return std::nullopt;
  }
  if (**done == Condition::ServiceUnavailable) {
    co_return make_error_reply(message, Condition::ServiceUnavailable, "no such user");
  }
  co_return make_error_reply(message, {xmpp::ErrorType::Wait, Condition::ResourceConstraint},
                             "the recipient's offline storage is full (im.max_offline_messages)");
}

}  // namespace tc::broker::im
