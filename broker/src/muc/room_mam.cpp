// SPDX-License-Identifier: Apache-2.0
// XEP-0313 archive queries on a room.
#include "storage/errc.h"

#include "muc/room.h"
#include "muc/room_commit.h"
#include "routing/mam.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
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
    reply.add_child(mam::search_form(false));
    send(from, reply);
    return;
  }
  mam::Query parsed = mam::parse_query(*query, host_.config().muc_mam_max_page, false);
  if (parsed.error.empty() && parsed.with &&
      (parsed.with->bare() != jid_.bare() || parsed.with->resource().empty())) {
    // In a room archive, 'with' names an occupant: room@service/nick.
    parsed.error = "with must be an occupant JID";
  }
  if (!parsed.error.empty()) {
    send_error(iq, from, Condition::BadRequest, parsed.error);
    return;
  }
  storage::ArchiveQuery q = std::move(parsed.archive);
  q.room_jid = jid_.bare_str();
  if (parsed.with) {
    q.with_nick = parsed.with->resource();
  }
  auto job = [q](storage::Store& s) { return s.query_archive(q); };
  commit_then_apply(
      std::move(job),
      [this, iq, from, query_id = std::move(parsed.query_id),
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
          out.push_back({from, to_wire(mam::result_message(from, jid_.bare_str(), query_id, m))});
        }
        XmlElement result = make_iq_result(iq);
        result.set_attr("from", jid_.bare_str());
        mam::add_fin(result, *page);
        XmlElement addressed = result;
        addressed.set_attr("to", from.str());
        out.push_back({from, to_wire(addressed)});
        host_.deliver(std::move(out));
        done();
      },
      true);  // a MAM query
}

}  // namespace tc::broker::muc
