// SPDX-License-Identifier: Apache-2.0
// UserServices: vCards (XEP-0054), private XML storage (XEP-0049) and the personal eventing
// service (XEP-0163 over the XEP-0060 subset its clients use: publish with publish-options,
// retract, items, node configuration and deletion; notifications to the owner's resources and
// to the contacts its access model admits).
#include <algorithm>
#include <map>

#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "storage/store.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"
#include "xmpp/stream_parser.h"

#include "im/user_services.h"
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

constexpr char kVcardNs[] = "vcard-temp";
constexpr char kPrivateNs[] = "jabber:iq:private";
constexpr char kPubsub[] = "http://jabber.org/protocol/pubsub";
constexpr char kPubsubOwner[] = "http://jabber.org/protocol/pubsub#owner";
constexpr char kPubsubEvent[] = "http://jabber.org/protocol/pubsub#event";
constexpr char kPubsubErrors[] = "http://jabber.org/protocol/pubsub#errors";
constexpr char kPublishOptions[] = "http://jabber.org/protocol/pubsub#publish-options";
constexpr char kNodeConfig[] = "http://jabber.org/protocol/pubsub#node_config";

/// An error with a pubsub-specific condition beside the general one (XEP-0060 §7-8).
XmlElement pubsub_error(const XmlElement& iq, const xmpp::StanzaError& e, std::string_view specific,
                        std::string_view text = {}) {
  XmlElement reply = make_error_reply(iq, e, text);
  if (XmlElement* err = reply.child("error"); err != nullptr && !specific.empty()) {
    err->add_child(std::string(specific), kPubsubErrors);
  }
  return reply;
}

// ---- node configuration ----

/// What a PEP node is configured with; the fields its clients set (XEP-0060 §16.4.4 names).
struct NodeConfig {
  std::string access_model = "presence";  ///< open, presence, roster, whitelist
  std::size_t max_items = 1;              ///< XEP-0163 §4: a PEP node keeps its last item
  bool persist_items = true;
  std::string send_last_published_item = "on_sub_and_presence";
  bool notify_retract = true;

  XmlElement to_stored() const {
    XmlElement c("configure", kPubsubOwner);
    c.set_attr("access_model", access_model);
    c.set_attr("max_items", std::to_string(max_items));
    c.set_attr("persist_items", persist_items ? "1" : "0");
    c.set_attr("send_last_published_item", send_last_published_item);
    c.set_attr("notify_retract", notify_retract ? "1" : "0");
    return c;
  }
  static NodeConfig from_stored(const XmlElement& c) {
    NodeConfig out;
    out.access_model = std::string(c.attr("access_model"));
    out.max_items = static_cast<std::size_t>(std::max(1LL, std::atoll(c.attr("max_items").data())));
    out.persist_items = c.attr("persist_items") != "0";
    out.send_last_published_item = std::string(c.attr("send_last_published_item"));
    out.notify_retract = c.attr("notify_retract") != "0";
    return out;
  }
};

bool truthy(std::string_view v) {
  return v == "1" || v == "true";
}

/// The field values of a submitted data form (XEP-0004), by var; FORM_TYPE included.
std::map<std::string, std::string> form_values(const XmlElement* x) {
  std::map<std::string, std::string> out;
  if (x == nullptr) {
    return out;
  }
  for (const auto* field : x->children("field", ns::kXData)) {
    out[std::string(field->attr("var"))] = field->child_text("value", ns::kXData);
  }
  return out;
}

/// Applies the form's known fields to `config`; a value out of range is an error text.
std::string apply_form(const std::map<std::string, std::string>& form, std::size_t max_items_cap,
                       NodeConfig& config) {
  for (const auto& [var, value] : form) {
    if (var == "pubsub#access_model") {
      if (value != "open" && value != "presence" && value != "roster" && value != "whitelist") {
        return "pubsub#access_model must be open, presence, roster or whitelist";
      }
      config.access_model = value;
    } else if (var == "pubsub#max_items") {
      if (value == "max") {
        config.max_items = max_items_cap;
        continue;
      }
      const long long n = std::atoll(value.c_str());
      if (n < 1 || value.find_first_not_of("0123456789") != std::string::npos) {
        return "pubsub#max_items must be a positive number or 'max'";
      }
      config.max_items = std::min(static_cast<std::size_t>(n), max_items_cap);
    } else if (var == "pubsub#persist_items") {
      config.persist_items = truthy(value);
    } else if (var == "pubsub#send_last_published_item") {
      config.send_last_published_item = value;
    } else if (var == "pubsub#notify_retract") {
      config.notify_retract = truthy(value);
    }
    // Other fields (title, deliver_payloads, ...) are accepted and not kept.
  }
  return {};
}

