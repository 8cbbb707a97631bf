// SPDX-License-Identifier: Apache-2.0
// Service discovery of a room (XEP-0045 §6.4, §6.5).
#include "xmpp/namespaces.h"

#include "muc/room.h"
#include "muc/room_moderation.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- XEP-0030 ----

void Room::on_disco_info(const XmlElement& iq) {
  const Jid from = *Jid::parse(iq.attr("from"));
  if (!iq.first_element()->attr("node").empty()) {
    send_error(iq, from, Condition::ItemNotFound);
    return;
  }
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kDiscoInfo);
  q.add_child("identity", ns::kDiscoInfo)
      .set_attr("category", "conference")
      .set_attr("type", "text")
      .set_attr("name", config_.name.empty() ? jid_.local() : config_.name);
  std::vector<std::string> features = {
      ns::kMuc,
      ns::kDiscoInfo,
      ns::kDiscoItems,
      ns::kMam,
      ns::kStanzaId,
      ns::kOccupantId,
      ns_ext::kModerate,   // XEP-0425 0.3
      ns_ext::kModerate0,  // XEP-0425 0.2, the fastened form
      ns_ext::kRetract,    // XEP-0424: an author's retraction makes a tombstone
      ns_ext::kRetract0,
      std::string(ns_ext::kRetract) + "#tombstone",
      std::string(ns_ext::kRetract0) + "#tombstone",
      "vcard-temp",  // XEP-0054 on the room JID (its avatar, XEP-0486)
      "http://jabber.org/protocol/muc#self-ping-optimization",
      "http://jabber.org/protocol/muc#stable_id",
      config_.persistent ? "muc_persistent" : "muc_temporary",
      config_.members_only ? "muc_membersonly" : "muc_open",
      config_.password_protected ? "muc_passwordprotected" : "muc_unsecured",
      config_.moderated ? "muc_moderated" : "muc_unmoderated",
      config_.public_room ? "muc_public" : "muc_hidden",
      config_.non_anonymous() ? "muc_nonanonymous" : "muc_semianonymous",
  };
  for (const auto& f : features) {
    q.add_child("feature", ns::kDiscoInfo).set_attr("var", f);
  }
  // XEP-0045 §6.4: the muc#roominfo extended form.
  auto& x = q.add_child("x", ns::kXData);
  x.set_attr("type", "result");
  auto field = [&](const char* var, const std::string& value, const char* label) {
    auto& f = x.add_child("field", ns::kXData);
    f.set_attr("var", var);
    if (*label != '\0') {
      f.set_attr("label", label);
    }
    f.add_child("value", ns::kXData).add_text(value);
  };
  x.add_child("field", ns::kXData)
      .set_attr("var", "FORM_TYPE")
      .set_attr("type", "hidden")
      .add_child("value", ns::kXData)
      .add_text("http://jabber.org/protocol/muc#roominfo");
  field("muc#roominfo_description", config_.description, "Description");
  field("muc#roominfo_occupants", std::to_string(occupants_.size()), "Number of occupants");
  field("muc#roominfo_subject", record_.subject, "Subject");
  field("muc#roominfo_changesubject", config_.change_subject ? "1" : "0",
        "Occupants may change the subject");
  field("muc#roomconfig_roomname", config_.name, "Name");
  field("muc#maxhistoryfetch", std::to_string(config_.history_length), "History on join");
  if (!avatar_hash_.empty()) {
    field("muc#roominfo_avatarhash", avatar_hash_, "Avatar hash");  // XEP-0486 §3.1
  }
  send(from, reply);
}

void Room::on_disco_items(const XmlElement& iq) {
  const Jid from = *Jid::parse(iq.attr("from"));
  XmlElement reply = make_iq_result(iq);
  reply.set_attr("from", jid_.bare_str());
  auto& q = reply.add_child("query", ns::kDiscoItems);
  // XEP-0045 §6.5: occupants may be listed where that reveals nothing private; in
  // semi-anonymous rooms the list goes to occupants only.
  if (config_.non_anonymous() || occupant_of(from) != nullptr) {
    for (const auto& [nick, o] : occupants_) {
      q.add_child("item", ns::kDiscoItems)
          .set_attr("jid", jid_.bare_str() + "/" + nick)
          .set_attr("name", nick);
    }
  }
  send(from, reply);
}

}  // namespace tc::broker::muc
