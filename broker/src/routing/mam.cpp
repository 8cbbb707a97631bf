// SPDX-License-Identifier: Apache-2.0
#include "routing/mam.h"

#include <algorithm>

#include "xmpp/datetime.h"
#include "xmpp/namespaces.h"

namespace tc::broker::mam {

namespace ns = xmpp::ns;
using xmpp::XmlElement;

namespace {

Query failed(std::string text) {
  Query q;
  q.error = std::move(text);
  return q;
}

}  // namespace

XmlElement search_form(bool extended) {
  XmlElement query("query", ns::kMam);
  auto& x = query.add_child("x", ns::kXData);
  x.set_attr("type", "form");
  x.add_child("field", ns::kXData)
      .set_attr("var", "FORM_TYPE")
      .set_attr("type", "hidden")
      .add_child("value", ns::kXData)
      .add_text(ns::kMam);
  x.add_child("field", ns::kXData).set_attr("var", "with").set_attr("type", "jid-single");
  for (const char* var : {"start", "end"}) {
    x.add_child("field", ns::kXData).set_attr("var", var).set_attr("type", "text-single");
  }
  if (extended) {
    for (const char* var : {"before-id", "after-id"}) {
      x.add_child("field", ns::kXData).set_attr("var", var).set_attr("type", "text-single");
    }
  }
  return query;
}

Query parse_query(const XmlElement& query, std::size_t max_page, bool extended) {
  Query q;
  q.query_id = std::string(query.attr("queryid"));
  q.archive.include_presence = false;
  q.archive.max = max_page;
  if (const XmlElement* x = query.child("x", ns::kXData)) {
    for (const XmlElement* field : x->children("field", ns::kXData)) {
      const std::string_view var = field->attr("var");
      const std::string value = field->child_text("value", ns::kXData);
      if (var == "start" || var == "end") {
        auto t = xmpp::parse_xep82(value);
        if (!t) {
          return failed(std::string(var) + " is not a date-time");
        }
        (var == "start" ? q.archive.start : q.archive.end) = *t;
      } else if (var == "with") {
        auto with = xmpp::Jid::parse(value);
        if (!with) {
          return failed("with is not a JID");
        }
        q.with = std::move(*with);
      } else if (extended && (var == "after-id" || var == "before-id")) {
        // XEP-0313 #extended: they narrow the result set; RSM still pages within it.
        (var == "after-id" ? q.archive.window_after_id : q.archive.window_before_id) = value;
      } else if (var != "FORM_TYPE" && !var.empty()) {
        return failed("unsupported field " + std::string(var));
      }
    }
  }
  if (const XmlElement* set = query.child("set", ns::kRsm)) {
    const std::string max = set->child_text("max", ns::kRsm);
    if (!max.empty()) {
      if (!std::all_of(max.begin(), max.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          max.size() > 9) {
        return failed("bad RSM max");
      }
      q.archive.max = std::min<std::size_t>(std::stoul(max), max_page);
    }
    if (const XmlElement* after = set->child("after", ns::kRsm)) {
      q.archive.after_id = after->text();
    }
    if (const XmlElement* before = set->child("before", ns::kRsm)) {
      q.archive.before_id = before->text();  // empty: the last page (XEP-0059 §2.5)
    }
  }
  return q;
}

std::string result_message(const xmpp::Jid& to, std::string_view archive, std::string_view query_id,
                           const storage::ArchivedMessage& m) {
  std::string wire = "<message to='" + xmpp::xml_escape(to.str()) + "' from='" +
                     xmpp::xml_escape(archive) + "'><result xmlns='urn:xmpp:mam:2'";
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
  return wire + inner + "</forwarded></result></message>";
}

void add_fin(XmlElement& result, const storage::ArchivePage& page) {
  auto& fin = result.add_child("fin", ns::kMam);
  if (page.complete) {
    fin.set_attr("complete", "true");
  }
  auto& set = fin.add_child("set", ns::kRsm);
  if (!page.messages.empty()) {
    set.add_child("first", ns::kRsm).add_text(page.messages.front().stanza_id);
    set.add_child("last", ns::kRsm).add_text(page.messages.back().stanza_id);
  }
  if (page.count) {
    set.add_child("count", ns::kRsm).add_text(std::to_string(*page.count));
  }
}

}  // namespace tc::broker::mam
