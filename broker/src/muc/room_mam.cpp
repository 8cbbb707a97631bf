// SPDX-License-Identifier: Apache-2.0
// XEP-0313 archive queries on a room.
#include <algorithm>

#include "storage/errc.h"
#include "xmpp/datetime.h"
#include "xmpp/namespaces.h"

#include "muc/room.h"
#include "muc/room_commit.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- XEP-0313 archive queries ----

void Room::on_mam_iq(const XmlElement& iq, const Jid& from, Completion done) {
  // Only those who may join may read (XEP-0313 §4.1.2 for MUC).
  const Affiliation affiliation = affiliation_of(from.bare());
  if (affiliation == Affiliation::Outcast ||
      (config_.members_only && affiliation == Affiliation::None)) {
    send_error(iq, from, Condition::Forbidden, "you may not read this room's archive");
    return;
  }
  const XmlElement* query = iq.first_element();
  if (iq.attr("type") == "get") {
    // XEP-0313 §6.1: the search form.
    XmlElement reply = make_iq_result(iq);
    reply.set_attr("from", jid_.bare_str());
    auto& q = reply.add_child("query", ns::kMam);
    auto& x = q.add_child("x", ns::kXData);
    x.set_attr("type", "form");
    x.add_child("field", ns::kXData)
        .set_attr("var", "FORM_TYPE")
        .set_attr("type", "hidden")
        .add_child("value", ns::kXData)
        .add_text(ns::kMam);
    for (const char* var : {"with", "start", "end"}) {
      x.add_child("field", ns::kXData)
          .set_attr("var", var)
          .set_attr("type", std::string(var) == "with" ? "jid-single" : "text-single");
    }
    send(from, reply);
    return;
  }
  storage::ArchiveQuery q;
  q.room_jid = jid_.bare_str();
  q.include_presence = false;
  const std::size_t cap = host_.config().muc_mam_max_page;
  q.max = cap;
  if (const XmlElement* x = query->child("x", ns::kXData)) {
    for (const XmlElement* field : x->children("field", ns::kXData)) {
      const std::string_view var = field->attr("var");
      const std::string value = field->child_text("value", ns::kXData);
      if (var == "start" || var == "end") {
        auto t = xmpp::parse_xep82(value);
        if (!t) {
          send_error(iq, from, Condition::BadRequest, std::string(var) + " is not a date-time");
          return;
        }
        (var == "start" ? q.start : q.end) = *t;
      } else if (var == "with") {
        auto with = Jid::parse(value);
        if (!with || with->bare() != jid_.bare() || with->resource().empty()) {
          // In a room archive, 'with' names an occupant: room@service/nick.
          send_error(iq, from, Condition::BadRequest, "with must be an occupant JID");
          return;
        }
        q.with_nick = with->resource();
      } else if (var != "FORM_TYPE" && !var.empty()) {
        send_error(iq, from, Condition::BadRequest, "unsupported field " + std::string(var));
        return;
      }
    }
  }
  if (const XmlElement* set = query->child("set", ns::kRsm)) {
    const std::string max = set->child_text("max", ns::kRsm);
    if (!max.empty()) {
      if (!std::all_of(max.begin(), max.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          max.size() > 9) {
        send_error(iq, from, Condition::BadRequest, "bad RSM max");
        return;
      }
      q.max = std::min<std::size_t>(std::stoul(max), cap);
    }
    if (const XmlElement* after = set->child("after", ns::kRsm)) {
      q.after_id = after->text();
    }
    if (const XmlElement* before = set->child("before", ns::kRsm)) {
      q.before_id = before->text();  // empty: the last page (XEP-0059 §2.5)
    }
  }
  const std::string query_id(query->attr("queryid"));
  auto job = [q](storage::Store& s) { return s.query_archive(q); };
  commit_then_apply(
      std::move(job),
      [this, iq, from, query_id,
       done = std::move(done)](Result<storage::ArchivePage> page) mutable {
        if (!page) {
          if (page.error() == storage::Errc::NotFound) {
            send_error(iq, from, Condition::ItemNotFound, "unknown RSM cursor");
          } else {
            send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError});
          }
          return;
        }
        std::vector<RoomHost::Delivery> out;
        out.reserve(page->messages.size() + 1);
        for (const auto& m : page->messages) {
          std::string wire = "<message to='" + xmpp::xml_escape(from.str()) + "' from='" +
                             xmpp::xml_escape(jid_.bare_str()) + "'><result xmlns='urn:xmpp:mam:2'";
          if (!query_id.empty()) {
            wire += " queryid='" + xmpp::xml_escape(query_id) + "'";
          }
          wire += " id='" + xmpp::xml_escape(m.stanza_id) +
                  "'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='" +
                  xmpp::xep82_timestamp(m.created_at) + "'/>";
          // The stored stanza is in jabber:client; inside <forwarded/> it must say so.
          std::string inner = m.stanza_xml;
          if (inner.rfind("<message", 0) == 0) {
            inner.insert(8, " xmlns='jabber:client'");
          }
          wire += inner + "</forwarded></result></message>";
          out.push_back({from, to_wire(std::move(wire))});
        }
        XmlElement result = make_iq_result(iq);
        result.set_attr("from", jid_.bare_str());
        auto& fin = result.add_child("fin", ns::kMam);
        if (page->complete) {
          fin.set_attr("complete", "true");
        }
        auto& set = fin.add_child("set", ns::kRsm);
        if (!page->messages.empty()) {
          set.add_child("first", ns::kRsm).add_text(page->messages.front().stanza_id);
          set.add_child("last", ns::kRsm).add_text(page->messages.back().stanza_id);
        }
        if (page->count) {
          set.add_child("count", ns::kRsm).add_text(std::to_string(*page->count));
        }
        XmlElement addressed = result;
        addressed.set_attr("to", from.str());
        out.push_back({from, to_wire(addressed)});
        host_.deliver(std::move(out));
        done();
      },
      true);  // a MAM query
}

}  // namespace tc::broker::muc
