// SPDX-License-Identifier: Apache-2.0
// The room's own vCard (XEP-0054 addressed to the room JID), which clients use for the room's
// avatar (XEP-0486). It is stored in the room's configuration, so it survives restarts and
// moves with the room on failover.
#include <array>
#include <cctype>

#include <openssl/sha.h>

#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"
#include "xmpp/stream_parser.h"

#include "muc/room.h"
#include "muc/room_commit.h"

namespace tc::broker::muc {

namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {

constexpr const char* kVcard = "vcard-temp";
constexpr const char* kEmptyVcard = "<vCard xmlns='vcard-temp'/>";

}  // namespace

std::string vcard_avatar_hash(std::string_view vcard_xml) {
  if (vcard_xml.empty()) {
    return {};
  }
  const auto vcard = xmpp::parse_element(vcard_xml);
  const XmlElement* photo = vcard ? vcard->child("PHOTO", kVcard) : nullptr;
  if (photo == nullptr) {
    return {};
  }
  std::string base64 = photo->child_text("BINVAL", kVcard);
  // vCards wrap base64 over lines (RFC 2426 §2.4.1).
  std::erase_if(base64, [](unsigned char c) { return std::isspace(c) != 0; });
  const auto raw = xmpp::base64_decode(base64);
  if (!raw || raw->empty()) {
    return {};
  }
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(raw->data()), raw->size(), digest.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest.size() * 2);
  for (unsigned char b : digest) {
    hex += kHex[b >> 4];
    hex += kHex[b & 0xf];
  }
  return hex;
}

void Room::on_vcard_iq(const XmlElement& iq, const Jid& from, Completion done) {
  const Affiliation affiliation = affiliation_of(from.bare());
  if (iq.attr("type") == "get") {
    // Whoever may join may read it, as for the archive.
    if (affiliation == Affiliation::Outcast ||
        (config_.members_only && affiliation == Affiliation::None)) {
      send_error(iq, from, Condition::Forbidden, "you may not read this room's vCard");
      return;
    }
    // XEP-0054 §3.1: an empty vCard when there is none. The stored one is serialised already.
    std::string wire = "<iq type='result' from='" + xmpp::xml_escape(jid_.bare_str()) + "' to='" +
                       xmpp::xml_escape(from.str()) + "'";
    if (iq.has_attr("id")) {
      wire += " id='" + xmpp::xml_escape(iq.attr("id")) + "'";
    }
    wire += ">" + (config_.vcard.empty() ? std::string(kEmptyVcard) : config_.vcard) + "</iq>";
    host_.deliver({{from, to_wire(std::move(wire))}});
    return;
  }
  if (affiliation != Affiliation::Owner) {
    send_error(iq, from, Condition::Forbidden, "only owners may change the room's vCard");
    return;
  }
  const XmlElement& vcard = *iq.first_element();
  // An empty <vCard/> removes it.
  std::string serialised = vcard.first_element() == nullptr ? "" : vcard.to_string(ns::kClient);
  const std::size_t cap = host_.config().muc_max_vcard_bytes;
  if (serialised.size() > cap) {
    send_error(iq, from, {ErrorType::Modify, Condition::NotAcceptable},
               "the vCard is larger than muc.max_vcard_bytes (" + std::to_string(cap) + " bytes)");
    return;
  }
  RoomConfig next = config_;
  next.vcard = serialised;
  storage::RoomRecord rec = record();
  rec.config_json = next.to_json();
  auto job = [rec](storage::Store& s) { return s.save_room(rec); };
  commit_then_apply(std::move(job), [this, iq, from, serialised = std::move(serialised),
                                     done = std::move(done)](Result<void> r) mutable {
    if (!r) {
      send_error(iq, from, {ErrorType::Wait, Condition::InternalServerError},
                 "the vCard could not be stored");
      return;
    }
    // Only the vCard: a configuration committed meanwhile keeps its other values.
    config_.vcard = std::move(serialised);
    std::string hash = vcard_avatar_hash(config_.vcard);
    const bool avatar_changed = hash != avatar_hash_;
    avatar_hash_ = std::move(hash);
    XmlElement result = make_iq_result(iq);
    result.set_attr("from", jid_.bare_str());
    send(from, result);
    if (avatar_changed) {
      broadcast_status({104});  // XEP-0486 §3.1: occupants refetch the room's disco#info
    }
    done();
  });
}

}  // namespace tc::broker::muc
