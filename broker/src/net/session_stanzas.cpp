// SPDX-License-Identifier: Apache-2.0
// Session: stanzas after binding (routing to rooms, users and the server itself), presence
// (RFC 6121 §4) and the server's own IQs (disco, version, ping, password change).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/errc.h"
#include "xmpp/namespaces.h"

#include "accounts.h"
#include "im/user_services.h"
#include "muc/muc_service.h"
#include "net/carbons.h"
#include "net/session.h"
#include "net/user_routing.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::XmlElement;

namespace {

constexpr std::string_view kVersion = "0.1.0";

/// disco#info of a user's account (its bare JID): a registered account and a PEP service
/// (XEP-0030 §3.1, XEP-0163 §6.1).
XmlElement account_info(const XmlElement& iq) {
  auto reply = make_iq_result(iq);
  auto& query = reply.add_child("query", ns::kDiscoInfo);
  query.add_child("identity", ns::kDiscoInfo)
      .set_attr("category", "account")
      .set_attr("type", "registered");
  query.add_child("identity", ns::kDiscoInfo)
      .set_attr("category", "pubsub")
      .set_attr("type", "pep");
  for (const char* feature : {ns::kDiscoInfo, ns::kDiscoItems}) {
    query.add_child("feature", ns::kDiscoInfo).set_attr("var", feature);
  }
  for (const char* feature : im::UserServices::account_features()) {
    query.add_child("feature", ns::kDiscoInfo).set_attr("var", feature);
  }
  return reply;
}

}  // namespace

// ---- stanzas ----

net::Awaitable<void> Session::on_stanza(XmlElement& stanza) {
  // RFC 6120 §8.1.2.1: the server stamps the full JID; a client may only claim its own.
  if (stanza.has_attr("from")) {
    const auto claimed = xmpp::Jid::parse(stanza.attr("from"));
    if (!claimed || (*claimed != jid_ && *claimed != jid_.bare())) {
      stream_error("invalid-from", "the from address is not this stream's");
      co_return;
    }
  }
  stanza.set_attr("from", jid_.str());
  const std::string_view type = stanza.attr("type");

  std::optional<xmpp::Jid> to;
  if (stanza.has_attr("to")) {
    auto parsed = xmpp::Jid::parse(stanza.attr("to"));
    if (!parsed) {
      if (type != "error" && type != "result") {
        send(make_error_reply(stanza, Condition::JidMalformed));
      }
      co_return;
    }
    to = *parsed;
    stanza.set_attr("to", to->str());  // normalised
  }

  const bool for_server =
      !to || (to->local().empty() && to->domain() == server_.config.domain && to->is_bare());
  const bool for_own_account = to && *to == jid_.bare();

  if (stanza.name() == "iq") {
    if (type != "get" && type != "set" && type != "result" && type != "error") {
      send(make_error_reply(stanza, Condition::BadRequest, "iq needs a type"));
      co_return;
    }
    if (stanza.attr("id").empty()) {
      send(make_error_reply(stanza, Condition::BadRequest, "iq needs an id"));
      co_return;
    }
    if (for_server || for_own_account) {
      if (type == "set" && stanza.child("query", ns::kRegister) != nullptr) {
        co_await on_password_change(stanza);
      } else {
        co_await on_iq_for_server(stanza);
      }
      co_return;
    }
    if (to->is_bare() && to->domain() == server_.config.domain &&
        (type == "get" || type == "set")) {
      co_await on_iq_for_account(stanza, *to);
      co_return;
    }
  }
  if (stanza.name() == "presence" && !to) {
    co_await on_presence(stanza, to);
    co_return;
  }
  if (stanza.name() == "message" && !to) {
    // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
    co_await on_user_message(stanza, jid_.bare());
    co_return;
  }
  if (to->domain() == server_.muc->domain()) {
    if (stanza.name() == "presence") {
      if (type.empty() && !to->resource().empty() && joins_too_many_rooms(*to)) {
        const auto limit = server_.config.muc_max_rooms_per_user;
        auto error = make_error_reply(
            stanza, {ErrorType::Wait, Condition::ResourceConstraint},
            "this connection is already in " + std::to_string(limit) +
                " rooms, the most one connection may join (muc.max_rooms_per_user)");
        error.add_child("x", ns::kMuc);
        send(error);
        co_return;
      }
      track_directed_presence(stanza, *to);
    }
    // Completes once the room has handled it: for a groupchat message, after the commit, so
    // the XEP-0198 count (and the client's ack) never runs ahead of the database.
    co_await server_.muc->async_dispatch(std::move(stanza), jid_, asio::use_awaitable);
    co_return;
  }
  if (to->domain() != server_.config.domain) {
    if (type != "error" && type != "result") {
      send(make_error_reply(stanza, Condition::RemoteServerNotFound,
                            "this server does not federate"));
    }
    co_return;
  }
  if (to->local().empty()) {
    // A message or presence to the server itself (or to a resource of it).
    if (stanza.name() == "iq" && (type == "get" || type == "set")) {
      send(make_error_reply(stanza, Condition::ServiceUnavailable));
    }
    co_return;
  }
  if (stanza.name() == "presence") {
    co_await on_presence(stanza, to);
    co_return;
  }
  if (stanza.name() == "message") {
    co_await on_user_message(stanza, *to);
    if (carbon_eligible(stanza)) {
      // XEP-0280 §7: the user's other resources see what this one sent, with the id it has
      // in the sender's archive (the same id as in the recipient's, which the stanza names).
      XmlElement copy = stanza;
      for (auto& child : copy.nodes()) {
        if (!child.is_text() && child.name() == "stanza-id" && child.xmlns() == ns::kStanzaId &&
            child.attr("by") == to->bare_str()) {
          child.set_attr("by", jid_.bare_str());
        }
      }
      send_carbons(server_, copy, jid_, /*sent=*/true);
    }
    co_return;
  }
  route_to_user(stanza, *to);
}

