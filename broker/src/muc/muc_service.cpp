// SPDX-License-Identifier: Apache-2.0
#include "muc/muc_service.h"

#include <algorithm>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "xmpp/namespaces.h"

#include "muc/shard_rooms.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

// ---- the service ----

MucService::MucService(const Config& config, std::vector<Shard*> shards, Router& router)
    : config_(config), domain_(config.conference_domain()), router_(router) {
  for (Shard* shard : shards) {
    shards_.push_back(std::make_unique<ShardRooms>(*this, *shard));
  }
}

MucService::~MucService() = default;

std::size_t MucService::shard_index(const Jid& room) const {
  // A stable hash (FNV-1a), so a room's shard does not depend on the standard library.
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : room.bare_str()) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return static_cast<std::size_t>(h % shards_.size());
}

MucService::ShardRooms& MucService::rooms_for(const Jid& room) {
  return *shards_[shard_index(room)];
}

void MucService::dispatch(XmlElement stanza, Jid from, Completion done) {
  if (view_ != nullptr) {
    const Jid to = *Jid::parse(stanza.attr("to"));
    if (!to.local().empty()) {
      if (stanza.name() == "presence") {
        track_local_join(stanza, from);
      }
      route_clustered(std::move(stanza), std::move(from), std::move(done));
      return;
    }
  }
  dispatch_here(std::move(stanza), std::move(from), std::move(done));
}

void MucService::dispatch_here(XmlElement stanza, Jid from, Completion done) {
  const Jid to = *Jid::parse(stanza.attr("to"));
  if (to.local().empty()) {
    ShardRooms& first = *shards_.front();
    asio::post(first.shard().executor(), [this, stanza = std::move(stanza), from = std::move(from),
                                          done = std::move(done)]() mutable {
      on_service_stanza(std::move(stanza), std::move(from), std::move(done));
    });
    return;
  }
  ShardRooms& owner = rooms_for(to);
  asio::post(owner.shard().executor(), [&owner, stanza = std::move(stanza), from = std::move(from),
                                        done = std::move(done)]() mutable {
    owner.handle(std::move(stanza), std::move(from), std::move(done));
  });
}

void MucService::on_service_stanza(XmlElement stanza, Jid from, Completion done) {
  ShardRooms& here = *shards_.front();
  const std::string_view type = stanza.attr("type");
  if (stanza.name() != "iq" || (type != "get" && type != "set")) {
    if (stanza.name() == "message" && type != "error") {
      here.deliver({{from, to_wire(error_reply(stanza, domain_, Condition::ServiceUnavailable))}});
    }
    return;
  }
  const XmlElement* payload = stanza.first_element();
  const bool get = type == "get";
  if (get && payload != nullptr && payload->xmlns() == ns::kDiscoInfo &&
      payload->attr("node").empty()) {
    XmlElement reply("iq", ns::kClient);
    reply.set_attr("type", "result").set_attr("id", std::string(stanza.attr("id")));
    reply.set_attr("from", domain_).set_attr("to", from.str());
    auto& q = reply.add_child("query", ns::kDiscoInfo);
    q.add_child("identity", ns::kDiscoInfo)
        .set_attr("category", "conference")
        .set_attr("type", "text")
        .set_attr("name", "Chat rooms");
    for (const char* f : {ns::kMuc, ns::kDiscoInfo, ns::kDiscoItems, ns::kMam, ns::kStanzaId,
                          ns::kOccupantId, ns::kPing}) {
      q.add_child("feature", ns::kDiscoInfo).set_attr("var", f);
    }
    here.deliver({{from, to_wire(reply)}});
    return;
  }
  if (get && payload != nullptr && payload->xmlns() == ns::kDiscoItems) {
    // XEP-0045 §6.3: public rooms, from the store (every room, loaded or not, is there).
    auto job = [](storage::Store& s) { return s.list_rooms(); };
    here.store().async_call(
        std::move(job),
        asio::bind_executor(
            here.shard().executor(), [this, stanza, from, done = std::move(done)](
                                         Result<std::vector<storage::RoomRecord>> rooms) mutable {
              ShardRooms& h = *shards_.front();
              if (!rooms) {
                h.deliver({{from, to_wire(error_reply(
                                      stanza, domain_,
                                      {ErrorType::Wait, Condition::InternalServerError}))}});
                return;
              }
              XmlElement reply("iq", ns::kClient);
              reply.set_attr("type", "result").set_attr("id", std::string(stanza.attr("id")));
              reply.set_attr("from", domain_).set_attr("to", from.str());
              auto& q = reply.add_child("query", ns::kDiscoItems);
              for (const auto& r : *rooms) {
                const RoomConfig c = RoomConfig::from_json(r.config_json);
                if (!c.public_room) {
                  continue;
                }
                auto& item = q.add_child("item", ns::kDiscoItems);
                item.set_attr("jid", r.jid);
                const auto at = r.jid.find('@');
                item.set_attr("name", c.name.empty() ? r.jid.substr(0, at) : c.name);
              }
              h.deliver({{from, to_wire(reply)}});
            }));
    return;
  }
  if (get && payload != nullptr && payload->xmlns() == ns::kPing) {
    XmlElement reply("iq", ns::kClient);
    reply.set_attr("type", "result").set_attr("id", std::string(stanza.attr("id")));
    reply.set_attr("from", domain_).set_attr("to", from.str());
    here.deliver({{from, to_wire(reply)}});
    return;
  }
  here.deliver({{from, to_wire(error_reply(stanza, domain_, Condition::ServiceUnavailable))}});
}

