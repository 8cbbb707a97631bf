// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace tc::xmpp::ns {

inline constexpr const char* kStream = "http://etherx.jabber.org/streams";
inline constexpr const char* kClient = "jabber:client";
inline constexpr const char* kServer = "jabber:server";
inline constexpr const char* kStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr const char* kStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr const char* kTls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr const char* kSasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr const char* kBind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr const char* kSession = "urn:ietf:params:xml:ns:xmpp-session";
inline constexpr const char* kStreamManagement = "urn:xmpp:sm:3";
inline constexpr const char* kPing = "urn:xmpp:ping";
inline constexpr const char* kDiscoInfo = "http://jabber.org/protocol/disco#info";
inline constexpr const char* kDiscoItems = "http://jabber.org/protocol/disco#items";
inline constexpr const char* kRoster = "jabber:iq:roster";
inline constexpr const char* kRegister = "jabber:iq:register";
inline constexpr const char* kRegisterFeature = "http://jabber.org/features/iq-register";
inline constexpr const char* kVersion = "jabber:iq:version";
inline constexpr const char* kXData = "jabber:x:data";
inline constexpr const char* kDelay = "urn:xmpp:delay";
inline constexpr const char* kStanzaId = "urn:xmpp:sid:0";
inline constexpr const char* kMuc = "http://jabber.org/protocol/muc";
inline constexpr const char* kMucUser = "http://jabber.org/protocol/muc#user";
inline constexpr const char* kMucAdmin = "http://jabber.org/protocol/muc#admin";
inline constexpr const char* kMucOwner = "http://jabber.org/protocol/muc#owner";
inline constexpr const char* kMam = "urn:xmpp:mam:2";
inline constexpr const char* kRsm = "http://jabber.org/protocol/rsm";
inline constexpr const char* kForward = "urn:xmpp:forward:0";
inline constexpr const char* kCarbons = "urn:xmpp:carbons:2";
inline constexpr const char* kHints = "urn:xmpp:hints";
inline constexpr const char* kCsi = "urn:xmpp:csi:0";
inline constexpr const char* kOccupantId = "urn:xmpp:occupant-id:0";

}  // namespace tc::xmpp::ns