/// XEP-0060 §7.1.5: a publish-options field whose value differs from the node's.
std::string unmet_precondition(const std::map<std::string, std::string>& form,
                               const NodeConfig& config, std::size_t max_items_cap) {
  NodeConfig wanted = config;
  if (auto bad = apply_form(form, max_items_cap, wanted); !bad.empty()) {
    return bad;
  }
  if (wanted.access_model != config.access_model) {
    return "the node's pubsub#access_model is " + config.access_model;
  }
  if (wanted.max_items != config.max_items) {
    return "the node's pubsub#max_items is " + std::to_string(config.max_items);
  }
  if (wanted.persist_items != config.persist_items) {
    return "the node's pubsub#persist_items differs";
  }
  return {};
}

XmlElement config_form(const std::string& node, const NodeConfig& config) {
  XmlElement x("x", ns::kXData);
  x.set_attr("type", "form");
  auto field = [&x](const char* var, const char* type, const std::string& value) {
    auto& f = x.add_child("field", ns::kXData);
    f.set_attr("var", var);
    if (type[0] != '\0') {
      f.set_attr("type", type);
    }
    f.add_child("value", ns::kXData).add_text(value);
    return &f;
  };
  field("FORM_TYPE", "hidden", kNodeConfig);
  auto* access = field("pubsub#access_model", "list-single", config.access_model);
  for (const char* option : {"open", "presence", "roster", "whitelist"}) {
    access->add_child("option", ns::kXData).add_child("value", ns::kXData).add_text(option);
  }
  field("pubsub#max_items", "text-single", std::to_string(config.max_items));
  field("pubsub#persist_items", "boolean", config.persist_items ? "1" : "0");
  field("pubsub#send_last_published_item", "list-single", config.send_last_published_item);
  field("pubsub#notify_retract", "boolean", config.notify_retract ? "1" : "0");
  (void)node;
  return x;
}

std::string item_key(const std::string& node, const std::string& id) {
  return node + "\n" + id;
}

/// The node's items, oldest first.
std::vector<UserDatum> by_age(std::vector<UserDatum> items) {
  std::stable_sort(items.begin(), items.end(), [](const UserDatum& a, const UserDatum& b) {
    return a.updated_at < b.updated_at;
  });
  return items;
}

Result<std::optional<NodeConfig>> read_node(storage::Store& s, const std::string& owner,
                                            const std::string& node) {
  auto xml = read_element(s, owner, kind::kPepNode, node);
  if (!xml) {
    return xml.error();
  }
  return *xml ? std::optional(NodeConfig::from_stored(**xml)) : std::nullopt;
}

/// The contacts of `owner` its node's events go to besides its own resources: those with a
/// subscription to its presence, unless only the owner may see the node.
Result<std::vector<std::string>> event_contacts(storage::Store& s, const std::string& owner,
                                                const NodeConfig& config) {
  std::vector<std::string> out;
  if (config.access_model == "whitelist") {
    return out;
  }
  auto roster = read_roster(s, owner);
  if (!roster) {
    return roster.error();
  }
  for (const auto& item : roster->items) {
    if (item.has_from() && item.jid != owner) {
      out.push_back(item.jid);
    }
  }
  return out;
}