void MucService::start() {
  // Temporary rooms this node hosted cannot have occupants after a restart: a crash must not
  // turn them into persistent ones (a clean stop already deleted them).
  auto cleanup = [node = config_.node_name](storage::Store& s) -> Result<std::size_t> {
    auto rooms = s.list_rooms(node);
    if (!rooms) {
      return rooms.error();
    }
    std::size_t removed = 0;
    for (const auto& r : *rooms) {
      if (!r.persistent && s.delete_room(r.jid)) {
        ++removed;
      }
    }
    return removed;
  };
  // In a redundancy group the peer may host this partition's temporary rooms right now.
  if (auto removed = view_ != nullptr ? Result<std::size_t>(0)
                                      : shards_.front()->store().call_blocking(std::move(cleanup));
      removed && *removed > 0) {
    spdlog::info("removed {} temporary room(s) left by an earlier run", *removed);
  }
  auto job = [](storage::Store& s) { return s.list_rooms(); };
  auto rooms = shards_.front()->store().call_blocking(std::move(job));
  if (rooms) {
    known_rooms_ = rooms->size();
    persistent_rooms_ = static_cast<std::size_t>(
        std::count_if(rooms->begin(), rooms->end(), [](const auto& r) { return r.persistent; }));
  }
  schedule_retention();
}

void MucService::schedule_retention() {
  // Rooms may carry their own retention even when the service keeps everything, so the job
  // always runs; a pass where nothing expires is one cheap query per room with retention.
  ShardRooms& first = *shards_.front();
  if (!retention_timer_) {
    retention_timer_ = std::make_unique<asio::steady_timer>(first.shard().executor());
  }
  retention_timer_->expires_after(config_.muc_retention_interval);
  retention_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) {
      return;
    }
    auto job = [this](storage::Store& s) { return purge_expired(s, config_, now_millis()); };
    ShardRooms& f = *shards_.front();
    f.store().async_call(std::move(job),
                         asio::bind_executor(f.shard().executor(), [this](Result<std::uint64_t> r) {
                           if (r && *r > 0) {
                             spdlog::info("archive retention removed {} messages", *r);
                           } else if (!r) {
                             spdlog::warn("archive retention failed: {}", r.error().message());
                           }
                           schedule_retention();
                         }));
  });
}

void MucService::shutdown(std::function<void()> then) {
  if (retention_timer_) {
    asio::post(shards_.front()->shard().executor(), [this] { retention_timer_->cancel(); });
  }
  auto remaining = std::make_shared<std::atomic<std::size_t>>(shards_.size());
  auto finish = std::make_shared<std::function<void()>>(std::move(then));
  for (auto& s : shards_) {
    asio::post(s->shard().executor(), [rooms = s.get(), remaining, finish] {
      rooms->evict_all();
      // The evictions are now queued on the sessions' shards; anything posted there after
      // this point runs after them.
      if (--*remaining == 0 && *finish) {
        (*finish)();
      }
    });
  }
}

void MucService::list_live(std::function<void(std::vector<LiveRoom>)> done) {
  struct Gather {
    std::mutex mu;
    std::vector<LiveRoom> rooms;
    std::size_t remaining;
    std::function<void(std::vector<LiveRoom>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->remaining = shards_.size();
  g->done = std::move(done);
  for (auto& s : shards_) {
    asio::post(s->shard().executor(), [rooms = s.get(), g] {
      auto mine = rooms->live_rooms();
      bool last = false;
      {
        std::lock_guard lock(g->mu);
        g->rooms.insert(g->rooms.end(), mine.begin(), mine.end());
        last = --g->remaining == 0;
      }
      if (last) {
        g->done(std::move(g->rooms));
      }
    });
  }
}

std::size_t MucService::local_joins() const {
  std::lock_guard lock(ha_mu_);
  std::size_t n = 0;
  for (const auto& [room, users] : local_joins_) {
    n += users.size();
  }
  return n;
}

std::uint64_t MucService::purge_expired_for_test() {
  auto job = [this](storage::Store& s) { return purge_expired(s, config_, now_millis()); };
  auto r = shards_.front()->store().call_blocking(std::move(job));
  return r ? *r : 0;
}

Result<std::uint64_t> purge_expired(storage::Store& store, const Config& config,
                                    storage::UnixMillis now) {
  auto rooms = store.list_rooms();
  if (!rooms) {
    return rooms.error();
  }
  std::uint64_t removed = 0;
  for (const auto& r : *rooms) {
    const RoomConfig c = RoomConfig::from_json(r.config_json);
    const int days = c.retention_days > 0 ? c.retention_days : config.muc_retention_days;
    if (days <= 0) {
      continue;
    }
    auto n = store.purge_archive(r.jid, now - static_cast<storage::UnixMillis>(days) * 86'400'000);
    if (!n) {
      return n.error();
    }
    removed += *n;
  }
  return removed;
}

}  // namespace tc::broker::muc