net::Awaitable<void> Session::on_user_message(XmlElement& message, const xmpp::Jid& to) {
  const xmpp::Jid bare = to.bare();
  im::UserServices users(server_, shard_.cluster_store());
  // XEP-0313: in both users' archives before the recipient sees it and before the sender's
  // ack counts it; the recipient's copy carries its archive's stanza-id.
  auto archive = im::UserServices::prepare_archive(jid_, to, message);
  if (user_online(server_, bare) || !im::UserServices::offline_eligible(message)) {
    if (!archive.empty()) {
      if (auto refused = co_await users.archive(message, std::move(archive)); refused) {
        if (!closing_) {
          send(*refused);
        }
        co_return;
      }
    }
    route_to_user(message, to);
    co_return;
  }
  // XEP-0160: kept until the user logs in (and archived with it); committed before the
  // sender's ack counts it.
  auto refused = co_await users.store_offline(bare, message, std::move(archive));
  if (refused && !closing_) {
    send(*refused);
  }
}

net::Awaitable<void> Session::on_iq_for_account(const XmlElement& iq, const xmpp::Jid& owner) {
  const XmlElement* payload = iq.first_element();
  im::UserServices users(server_, shard_.cluster_store());
  std::optional<XmlElement> reply;
  if (payload == nullptr) {
    reply = make_error_reply(iq, Condition::BadRequest, "empty iq");
  } else if (payload->name() == "vCard" && payload->xmlns() == "vcard-temp") {
    reply = co_await users.vcard_iq(jid_, owner, iq);
  } else if (payload->name() == "pubsub" &&
             payload->xmlns() == std::string_view("http://jabber.org/protocol/pubsub")) {
    reply = co_await users.pep_iq(jid_, owner, iq);
  } else if (iq.attr("type") == "get" && payload->name() == "query" &&
             payload->xmlns() == ns::kDiscoInfo && payload->attr("node").empty()) {
    reply = account_info(iq);
  } else {
    // Anything else to a user's bare JID is the server's to answer, and it offers nothing
    // more (RFC 6121 §8.5.2.1.3).
    reply = make_error_reply(iq, Condition::ServiceUnavailable);
  }
  if (!closing_) {
    send(*reply);
  }
}

