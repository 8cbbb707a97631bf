// SPDX-License-Identifier: Apache-2.0
// UserServices: each user's message archive (XEP-0313 on the account). A one-to-one message
// between two users of this domain is archived twice in one transaction, once in each user's
// archive, before the recipient sees it and before the sender's XEP-0198 count includes it.
// The archives are rows of tc_archive in the cluster database, keyed by the owner's bare JID
// (room_jid; a user of the main domain never collides with a room of the conference domain)
// with kind "chat", the correspondent's bare JID as sender_nick and the correspondent's JID as
// the message named it (full, or bare when sent to a bare JID) as sender_jid, which is what
// 'with' filters on. The queries share routing/mam with the rooms' archives.
#include <chrono>

#include <boost/asio/use_awaitable.hpp>

#include "storage/errc.h"
#include "storage/store.h"
#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

#include "im/user_services.h"
#include "routing/mam.h"
#include "server_context.h"
#include "shard/store_worker.h"

namespace tc::broker::im {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {

/// tc_archive's kind for a user's one-to-one message.
constexpr char kChatKind[] = "chat";

}  // namespace

bool UserServices::archive_eligible(const XmlElement& message) {
  const std::string_view type = message.attr("type");
  if (type != "" && type != "normal" && type != "chat") {
    return false;  // groupchat is the room's; error and headline are never archived (§5.1.1)
  }
  if (message.child("no-store", ns::kHints) != nullptr ||
      message.child("no-permanent-store", ns::kHints) != nullptr) {
    return false;  // XEP-0334 §4
  }
  return message.child("body", ns::kClient) != nullptr;
}

std::vector<storage::NewMessage> UserServices::prepare_archive(const Jid& from, const Jid& to,
                                                               XmlElement& message) {
  // XEP-0359 §3.1: a stanza-id claiming to be either archive's is the sender's forgery.
  const std::string sender = from.bare_str();
  const std::string recipient = to.bare_str();
  auto& nodes = message.nodes();
  std::erase_if(nodes, [&](const XmlElement& child) {
    return !child.is_text() && child.name() == "stanza-id" && child.xmlns() == ns::kStanzaId &&
           (child.attr("by") == sender || child.attr("by") == recipient);
  });
  if (!archive_eligible(message)) {
    return {};
  }
  storage::NewMessage row;
  row.stanza_id = xmpp::random_token(16);  // the same id in both archives
  row.kind = kChatKind;
  row.stanza_xml = message.to_string(ns::kClient);
  row.created_at = now_ms();
  std::vector<storage::NewMessage> rows;
  row.room_jid = recipient;
  row.sender_nick = sender;
  row.sender_jid = from.str();
  rows.push_back(row);
  if (sender != recipient) {
    row.room_jid = sender;
    row.sender_nick = recipient;
    row.sender_jid = to.str();
    rows.push_back(std::move(row));
  }
  message.add_child("stanza-id", ns::kStanzaId)
      .set_attr("by", recipient)
      .set_attr("id", rows.front().stanza_id);
  return rows;
}

Awaitable<std::optional<XmlElement>> UserServices::archive(const XmlElement& message,
                                                           std::vector<storage::NewMessage> rows) {
  auto job = [rows = std::move(rows)](storage::Store& s) { return s.append_messages(rows); };
  auto committed = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!committed) {
    // Not delivered either: the durability rule (the sender resends; nothing was seen).
    co_return make_error_reply(message, {xmpp::ErrorType::Wait, Condition::InternalServerError},
                               "the message could not be archived; send it again");
  }
  co_return std::nullopt;
}

Awaitable<XmlElement> UserServices::mam_iq(const Jid& user, const XmlElement& iq,
                                           const std::function<void(Wire)>& deliver) {
  const XmlElement* query = iq.child("query", ns::kMam);
  const std::string owner = user.bare_str();
  if (iq.attr("type") == "get") {
    XmlElement reply = make_iq_result(iq);  // XEP-0313 §6.1: the search form
    reply.add_child(mam::search_form(true));
    co_return reply;
  }
  mam::Query parsed = mam::parse_query(*query, server_.config.im_mam_max_page, true);
  if (!parsed.error.empty()) {
    co_return make_error_reply(iq, Condition::BadRequest, parsed.error);
  }
  storage::ArchiveQuery q = std::move(parsed.archive);
  q.room_jid = owner;
  if (parsed.with) {
    // XEP-0313 §4.1.1: a bare JID matches every resource, a full JID that one only.
    q.with_nick = parsed.with->bare_str();
    if (!parsed.with->resource().empty()) {
      q.with_jid = parsed.with->str();
    }
  }
  auto job = [q](storage::Store& s) { return s.query_archive(q); };
  auto page = co_await store_.async_call(std::move(job), asio::use_awaitable);
  if (!page) {
    if (page.error() == storage::Errc::NotFound) {
      co_return make_error_reply(iq, Condition::ItemNotFound, "no message has that id");
    }
    co_return make_error_reply(iq, {xmpp::ErrorType::Wait, Condition::InternalServerError},
                               "the archive could not be read; try again");
  }
  for (const auto& m : page->messages) {
    deliver(to_wire(mam::result_message(user, owner, parsed.query_id, m)));
  }
  XmlElement result = make_iq_result(iq);
  mam::add_fin(result, *page);
  co_return result;
}

}  // namespace tc::broker::im