/// Whether `requester` may read `owner`'s node (XEP-0060 §4.5 access models).
Result<bool> may_read(storage::Store& s, const std::string& owner, const std::string& requester,
                      const NodeConfig& config) {
  if (requester == owner || config.access_model == "open") {
    return true;
  }
  if (config.access_model == "whitelist") {
    return false;
  }
  auto item = read_roster_item(s, owner, requester);
  if (!item) {
    return Result<bool>(boost::system::in_place_error, item.error());
  }
  return *item && (config.access_model == "roster" || (*item)->has_from());
}

}  // namespace

const std::vector<const char*>& UserServices::account_features() {
  static const std::vector<const char*> features = {
      "http://jabber.org/protocol/pubsub#access-open",
      "http://jabber.org/protocol/pubsub#access-presence",
      "http://jabber.org/protocol/pubsub#access-roster",
      "http://jabber.org/protocol/pubsub#access-whitelist",
      "http://jabber.org/protocol/pubsub#auto-create",
      "http://jabber.org/protocol/pubsub#config-node",
      "http://jabber.org/protocol/pubsub#delete-nodes",
      "http://jabber.org/protocol/pubsub#item-ids",
      "http://jabber.org/protocol/pubsub#multi-items",
      "http://jabber.org/protocol/pubsub#persistent-items",
      "http://jabber.org/protocol/pubsub#publish",
      "http://jabber.org/protocol/pubsub#publish-options",
      "http://jabber.org/protocol/pubsub#retract-items",
      "http://jabber.org/protocol/pubsub#retrieve-items",
      // The account's message archive (user_mam.cpp) and the ids it stamps.
      "urn:xmpp:mam:2",
      "urn:xmpp:mam:2#extended",
      "urn:xmpp:sid:0",
  };
  return features;
}

Awaitable<void> UserServices::send_last_items(const Jid& user, std::vector<std::string> owners) {
  const std::string requester = user.bare_str();
  struct Last {
    std::string owner, node, item;
  };
  auto job = [owners = std::move(owners),
              requester](storage::Store& s) -> Result<std::vector<Last>> {
    std::vector<Last> out;
    for (const auto& owner : owners) {
      auto nodes = s.list_user_data(owner, kind::kPepNode);
      if (!nodes) {
        return nodes.error();
      }
      for (const auto& row : *nodes) {
        auto xml = xmpp::parse_element(row.value);
        const NodeConfig config = xml ? NodeConfig::from_stored(*xml) : NodeConfig{};
        if (config.send_last_published_item == "never" ||
            (owner != requester && config.access_model == "whitelist")) {
          continue;
        }
        auto items = s.list_user_data(owner, kind::kPepItem, row.key + "\n");
        if (!items) {
          return items.error();
        }
        if (!items->empty()) {
          out.push_back({owner, row.key, by_age(std::move(*items)).back().value});
        }
      }
    }
    return out;
  };
  auto last = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!last) {
    spdlog::warn("im: the last PEP items for {} could not be read: {}", user.str(),
                 last.error().message());
    co_return;
  }
  for (const auto& l : *last) {
    auto item = xmpp::parse_element(l.item);
    if (!item) {
      continue;
    }
    item->set_xmlns(kPubsubEvent);
    XmlElement event("message", ns::kClient);
    event.set_attr("type", "headline").set_attr("from", l.owner).set_attr("to", user.str());
    auto& items = event.add_child("event", kPubsubEvent).add_child("items", kPubsubEvent);
    items.set_attr("node", l.node);
    items.add_child(std::move(*item));
    route_to_user(server_, event, user, UserHop::Origin, false);
  }
}

// ---- vCards ----