net::Awaitable<void> Session::on_iq_for_server(const XmlElement& iq) {
  const std::string_view type = iq.attr("type");
  if (type == "result" || type == "error") {
    if (caps_pending_ && iq.attr("id") == caps_query_id_) {
      co_await on_caps(iq);
    }
    co_return;  // answers to nothing else we asked; RFC 6120 §8.2.3 says do not reply
  }
  const XmlElement* payload = iq.first_element();
  if (payload == nullptr) {
    send(make_error_reply(iq, Condition::BadRequest, "empty iq"));
    co_return;
  }
  const std::string& name = payload->name();
  const std::string& xmlns = payload->xmlns();
  const bool get = type == "get";
  const bool to_account = iq.has_attr("to") && xmpp::Jid::parse(iq.attr("to"))->local() != "";

  if (get && name == "ping" && xmlns == ns::kPing) {
    send(make_iq_result(iq));  // XEP-0199 §4.1
    co_return;
  }
  if (get && name == "query" && xmlns == ns::kDiscoInfo) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kDiscoInfo);
    if (!payload->attr("node").empty()) {
      send(make_error_reply(iq, Condition::ItemNotFound));
      co_return;
    }
    if (to_account) {
      send(account_info(iq));
      co_return;
    }
    query.add_child("identity", ns::kDiscoInfo)
        .set_attr("category", "server")
        .set_attr("type", "im")
        .set_attr("name", "tcbroker");
    for (const char* feature :
         {ns::kDiscoInfo, ns::kDiscoItems, ns::kPing, ns::kVersion, ns::kRoster,
          ns::kStreamManagement, ns::kCarbons, ns::kCsi, "msgoffline", "vcard-temp",
          "jabber:iq:private", "urn:xmpp:features:rosterver"}) {
      query.add_child("feature", ns::kDiscoInfo).set_attr("var", feature);
    }
    if (server_.config.registration) {
      query.add_child("feature", ns::kDiscoInfo).set_attr("var", ns::kRegister);
    }
    send(reply);
    co_return;
  }
  if (get && name == "query" && xmlns == ns::kDiscoItems) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kDiscoItems);
    if (!to_account) {
      query.add_child("item", ns::kDiscoItems)
          .set_attr("jid", server_.muc->domain())
          .set_attr("name", "Chat rooms");
    }
    send(reply);
    co_return;
  }
  im::UserServices users(server_, shard_.cluster_store());
  std::optional<XmlElement> answer;
  if (name == "query" && xmlns == ns::kRoster) {
    answer = co_await users.roster_iq(jid_, iq);  // RFC 6121 §2
  } else if (name == "vCard" && xmlns == "vcard-temp") {
    answer = co_await users.vcard_iq(jid_, jid_.bare(), iq);  // XEP-0054
  } else if (name == "query" && xmlns == "jabber:iq:private") {
    answer = co_await users.private_iq(jid_, iq);  // XEP-0049
  } else if (name == "pubsub" &&
             (xmlns == std::string_view("http://jabber.org/protocol/pubsub") ||
              xmlns == std::string_view("http://jabber.org/protocol/pubsub#owner"))) {
    answer = co_await users.pep_iq(jid_, jid_.bare(), iq);  // XEP-0163
  } else if (name == "query" && xmlns == ns::kMam && (!iq.has_attr("to") || to_account)) {
    // XEP-0313: the user's own archive (the server's domain keeps none).
    // A named function, not a temporary inside the co_await (GCC 12 may destroy those twice).
    const std::function<void(Wire)> deliver = [this](Wire result) {
      if (!closing_) {
        send(std::move(result));
      }
    };
    answer = co_await users.mam_iq(jid_, iq, deliver);
  }
  if (answer) {
    if (!closing_) {
      send(*answer);
    }
    co_return;
  }
  if (!get && xmlns == ns::kCarbons && (name == "enable" || name == "disable") &&
      (!iq.has_attr("to") || xmpp::Jid::parse(iq.attr("to"))->bare() == jid_.bare())) {
    // XEP-0280 §4: copies of this user's chats on its other resources, from now on.
    carbons_ = name == "enable";
    send(make_iq_result(iq));
    co_return;
  }
  if (!get && name == "session" && xmlns == ns::kSession) {
    send(make_iq_result(iq));  // RFC 3921 legacy no-op
    co_return;
  }
  if (get && name == "query" && xmlns == ns::kVersion && !to_account) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kVersion);
    query.add_child("name", ns::kVersion).add_text("tcbroker");
    query.add_child("version", ns::kVersion).add_text(std::string(kVersion));
    send(reply);
    co_return;
  }
  send(make_error_reply(iq, Condition::ServiceUnavailable));
}

