// SPDX-License-Identifier: Apache-2.0
#include "muc/muc_service.h"

#include <algorithm>

#include <boost/asio/bind_executor.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/namespaces.h"

#include "net/session.h"
#include "routing/router.h"
#include "shard/shard.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

namespace {

XmlElement error_reply(const XmlElement& stanza, const std::string& from, const char* type,
                       const char* condition, const std::string& text = {}) {
  XmlElement reply(stanza.name(), ns::kClient);
  if (stanza.has_attr("id")) {
    reply.set_attr("id", std::string(stanza.attr("id")));
  }
  reply.set_attr("from", from);
  reply.set_attr("to", std::string(stanza.attr("from")));
  reply.set_attr("type", "error");
  if (stanza.name() == "presence") {
    reply.add_child("x", ns::kMuc);
  }
  auto& e = reply.add_child("error", ns::kClient);
  e.set_attr("type", type);
  e.add_child(condition, ns::kStanzaErrors);
  if (!text.empty()) {
    e.add_child("text", ns::kStanzaErrors).add_text(text);
  }
  return reply;
}

}  // namespace

// ---- one shard's rooms ----

class MucService::ShardRooms final : public RoomHost {
 public:
  ShardRooms(MucService& service, Shard& shard) : service_(service), shard_(shard) {}

  /// On the shard: routes a stanza to its room, loading the room first if needed.
  void handle(XmlElement stanza, Jid from, Completion done) {
    const Jid to = *Jid::parse(stanza.attr("to"));
    const Jid room_jid = to.bare();
    const std::string key = room_jid.bare_str();
    auto it = rooms_.find(key);
    if (it == rooms_.end()) {
      it = rooms_.emplace(key, Entry{}).first;
      it->second.loading = true;
      it->second.waiting.push_back({std::move(stanza), std::move(from), std::move(done)});
      load(room_jid);
      return;
    }
    if (it->second.loading) {
      it->second.waiting.push_back({std::move(stanza), std::move(from), std::move(done)});
      return;
    }
    route(it->second.room, std::move(stanza), std::move(from), std::move(done));
  }

  void deliver(std::vector<Delivery> deliveries) override {
    // One post per destination shard, in order (batched fan-out).
    std::vector<std::vector<std::pair<std::shared_ptr<Session>, Wire>>> by_shard(
        service_.shards_.size());
    for (auto& d : deliveries) {
      if (d.to.is_bare()) {
        for (auto& s : service_.router_.sessions_of(d.to)) {
          const auto i = static_cast<std::size_t>(s->shard_index());
          by_shard[i].emplace_back(std::move(s), d.wire);
        }
      } else if (auto s = service_.router_.find(d.to)) {
        const auto i = static_cast<std::size_t>(s->shard_index());
        by_shard[i].emplace_back(std::move(s), std::move(d.wire));
      }
    }
    for (std::size_t i = 0; i < by_shard.size(); ++i) {
      if (by_shard[i].empty()) {
        continue;
      }
      asio::post(service_.shards_[i]->shard().executor(), [batch = std::move(by_shard[i])] {
        for (const auto& [session, wire] : batch) {
          session->deliver_on_shard(wire);
        }
      });
    }
  }

  StoreWorker& store() override { return shard_.store(); }
  asio::any_io_executor executor() override { return shard_.executor(); }
  const Config& config() const override { return service_.config_; }

  bool is_service_admin(const Jid& bare) const override {
    const std::string b = bare.bare_str();
    for (const auto& admin : service_.config_.muc_admins) {
      if (admin == b) {
        return true;
      }
    }
    return false;
  }

  bool reserve_persistent_room() override {
    auto n = service_.persistent_rooms_.load();
    do {
      if (n >= service_.config_.muc_max_persistent_rooms) {
        return false;
      }
    } while (!service_.persistent_rooms_.compare_exchange_weak(n, n + 1));
    return true;
  }
  void release_persistent_room() override { --service_.persistent_rooms_; }

  void on_room_empty(const Jid& room) override {
    // Deferred: the room is still on the stack of the caller.
    asio::post(shard_.executor(), [this, key = room.bare_str()] {
      auto it = rooms_.find(key);
      if (it == rooms_.end() || it->second.loading || !it->second.room->empty()) {
        return;
      }
      if (!it->second.room->config().persistent) {
        // A temporary room vanishes with its archive (docs/operator-guide.md).
        auto job = [key](storage::Store& s) -> Result<void> {
          auto r = s.delete_room(key);
          return (!r && r.error() == storage::Errc::NotFound) ? Result<void>() : r;
        };
        shard_.store().async_call(
            std::move(job), asio::bind_executor(shard_.executor(), [key](Result<void> r) {
              if (!r) {
                spdlog::warn("room {}: could not remove: {}", key, r.error().message());
              }
            }));
        --service_.known_rooms_;
      }
      rooms_.erase(it);
      --service_.live_rooms_;
    });
  }

  void on_room_destroyed(const Jid& room) override {
    asio::post(shard_.executor(), [this, key = room.bare_str()] {
      if (rooms_.erase(key) > 0) {
        --service_.live_rooms_;
        --service_.known_rooms_;
      }
    });
  }

  void evict_all() {
    for (auto& [key, entry] : rooms_) {
      if (entry.room) {
        entry.room->evict_all("the service is shutting down");
      }
    }
  }