Awaitable<XmlElement> UserServices::vcard_iq(const Jid& user, const Jid& owner,
                                             const XmlElement& iq) {
  const std::string key = owner.bare_str();
  if (iq.attr("type") == "get") {
    auto job = [key](storage::Store& s) { return s.get_user_datum(key, kind::kVcard, ""); };
    auto stored = co_await store_.async_call(std::move(job), asio::use_awaitable);
    auto reply = make_iq_result(iq);
    if (!stored) {
      if (stored.error() != storage::Errc::NotFound) {
        co_return internal_error(iq);
      }
      reply.add_child("vCard", kVcardNs);  // XEP-0054 §3.1: none yet is an empty one
      co_return reply;
    }
    auto xml = xmpp::parse_element(*stored);
    reply.add_child(xml ? std::move(*xml) : XmlElement("vCard", kVcardNs));
    co_return reply;
  }
  if (owner.bare() != user.bare()) {
    co_return make_error_reply(iq, Condition::Forbidden, "only the user sets its own vCard");
  }
  const XmlElement* vcard = iq.child("vCard", kVcardNs);
  std::string value = vcard->to_string();
  if (value.size() > server_.config.im_max_vcard_bytes) {
    co_return make_error_reply(iq, Condition::NotAcceptable,
                               "the vCard is larger than " +
                                   std::to_string(server_.config.im_max_vcard_bytes) +
                                   " bytes (im.max_vcard_bytes)");
  }
  auto job = [key, value = std::move(value)](storage::Store& s) {
    const std::vector<UserDataChange> changes = {{key, kind::kVcard, "", value}};
    return s.apply_user_data(changes);
  };
  auto stored = co_await store_.async_call(std::move(job), asio::use_awaitable);
  co_return stored ? make_iq_result(iq) : internal_error(iq);
}

// ---- private XML storage ----

Awaitable<XmlElement> UserServices::private_iq(const Jid& user, const XmlElement& iq) {
  const XmlElement* query = iq.child("query", kPrivateNs);
  std::vector<const XmlElement*> parts;
  for (const auto& child : query->nodes()) {
    if (!child.is_text()) {
      parts.push_back(&child);
    }
  }
  if (parts.empty() || (iq.attr("type") == "get" && parts.size() != 1)) {
    co_return make_error_reply(iq, Condition::NotAcceptable,
                               "name one element (and its namespace) to get or set");
  }
  for (const auto* part : parts) {
    const std::string& x = part->xmlns();
    if (x.empty() || x == ns::kClient || x == ns::kServer || x == kPrivateNs) {
      co_return make_error_reply(iq, Condition::NotAcceptable,
                                 "private storage needs an element in a namespace of its own");
    }
  }
  const std::string owner = user.bare_str();
  auto key_of = [](const XmlElement& e) { return "{" + e.xmlns() + "}" + e.name(); };
  if (iq.attr("type") == "get") {
    auto job = [owner, key = key_of(*parts.front())](storage::Store& s) {
      return s.get_user_datum(owner, kind::kPrivate, key);
    };
    auto stored = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!stored && stored.error() != storage::Errc::NotFound) {
      co_return internal_error(iq);
    }
    auto reply = make_iq_result(iq);
    auto& out = reply.add_child("query", kPrivateNs);
    auto xml = stored ? xmpp::parse_element(*stored) : Result<XmlElement>(stored.error());
    out.add_child(xml ? std::move(*xml)
                      : XmlElement(parts.front()->name(), parts.front()->xmlns()));
    co_return reply;
  }
  std::vector<UserDataChange> changes;
  for (const auto* part : parts) {
    std::string value = part->to_string();
    if (value.size() > server_.config.im_max_pep_item_bytes) {
      co_return make_error_reply(iq, Condition::NotAcceptable,
                                 "a private storage element is larger than " +
                                     std::to_string(server_.config.im_max_pep_item_bytes) +
                                     " bytes (im.max_pep_item_bytes)");
    }
    changes.push_back({owner, kind::kPrivate, key_of(*part), std::move(value)});
  }
  auto job = [changes = std::move(changes)](storage::Store& s) {
    return s.apply_user_data(changes);
  };
  auto stored = co_await store_.async_call(std::move(job), asio::use_awaitable);
  co_return stored ? make_iq_result(iq) : internal_error(iq);
}

// ---- PEP ----