net::Awaitable<void> Session::on_password_change(const XmlElement& iq) {
  // XEP-0077 §3.3: change of password by an authenticated user.
  const XmlElement* query = iq.child("query", ns::kRegister);
  if (query->child("remove", ns::kRegister) != nullptr) {
    send(make_error_reply(iq, Condition::NotAllowed, "accounts are removed by an administrator"));
    co_return;
  }
  const auto username = normalize_username(query->child_text("username", ns::kRegister));
  const std::string password = query->child_text("password", ns::kRegister);
  if (!username || *username != username_ || password.empty()) {
    send(
        make_error_reply(iq, Condition::BadRequest, "give your own username and the new password"));
    co_return;
  }
  auto hash_job = [u = username_, p = password, iterations = server_.config.scram_iterations] {
    return make_account(u, p, iterations);  // PBKDF2: on the CPU pool
  };
  auto account = co_await server_.cpu->async_run(std::move(hash_job), asio::use_awaitable);
  Result<void> changed = account.has_error() ? Result<void>(account.error()) : Result<void>();
  if (account) {
    auto update_job = [a = std::move(*account)](storage::Store& s) { return s.update_account(a); };
    changed =
        co_await shard_.cluster_store().async_call(std::move(update_job), asio::use_awaitable);
  }
  if (closing_) {
    co_return;
  }
  if (changed) {
    send(make_iq_result(iq));
  } else if (changed.error() == xmpp::Errc::MalformedRequest) {
    send(make_error_reply(iq, Condition::NotAcceptable, "unusable password"));
  } else {
    send(make_error_reply(iq, {ErrorType::Wait, Condition::InternalServerError}));
  }
}

void Session::route_to_user(XmlElement& stanza, const xmpp::Jid& to) {
  broker::route_to_user(server_, stanza, to, UserHop::Origin);
}

net::Awaitable<void> Session::on_presence(XmlElement& presence,
                                          const std::optional<xmpp::Jid>& to) {
  const std::string_view type = presence.attr("type");
  im::UserServices users(server_, shard_.cluster_store());
  if (!to) {
    if (type.empty() || type == "unavailable") {
      const bool initial = type.empty() && !available_;
      available_ = type.empty();
      const auto priority = presence.child_text("priority", ns::kClient);
      priority_ = priority.empty() ? 0 : std::atoi(priority.c_str());
      last_presence_ = available_ ? presence : XmlElement();
      broadcast_own_presence(presence);
      if (!available_) {
        end_directed_presence(presence);
      }
      if (available_) {
        ask_caps(presence);
      }
      // RFC 6121 §4.2-4.5: to the contacts subscribed to it; the first also probes.
      co_await users.broadcast_presence(jid_, presence, initial);
      if (initial && !waiting_delivered_ && !closing_) {
        waiting_delivered_ = true;
        const std::function<void(Wire)> deliver = [this](Wire wire) { deliver_on_shard(wire); };
        co_await users.deliver_waiting(jid_, deliver);
        // XEP-0163 §6.2: the last PEP items, once the client has said which it wants (or at
        // once when it says nothing about it).
        if (!caps_pending_) {
          co_await users.send_last_items(jid_);
        } else {
          last_items_due_ = true;
        }
      }
    }
    co_return;  // a probe or subscription stanza to nobody in particular has nothing to do
  }
  if (type == "subscribe" || type == "subscribed" || type == "unsubscribe" ||
      type == "unsubscribed") {
    if (to->domain() == server_.config.domain && !to->local().empty()) {
      co_await users.subscription(jid_, presence, *to);  // RFC 6121 §3
    }
    co_return;
  }
  if (type == "probe") {
    co_return;  // probes are the server's (RFC 6121 §4.3); a client's go nowhere
  }
  track_directed_presence(presence, *to);
  broker::route_to_user(server_, presence, *to, UserHop::Origin);
}

void Session::ask_caps(const XmlElement& presence) {
  // XEP-0115: the client names its features by a hash; the server asks the client itself what
  // they are (per session: nothing another client claims can poison what this one gets).
  const XmlElement* c = presence.child("c", "http://jabber.org/protocol/caps");
  if (c == nullptr || c->attr("node").empty() || c->attr("ver").empty()) {
    return;
  }
  std::string key = std::string(c->attr("node")) + "#" + std::string(c->attr("ver"));
  if (key == caps_key_) {
    return;
  }
  caps_key_ = std::move(key);
  caps_query_id_ = "caps-" + xmpp::random_token(10);
  caps_pending_ = true;
  XmlElement query("iq", ns::kClient);
  query.set_attr("type", "get")
      .set_attr("id", caps_query_id_)
      .set_attr("from", server_.config.domain)
      .set_attr("to", jid_.str());
  query.add_child("query", ns::kDiscoInfo).set_attr("node", caps_key_);
  send(query);
}

