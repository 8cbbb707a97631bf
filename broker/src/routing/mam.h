// SPDX-License-Identifier: Apache-2.0
// XEP-0313 archive queries, shared by the rooms' archives (muc/room_mam.cpp) and the users'
// own (im/user_mam.cpp): the search form, a query's form and XEP-0059 set read into a
// storage::ArchiveQuery, and the result messages and <fin/> written from a page. What 'with'
// means is the caller's: an occupant in a room, a correspondent in a user's archive.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "storage/records.h"
#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

namespace tc::broker::mam {

/// The feature of the XEP-0313 #extended fields (before-id, after-id).
inline constexpr char kExtended[] = "urn:xmpp:mam:2#extended";

/// The search form (XEP-0313 §6.1): <query xmlns='urn:xmpp:mam:2'> with FORM_TYPE, with,
/// start and end, and with `extended` also before-id and after-id.
xmpp::XmlElement search_form(bool extended);

/// A query as the client asked it.
struct Query {
  storage::ArchiveQuery archive;  ///< all but room_jid and the 'with' filter (caller's)
  std::optional<xmpp::Jid> with;  ///< the form's 'with', when given
  std::string query_id;           ///< the query's queryid ("" when none)
  std::string error;              ///< not empty: malformed (bad-request with this text)
};

/// Reads <query xmlns='urn:xmpp:mam:2'>: its data form (start, end, with, and when
/// `extended` before-id and after-id; any other field is an error) and its XEP-0059 set
/// (max, capped at `max_page`; after; before, empty for the last page).
Query parse_query(const xmpp::XmlElement& query, std::size_t max_page, bool extended);

/// One result (XEP-0313 §4.2), serialised: <message to from><result queryid id><forwarded>
/// with the archived time and the stored message.
std::string result_message(const xmpp::Jid& to, std::string_view archive, std::string_view query_id,
                           const storage::ArchivedMessage& m);

/// Adds the <fin/> that ends a page (XEP-0313 §4.3) to `result`: complete when the page is
/// the last in its direction, and the XEP-0059 first, last and count.
void add_fin(xmpp::XmlElement& result, const storage::ArchivePage& page);

}  // namespace tc::broker::mam