Awaitable<XmlElement> UserServices::pep_iq(const Jid& user, const Jid& owner_jid,
                                           const XmlElement& iq) {
  const std::string owner = owner_jid.bare_str();
  const std::string requester = user.bare_str();
  const bool is_owner = owner == requester;
  const bool get = iq.attr("type") == "get";
  const XmlElement* pubsub = iq.child("pubsub", kPubsub);
  const XmlElement* admin = iq.child("pubsub", kPubsubOwner);
  const XmlElement* op = pubsub != nullptr ? pubsub->first_element() : admin->first_element();
  if (op == nullptr) {
    co_return make_error_reply(iq, Condition::BadRequest, "an empty pubsub request");
  }
  const std::string node(op->attr("node"));
  const std::size_t max_items_cap = server_.config.im_max_pep_items;
  const std::size_t max_nodes = server_.config.im_max_pep_nodes;
  const std::string& what = op->name();

  if (pubsub != nullptr && get && what == "items") {
    if (node.empty()) {
      co_return pubsub_error(iq, Condition::BadRequest, "nodeid-required");
    }
    std::vector<std::string> ids;
    for (const auto* item : op->children("item", kPubsub)) {
      ids.emplace_back(item->attr("id"));
    }
    const long long max_items =
        op->has_attr("max_items") ? std::atoll(op->attr("max_items").data()) : 0;
    struct Found {
      std::optional<Condition> refused;
      std::vector<UserDatum> items;
    };
    auto job = [=](storage::Store& s) -> Result<Found> {
      Found found;
      auto config = read_node(s, owner, node);
      if (!config) {
        return config.error();
      }
      if (!*config) {
        found.refused = Condition::ItemNotFound;
        return found;
      }
      auto allowed = may_read(s, owner, requester, **config);
      if (!allowed) {
        return allowed.error();
      }
      if (!*allowed) {
        found.refused = Condition::NotAuthorized;
        return found;
      }
      auto rows = s.list_user_data(owner, kind::kPepItem, node + "\n");
      if (!rows) {
        return rows.error();
      }
      found.items = by_age(std::move(*rows));
      return found;
    };
    auto found = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!found) {
      co_return internal_error(iq);
    }
    if (found->refused == Condition::ItemNotFound) {
      co_return make_error_reply(iq, Condition::ItemNotFound, "no such node");
    }
    if (found->refused) {
      co_return pubsub_error(iq, Condition::NotAuthorized, "presence-subscription-required");
    }
    auto reply = make_iq_result(iq);
    auto& items = reply.add_child("pubsub", kPubsub).add_child("items", kPubsub);
    items.set_attr("node", node);
    std::vector<UserDatum>& rows = found->items;
    if (max_items > 0 && rows.size() > static_cast<std::size_t>(max_items)) {
      rows.erase(rows.begin(), rows.end() - max_items);  // the newest ones
    }
    for (const auto& row : rows) {
      const std::string id = row.key.substr(node.size() + 1);
      if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) {
        continue;
      }
      auto xml = xmpp::parse_element(row.value);
      if (xml) {
        items.add_child(std::move(*xml));
      }
    }
    co_return reply;
  }

  if (!is_owner) {
    co_return make_error_reply(iq, Condition::Forbidden, "only the owner changes its PEP nodes");
  }

  if (pubsub != nullptr && !get && what == "publish") {
    if (node.empty()) {
      co_return pubsub_error(iq, Condition::BadRequest, "nodeid-required");
    }
    const auto items = op->children("item", kPubsub);
    if (items.size() != 1 || items.front()->first_element() == nullptr) {
      co_return pubsub_error(iq, Condition::BadRequest, "item-required",
                             "publish one item with a payload");
    }
    XmlElement item = *items.front();
    std::string id(item.attr("id"));
    if (id.empty()) {
      id = xmpp::random_token(16);
      item.set_attr("id", id);
    }
    std::string value = item.to_string();
    if (value.size() > server_.config.im_max_pep_item_bytes) {
      co_return pubsub_error(iq, Condition::NotAcceptable, "payload-too-big",
                             "the item is larger than " +
                                 std::to_string(server_.config.im_max_pep_item_bytes) +
                                 " bytes (im.max_pep_item_bytes)");
    }
    std::map<std::string, std::string> options;
    if (const auto* po = pubsub->child("publish-options", kPubsub); po != nullptr) {
      options = form_values(po->child("x", ns::kXData));
      if (!options.empty() && options["FORM_TYPE"] != kPublishOptions) {
        co_return make_error_reply(
            iq, Condition::BadRequest,
            "publish-options need FORM_TYPE " + std::string(kPublishOptions));
      }
    }
    struct Published {
      std::optional<Condition> refused;
      std::string why;
      std::vector<std::string> contacts;
    };
    auto job = [=](storage::Store& s) -> Result<Published> {
      Published out;
      auto config = read_node(s, owner, node);
      if (!config) {
        return config.error();
      }
      std::vector<UserDataChange> changes;
      NodeConfig cfg;
      if (*config) {
        cfg = **config;
        out.why = unmet_precondition(options, cfg, max_items_cap);
        if (!out.why.empty()) {
          out.refused = Condition::Conflict;
          return out;
        }
      } else {
        auto nodes = s.count_user_data(owner, kind::kPepNode);
        if (!nodes) {
          return nodes.error();
        }
        if (*nodes >= max_nodes) {
          out.refused = Condition::ResourceConstraint;
          out.why = "at most " + std::to_string(max_nodes) + " nodes (im.max_pep_nodes)";
          return out;
        }
        out.why = apply_form(options, max_items_cap, cfg);
        if (!out.why.empty()) {
          out.refused = Condition::BadRequest;
          return out;
        }
        changes.push_back({owner, kind::kPepNode, node, cfg.to_stored().to_string()});
      }
      changes.push_back({owner, kind::kPepItem, item_key(node, id), value});
      // The node keeps its newest max_items; this one counts as the newest.
      auto rows = s.list_user_data(owner, kind::kPepItem, node + "\n");
      if (!rows) {
        return rows.error();
      }
      auto older = by_age(std::move(*rows));
      std::erase_if(older, [&](const UserDatum& d) { return d.key == item_key(node, id); });
      while (older.size() + 1 > cfg.max_items) {
        changes.push_back({owner, kind::kPepItem, older.front().key, std::nullopt});
        older.erase(older.begin());
      }
      auto contacts = event_contacts(s, owner, cfg);
      if (!contacts) {
        return contacts.error();
      }
      out.contacts = std::move(*contacts);
      if (auto applied = s.apply_user_data(changes); !applied) {
        return applied.error();
      }
      return out;
    };
    auto published = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!published) {
      co_return internal_error(iq);
    }
    if (published->refused == Condition::Conflict) {
      co_return pubsub_error(iq, Condition::Conflict, "precondition-not-met", published->why);
    }
    if (published->refused) {
      co_return make_error_reply(iq, *published->refused, published->why);
    }
    // XEP-0163 §4.3: the event goes to the owner's resources and its subscribed contacts.
    XmlElement event("message", ns::kClient);
    event.set_attr("type", "headline")
        .set_attr("from", owner)
        .set_attr("id", xmpp::random_token(12));
    auto& items_out = event.add_child("event", kPubsubEvent).add_child("items", kPubsubEvent);
    items_out.set_attr("node", node);
    XmlElement notified = item;
    notified.set_xmlns(kPubsubEvent);
    items_out.add_child(std::move(notified));
    notify(owner_jid, event, published->contacts);
    auto reply = make_iq_result(iq);
    auto& pub = reply.add_child("pubsub", kPubsub).add_child("publish", kPubsub);
    pub.set_attr("node", node);
    pub.add_child("item", kPubsub).set_attr("id", id);
    co_return reply;
  }

  if (pubsub != nullptr && !get && what == "retract") {
    const auto items = op->children("item", kPubsub);
    if (node.empty() || items.empty()) {
      co_return pubsub_error(iq, Condition::BadRequest,
                             node.empty() ? "nodeid-required" : "item-required");
    }
    std::vector<std::string> ids;
    for (const auto* item : items) {
      ids.emplace_back(item->attr("id"));
    }
    const bool notify_subscribers = truthy(op->attr("notify"));
    struct Retracted {
      bool found = false;
      std::vector<std::string> contacts;
    };
    auto job = [=](storage::Store& s) -> Result<Retracted> {
      Retracted out;
      auto config = read_node(s, owner, node);
      if (!config) {
        return config.error();
      }
      if (!*config) {
        return out;
      }
      std::vector<UserDataChange> changes;
      for (const auto& id : ids) {
        auto there = s.get_user_datum(owner, kind::kPepItem, item_key(node, id));
        if (there) {
          out.found = true;
          changes.push_back({owner, kind::kPepItem, item_key(node, id), std::nullopt});
        }
      }
      if (!out.found) {
        return out;
      }
      auto contacts = event_contacts(s, owner, **config);
      if (!contacts) {
        return contacts.error();
      }
      out.contacts = std::move(*contacts);
      if (auto applied = s.apply_user_data(changes); !applied) {
        return applied.error();
      }
      return out;
    };
    auto retracted = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!retracted) {
      co_return internal_error(iq);
    }
    if (!retracted->found) {
      co_return make_error_reply(iq, Condition::ItemNotFound, "no such item");
    }
    if (notify_subscribers) {
      XmlElement event("message", ns::kClient);
      event.set_attr("type", "headline").set_attr("from", owner);
      auto& items_out = event.add_child("event", kPubsubEvent).add_child("items", kPubsubEvent);
      items_out.set_attr("node", node);
      for (const auto& id : ids) {
        items_out.add_child("retract", kPubsubEvent).set_attr("id", id);
      }
      notify(owner_jid, event, retracted->contacts);
    }
    co_return make_iq_result(iq);
  }

  if (admin != nullptr && (what == "configure" || what == "delete")) {
    if (node.empty()) {
      co_return pubsub_error(iq, Condition::BadRequest, "nodeid-required");
    }
    const bool del = what == "delete";
    if (get && del) {
      co_return make_error_reply(iq, Condition::BadRequest, "delete is a set");
    }
    const auto form = form_values(op->child("x", ns::kXData));
    struct Configured {
      std::optional<Condition> refused;
      std::string why;
      NodeConfig config;
      std::vector<std::string> contacts;
    };
    auto job = [=](storage::Store& s) -> Result<Configured> {
      Configured out;
      auto config = read_node(s, owner, node);
      if (!config) {
        return config.error();
      }
      if (!*config) {
        out.refused = Condition::ItemNotFound;
        return out;
      }
      out.config = **config;
      if (get) {
        return out;
      }
      std::vector<UserDataChange> changes;
      if (del) {
        auto rows = s.list_user_data(owner, kind::kPepItem, node + "\n");
        if (!rows) {
          return rows.error();
        }
        for (const auto& row : *rows) {
          changes.push_back({owner, kind::kPepItem, row.key, std::nullopt});
        }
        changes.push_back({owner, kind::kPepNode, node, std::nullopt});
        auto contacts = event_contacts(s, owner, out.config);
        if (!contacts) {
          return contacts.error();
        }
        out.contacts = std::move(*contacts);
      } else {
        out.why = apply_form(form, max_items_cap, out.config);
        if (!out.why.empty()) {
          out.refused = Condition::NotAcceptable;
          return out;
        }
        changes.push_back({owner, kind::kPepNode, node, out.config.to_stored().to_string()});
      }
      if (auto applied = s.apply_user_data(changes); !applied) {
        return applied.error();
      }
      return out;
    };
    auto done = co_await store_.async_call(std::move(job), asio::use_awaitable);
    if (!done) {
      co_return internal_error(iq);
    }
    if (done->refused) {
      co_return make_error_reply(iq, *done->refused,
                                 done->why.empty() ? "no such node" : done->why);
    }
    auto reply = make_iq_result(iq);
    if (get) {
      auto& configure =
          reply.add_child("pubsub", kPubsubOwner).add_child("configure", kPubsubOwner);
      configure.set_attr("node", node);
      configure.add_child(config_form(node, done->config));
    } else if (del) {
      XmlElement event("message", ns::kClient);
      event.set_attr("type", "headline").set_attr("from", owner);
      event.add_child("event", kPubsubEvent)
          .add_child("delete", kPubsubEvent)
          .set_attr("node", node);
      notify(owner_jid, event, done->contacts);
    }
    co_return reply;
  }
  co_return pubsub_error(iq, Condition::FeatureNotImplemented, "unsupported",
                         "this PEP service does not do " + what);
}

}  // namespace tc::broker::im