net::Awaitable<void> Session::on_caps(const XmlElement& reply) {
  // XEP-0163 §4.3.1: a "<node>+notify" feature asks for that node's events; a session that
  // names its features gets only those (one that says nothing, or whose client cannot say,
  // gets every event, as before).
  caps_pending_ = false;  // a second answer to the same query is not read
  const XmlElement* query = reply.child("query", ns::kDiscoInfo);
  if (reply.attr("type") == "result" && query != nullptr) {
    std::set<std::string> nodes;
    for (const auto* feature : query->children("feature", ns::kDiscoInfo)) {
      const std::string_view var = feature->attr("var");
      if (var.size() > 7 && var.ends_with("+notify")) {
        nodes.emplace(var.substr(0, var.size() - 7));
      }
    }
    notify_nodes_ = std::move(nodes);
  } else {
    notify_nodes_.reset();
  }
  // The last items of what it wants: held back since its initial presence, or new interests
  // of an established session (a client that added a feature).
  if ((last_items_due_ || available_) && !closing_) {
    last_items_due_ = false;
    im::UserServices users(server_, shard_.cluster_store());
    co_await users.send_last_items(jid_);
  }
}

void Session::answer_probe(const xmpp::Jid& prober) {
  asio::post(transport_->executor(), [self = shared_from_this(), prober] {
    if (!self->available_ || self->closing_ || !self->registered_in_router_) {
      return;
    }
    XmlElement presence = self->last_presence_;
    presence.set_attr("from", self->jid_.str());
    presence.set_attr("to", prober.str());
    broker::route_to_user(self->server_, presence, prober, UserHop::Origin, false);
  });
}

void Session::end_directed_presence(const XmlElement& unavailable) {
  for (const auto& target : directed_presence_) {
    auto jid = xmpp::Jid::parse(target);
    if (!jid) {
      continue;
    }
    XmlElement copy = unavailable;
    copy.set_attr("to", target);
    if (jid->domain() == server_.muc->domain()) {
      server_.muc->async_dispatch(std::move(copy), jid_, asio::detached);  // leaves the room
    } else if (jid->domain() == server_.config.domain && !jid->local().empty()) {
      broker::route_to_user(server_, copy, *jid, UserHop::Origin);
    }
  }
  directed_presence_.clear();
}

bool Session::joins_too_many_rooms(const xmpp::Jid& to) const {
  const auto limit = server_.config.muc_max_rooms_per_user;
  if (limit == 0) {
    return false;
  }
  const std::string room = to.bare_str();
  std::size_t rooms = 0;
  for (const auto& target : directed_presence_) {
    auto jid = xmpp::Jid::parse(target);
    if (!jid || jid->domain() != server_.muc->domain()) {
      continue;
    }
    if (jid->bare_str() == room) {
      return false;  // already in it: a nick change or a presence update
    }
    ++rooms;
  }
  return rooms >= limit;
}

void Session::track_directed_presence(const XmlElement& presence, const xmpp::Jid& to) {
  // RFC 6121 §4.6: whoever got directed presence gets unavailable presence when we go.
  const std::string_view type = presence.attr("type");
  if (type.empty()) {
    directed_presence_.insert(to.str());
  } else if (type == "unavailable" || type == "error") {
    directed_presence_.erase(to.str());
  }
}

void Session::broadcast_own_presence(const XmlElement& presence) {
  // RFC 6121 §4.2.2: the user's own resources, this one included, see its presence.
  for (const auto& s : server_.router.sessions_of(jid_.bare())) {
    XmlElement copy = presence;
    copy.set_attr("to", s->jid().str());
    s->deliver(to_wire(copy));
  }
  // ... and so do its resources on other nodes of the cluster.
  if (auto* remote = server_.router.remote_routes()) {
    for (const auto& [node, full] : server_.router.remote_sessions_of(jid_.bare())) {
      XmlElement copy = presence;
      copy.set_attr("to", full.str());
      remote->forward_to_user(node, full, copy, false);
    }
  }
}

}  // namespace tc::broker