  Shard& shard() { return shard_; }

 private:
  struct Pending {
    XmlElement stanza;
    Jid from;
    Completion done;
  };
  struct Entry {
    std::shared_ptr<Room> room;
    bool loading = false;
    std::vector<Pending> waiting;
  };

  void load(const Jid& room_jid) {
    const std::size_t max_history = service_.config_.muc_max_history;
    auto job = [key = room_jid.bare_str(), max_history](storage::Store& s) -> Result<Room::Loaded> {
      auto record = s.load_room(key);
      if (!record) {
        return record.error();
      }
      auto affiliations = s.load_affiliations(key);
      if (!affiliations) {
        return affiliations.error();
      }
      auto recent = s.recent_messages(key, max_history);
      if (!recent) {
        return recent.error();
      }
      return Room::Loaded{std::move(*record), std::move(*affiliations), std::move(*recent)};
    };
    shard_.store().async_call(
        std::move(job),
        asio::bind_executor(shard_.executor(), [this, room_jid](Result<Room::Loaded> loaded) {
          on_loaded(room_jid, std::move(loaded));
        }));
  }

  void on_loaded(const Jid& room_jid, Result<Room::Loaded> loaded) {
    const std::string key = room_jid.bare_str();
    auto it = rooms_.find(key);
    if (it == rooms_.end()) {
      return;
    }
    std::vector<Pending> waiting = std::move(it->second.waiting);
    if (loaded) {
      it->second.room = std::make_shared<Room>(*this, room_jid, std::move(*loaded));
      it->second.loading = false;
      ++service_.live_rooms_;
      for (auto& p : waiting) {
        route(it->second.room, std::move(p.stanza), std::move(p.from), std::move(p.done));
      }
      return;
    }
    rooms_.erase(it);
    if (loaded.error() != storage::Errc::NotFound) {
      spdlog::warn("room {}: cannot load: {}", key, loaded.error().message());
      for (auto& p : waiting) {
        bounce(p.stanza, "wait", "internal-server-error", "the room cannot be loaded now");
      }
      return;
    }
    // No such room: the first join creates it; anything else is told it does not exist.
    for (auto& p : waiting) {
      auto existing = rooms_.find(key);
      if (existing != rooms_.end()) {
        route(existing->second.room, std::move(p.stanza), std::move(p.from), std::move(p.done));
        continue;
      }
      const Jid to = *Jid::parse(p.stanza.attr("to"));
      const bool join =
          p.stanza.name() == "presence" && p.stanza.attr("type").empty() && !to.resource().empty();
      if (!join) {
        if (p.stanza.name() != "presence") {
          bounce(p.stanza, "cancel", "item-not-found", "no such room");
        }
        continue;
      }
      if (service_.known_rooms_.load() >= service_.config_.muc_max_rooms) {
        bounce(p.stanza, "wait", "resource-constraint", "the service has reached its room limit");
        continue;
      }
      ++service_.known_rooms_;
      ++service_.live_rooms_;
      auto room = Room::create(*this, room_jid, p.from);
      rooms_[key].room = room;
      spdlog::info("room {} created by {}", key, p.from.bare_str());
      route(room, std::move(p.stanza), std::move(p.from), std::move(p.done));
    }
  }

  void route(const std::shared_ptr<Room>& room, XmlElement stanza, Jid from, Completion done) {
    if (stanza.name() == "presence") {
      room->on_presence(stanza, from, std::move(done));
    } else if (stanza.name() == "message") {
      room->on_message(stanza, from, std::move(done));
    } else {
      room->on_iq(stanza, from, std::move(done));
    }
  }

  void bounce(const XmlElement& stanza, const char* type, const char* condition,
              const std::string& text) {
    if (stanza.attr("type") == "error" || stanza.attr("type") == "result") {
      return;
    }
    const auto from = Jid::parse(stanza.attr("from"));
    if (!from) {
      return;
    }
    deliver({{*from, to_wire(error_reply(stanza, std::string(stanza.attr("to")), type, condition,
                                         text))}});
  }

  MucService& service_;
  Shard& shard_;
  std::unordered_map<std::string, Entry> rooms_;
};

// ---- the service ----

MucService::MucService(const Config& config, std::vector<Shard*> shards, Router& router)
    : config_(config), domain_(config.conference_domain()), router_(router) {
  for (Shard* shard : shards) {
    shards_.push_back(std::make_unique<ShardRooms>(*this, *shard));
  }
}

MucService::~MucService() = default;

MucService::ShardRooms& MucService::rooms_for(const Jid& room) {
  // A stable hash (FNV-1a), so a room's shard does not depend on the standard library.
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : room.bare_str()) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return *shards_[h % shards_.size()];
}

void MucService::dispatch(XmlElement stanza, Jid from, Completion done) {
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
      here.deliver(
          {{from, to_wire(error_reply(stanza, domain_, "cancel", "service-unavailable"))}});
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
                h.deliver({{from, to_wire(error_reply(stanza, domain_, "wait",
                                                      "internal-server-error"))}});
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
  here.deliver({{from, to_wire(error_reply(stanza, domain_, "cancel", "service-unavailable"))}});
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
  if (auto removed = shards_.front()->store().call_blocking(std::move(cleanup));
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
