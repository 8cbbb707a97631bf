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
      request_load(key);
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
    std::vector<Delivery> remote;
    const bool clustered = service_.sink_ != nullptr;
    for (auto& d : deliveries) {
      if (d.to.is_bare()) {
        for (auto& s : service_.router_.sessions_of(d.to)) {
          const auto i = static_cast<std::size_t>(s->shard_index());
          by_shard[i].emplace_back(std::move(s), d.wire);
        }
        if (clustered) {
          remote.push_back(std::move(d));  // the peer may have sessions of this user too
        }
      } else if (auto s = service_.router_.find(d.to)) {
        const auto i = static_cast<std::size_t>(s->shard_index());
        by_shard[i].emplace_back(std::move(s), std::move(d.wire));
      } else if (clustered) {
        remote.push_back(std::move(d));
      }
    }
    if (!remote.empty()) {
      service_.sink_->forward_deliveries(std::move(remote));
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

  std::string partition_of(const Jid& room) const override {
    if (service_.view_ == nullptr) {
      return service_.config_.node_name;
    }
    return service_.view_->get()->room_partition(room.bare_str());
  }

  std::optional<storage::Fence> fence_for(const Jid& room) const override {
    if (service_.view_ == nullptr) {
      return std::nullopt;
    }
    const auto view = service_.view_->get();
    if (!view->clustered) {
      return std::nullopt;
    }
    const std::string& partition = view->room_partition(room.bare_str());
    if (auto fence = view->fence(partition)) {
      return fence;
    }
    return storage::Fence{partition, view->self, -1};  // not ours: the write must fail
  }

  void on_occupant_gone(const Jid& room, const Jid& real) override {
    if (service_.sink_ == nullptr) {
      return;
    }
    bool peer_user = false;
    {
      std::lock_guard lock(service_.ha_mu_);
      const std::string key = room.bare_str();
      if (auto it = service_.local_joins_.find(key); it != service_.local_joins_.end()) {
        it->second.erase(real.str());
        if (it->second.empty()) {
          service_.local_joins_.erase(it);
        }
      }
      if (auto it = service_.peer_joins_.find(key); it != service_.peer_joins_.end()) {
        peer_user = it->second.erase(real.str()) > 0;
        if (it->second.empty()) {
          service_.peer_joins_.erase(it);
        }
      }
    }
    if (peer_user) {
      service_.sink_->forward_gone(room, real);
    }
  }

  /// Drops the rooms of `partition` from this shard without a word to their occupants.
  void release(const std::string& partition) {
    for (auto it = rooms_.begin(); it != rooms_.end();) {
      const auto jid = Jid::parse(it->first);
      if (!jid || partition_of(*jid) != partition || it->second.loading) {
        ++it;
        continue;
      }
      if (it->second.room) {
        --service_.live_rooms_;
      }
      it = rooms_.erase(it);
    }
  }

  std::vector<LiveRoom> live_rooms() const {
    std::vector<LiveRoom> out;
    for (const auto& [key, entry] : rooms_) {
      if (!entry.loading && entry.room) {
        out.push_back({key, entry.room->occupant_count()});
      }
    }
    return out;
  }

  /// The room object, when it is live on this shard.
  std::shared_ptr<Room> live(const std::string& key) {
    auto it = rooms_.find(key);
    return (it == rooms_.end() || it->second.loading) ? nullptr : it->second.room;
  }

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

  void release_all() {
    for (auto it = rooms_.begin(); it != rooms_.end();) {
      if (it->second.loading) {
        ++it;
        continue;
      }
      if (it->second.room) {
        --service_.live_rooms_;
      }
      it = rooms_.erase(it);
    }
  }

  /// On the shard: loads these rooms (this shard's share of a partition it now hosts);
  /// rooms already loaded or loading are skipped.
  void preload(std::vector<std::string> keys) {
    std::size_t queued = 0;
    for (auto& key : keys) {
      if (rooms_.count(key) == 0) {
        rooms_.emplace(key, Entry{}).first->second.loading = true;
        request_load(key);
        ++queued;
      }
    }
    spdlog::debug("muc: {} rooms queued for loading on this shard", queued);
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
  std::deque<std::string> load_queue_;  // rooms whose entry is loading, in request order
  bool load_in_flight_ = false;

  /// Queues a room whose entry is loading. Loads run one batch at a time per shard, so a
  /// burst (a takeover's preload, the replayed joins of thousands of rooms) costs a few set
  /// queries per 256 rooms instead of three round trips per room, and the shard's other
  /// store jobs (archive appends of rooms that are up) interleave with the batches.
  void request_load(const std::string& key) {
    load_queue_.push_back(key);
    if (!load_in_flight_) {
      load_in_flight_ = true;
      // Posted: stanzas already queued on this shard join the same batch.
      asio::post(shard_.executor(), [this] { load_next_batch(); });
    }
  }

  void load_next_batch() {
    constexpr std::size_t kBatch = 256;
    if (load_queue_.empty()) {
      load_in_flight_ = false;
      return;
    }
    std::vector<std::string> batch;
    while (!load_queue_.empty() && batch.size() < kBatch) {
      batch.push_back(std::move(load_queue_.front()));
      load_queue_.pop_front();
    }
    const std::size_t max_history = service_.config_.muc_max_history;
    auto job = [batch, max_history](storage::Store& s) { return s.load_rooms(batch, max_history); };
    shard_.store().async_call(
        std::move(job),
        asio::bind_executor(shard_.executor(), [this, batch = std::move(batch)](
                                                   Result<std::vector<storage::RoomBundle>> got) {
          std::map<std::string, Room::Loaded> found;
          if (got) {
            for (auto& b : *got) {
              std::string key = b.room.jid;
              found.emplace(
                  std::move(key),
                  Room::Loaded{std::move(b.room), std::move(b.affiliations), std::move(b.recent)});
            }
          }
          for (const std::string& key : batch) {
            auto jid = Jid::parse(key);
            if (!jid) {
              rooms_.erase(key);
              continue;
            }
            if (!got) {
              on_loaded(*jid, got.error());
              continue;
            }
            auto it = found.find(key);
            if (it == found.end()) {
              on_loaded(*jid, make_error_code(storage::Errc::NotFound));
            } else {
              on_loaded(*jid, std::move(it->second));
            }
          }
          load_next_batch();
        }));
  }

  void on_loaded(const Jid& room_jid, Result<Room::Loaded> loaded) {
    const std::string key = room_jid.bare_str();
    auto it = rooms_.find(key);
    if (it == rooms_.end()) {
      return;
    }
    std::vector<Pending> waiting = std::move(it->second.waiting);
    if (service_.view_ != nullptr) {
      const auto view = service_.view_->get();
      if (!service_.hosted_here(*view, room_jid)) {
        // The partition moved while the room loaded: route what waited anew.
        rooms_.erase(it);
        for (auto& p : waiting) {
          service_.route_clustered(std::move(p.stanza), std::move(p.from), std::move(p.done));
        }
        return;
      }
    }
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

// ---- HA ----

void MucService::attach_cluster(ha::ClusterView& view, ClusterSink& sink,
                                std::chrono::milliseconds park_timeout) {
  view_ = &view;
  sink_ = &sink;
  park_timeout_ = park_timeout;
  park_timer_ = std::make_unique<asio::steady_timer>(shards_.front()->shard().executor());
  expire_parked();
}

bool MucService::hosted_here(const ha::ClusterSnapshot& view, const Jid& room) const {
  return serving_ && view.holder(view.room_partition(room.bare_str())) == view.self;
}

void MucService::route_clustered(XmlElement stanza, Jid from, Completion done) {
  const auto view = view_->get();
  const Jid to = *Jid::parse(stanza.attr("to"));
  const std::string holder = view->holder(view->room_partition(to.bare_str()));
  if (holder == view->self) {
    if (!serving_) {
      ShardRooms& first = *shards_.front();
      if (stanza.attr("type") != "error" && stanza.attr("type") != "result" &&
          !(stanza.name() == "presence" && stanza.attr("type") == "unavailable")) {
        first.deliver({{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")), "wait",
                                                  "service-unavailable",
                                                  "the text-conference service is stopped on "
                                                  "this node"))}});
      }
      return;
    }
    dispatch_here(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  if (!holder.empty() && view->peer_linked) {
    sink_->forward_to_room(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  const std::string partition = view->room_partition(to.bare_str());
  if (!holder.empty() && view->unreachable(partition)) {
    // A network cut, not a move: waiting would hold the sender's session for nothing.
    const std::string_view type = stanza.attr("type");
    if (type != "error" && type != "result" &&
        !(stanza.name() == "presence" && type == "unavailable")) {
      shards_.front()->deliver(
          {{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")), "wait",
                                      "recipient-unavailable",
                                      "the room's node is unreachable from this node (network "
                                      "cut); try again later"))}});
    }
    return;
  }
  park(std::move(stanza), std::move(from), std::move(done));
}

void MucService::park(XmlElement stanza, Jid from, Completion done) {
  std::lock_guard lock(ha_mu_);
  parked_.push_back({std::move(stanza), std::move(from), std::move(done),
                     std::chrono::steady_clock::now() + park_timeout_});
}

void MucService::expire_parked() {
  std::vector<Parked> expired;
  {
    std::lock_guard lock(ha_mu_);
    const auto now = std::chrono::steady_clock::now();
    while (!parked_.empty() && parked_.front().deadline <= now) {
      expired.push_back(std::move(parked_.front()));
      parked_.pop_front();
    }
  }
  ShardRooms& first = *shards_.front();
  for (auto& p : expired) {
    const std::string_view type = p.stanza.attr("type");
    if (type == "error" || type == "result" ||
        (p.stanza.name() == "presence" && type == "unavailable")) {
      continue;
    }
    // Never silently dropped: the sender hears that the room did not come back in time.
    first.deliver({{p.from, to_wire(error_reply(p.stanza, std::string(p.stanza.attr("to")), "wait",
                                                "recipient-unavailable",
                                                "the room is moving between nodes and did not "
                                                "come back in time; send it again"))}});
  }
  park_timer_->expires_after(std::chrono::milliseconds(50));
  park_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) {
      expire_parked();
    }
  });
}

void MucService::on_view_changed() {
  std::deque<Parked> parked;
  {
    std::lock_guard lock(ha_mu_);
    parked.swap(parked_);
  }
  for (auto& p : parked) {
    route_clustered(std::move(p.stanza), std::move(p.from), std::move(p.done));
  }
}

void MucService::track_local_join(const XmlElement& presence, const Jid& from) {
  const Jid to = *Jid::parse(presence.attr("to"));
  const std::string_view type = presence.attr("type");
  std::lock_guard lock(ha_mu_);
  if (type.empty() && !to.resource().empty()) {
    local_joins_[to.bare_str()].insert_or_assign(from.str(), presence);
  } else if (type == "unavailable") {
    if (auto it = local_joins_.find(to.bare_str()); it != local_joins_.end()) {
      it->second.erase(from.str());
      if (it->second.empty()) {
        local_joins_.erase(it);
      }
    }
  }
}

void MucService::dispatch_from_peer(XmlElement stanza, Jid from, Completion done) {
  const auto view = view_->get();
  const auto to = Jid::parse(stanza.attr("to"));
  if (!to || to->local().empty()) {
    dispatch_here(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  if (!hosted_here(*view, *to)) {
    const std::string_view type = stanza.attr("type");
    if (type != "error" && type != "result" &&
        !(stanza.name() == "presence" && type == "unavailable")) {
      sink_->forward_deliveries(
          {{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")), "wait",
                                      "recipient-unavailable",
                                      "the room is moving between nodes; send it again"))}});
    }
    return;
  }
  if (stanza.name() == "presence") {
    std::lock_guard lock(ha_mu_);
    const std::string_view type = stanza.attr("type");
    if (type.empty() && !to->resource().empty()) {
      peer_joins_[to->bare_str()].insert(from.str());
    } else if (type == "unavailable") {
      // A full JID lives on one node at a time: when it has joined from a session here, the
      // peer's leave is its old session's (closed by a move) and must not remove the new one.
      if (auto it = local_joins_.find(to->bare_str());
          it != local_joins_.end() && it->second.count(from.str()) > 0) {
        spdlog::debug("muc: ignoring a stale leave of {} from {} relayed by the peer", from.str(),
                      to->bare_str());
        return;
      }
      if (auto it = peer_joins_.find(to->bare_str()); it != peer_joins_.end()) {
        it->second.erase(from.str());
      }
    }
  }
  dispatch_here(std::move(stanza), std::move(from), std::move(done));
}

void MucService::deliver_from_peer(const Jid& to, Wire wire) {
  if (to.is_bare()) {
    for (const auto& session : router_.sessions_of(to)) {
      session->deliver(wire);
    }
  } else if (auto session = router_.find(to)) {
    session->deliver(std::move(wire));
  }
}

void MucService::peer_occupant_gone(const std::string& room, const std::string& real) {
  if (auto jid = Jid::parse(room); view_ != nullptr && jid && hosted_here(*view_->get(), *jid)) {
    return;  // the room lives here now: the peer's old copy of it speaks for nobody
  }
  std::lock_guard lock(ha_mu_);
  if (auto it = local_joins_.find(room); it != local_joins_.end()) {
    it->second.erase(real);
    if (it->second.empty()) {
      local_joins_.erase(it);
    }
  }
}

void MucService::release_partition(const std::string& partition, std::function<void()> then) {
  auto remaining = std::make_shared<std::atomic<std::size_t>>(shards_.size());
  auto finish = std::make_shared<std::function<void()>>(std::move(then));
  for (auto& s : shards_) {
    asio::post(s->shard().executor(), [rooms = s.get(), partition, remaining, finish] {
      rooms->release(partition);
      if (--*remaining == 0 && *finish) {
        (*finish)();
      }
    });
  }
}

void MucService::preload_partition(const std::string& partition) {
  if (view_ == nullptr) {
    return;
  }
  ShardRooms& first = *shards_.front();
  auto job = [](storage::Store& s) { return s.list_rooms(); };
  first.shard().store().async_call(
      std::move(job),
      asio::bind_executor(
          first.shard().executor(),
          [this, partition](Result<std::vector<storage::RoomRecord>> rooms) {
            if (!rooms) {
              spdlog::warn("muc: cannot list the rooms of partition {} ({}); they load on demand",
                           partition, rooms.error().message());
              return;
            }
            const auto view = view_->get();
            std::vector<std::vector<std::string>> per_shard(shards_.size());
            std::size_t count = 0;
            for (auto& r : *rooms) {
              auto jid = Jid::parse(r.jid);
              // Temporary rooms load on demand (a replayed join): loaded empty, nobody would
              // ever destroy them.
              if (!r.persistent || !jid || view->room_partition(r.jid) != partition ||
                  !hosted_here(*view, *jid)) {
                continue;
              }
              per_shard[shard_index(*jid)].push_back(std::move(r.jid));
              ++count;
            }
            spdlog::info("muc: loading the {} persistent rooms of partition {}", count, partition);
            for (std::size_t i = 0; i < shards_.size(); ++i) {
              if (per_shard[i].empty()) {
                continue;
              }
              ShardRooms* rooms_here = shards_[i].get();
              asio::post(rooms_here->shard().executor(),
                         [rooms_here, keys = std::move(per_shard[i])]() mutable {
                           rooms_here->preload(std::move(keys));
                         });
            }
          }));
}

void MucService::replay_joins(const std::string& partition) {
  std::vector<std::pair<Jid, XmlElement>> joins;
  {
    const auto view = view_->get();
    std::lock_guard lock(ha_mu_);
    for (const auto& [room, users] : local_joins_) {
      if (view->room_partition(room) != partition) {
        continue;
      }
      for (const auto& [full, presence] : users) {
        if (auto jid = Jid::parse(full)) {
          joins.emplace_back(*jid, presence);
        }
      }
    }
  }
  for (auto& [from, presence] : joins) {
    XmlElement p = presence;
    // The occupant already has the history: ask for none (XEP-0045 §7.2.14).
    XmlElement* x = p.child("x", ns::kMuc);
    if (x == nullptr) {
      x = &p.add_child("x", ns::kMuc);
    }
    x->remove_children("history", ns::kMuc);
    x->add_child("history", ns::kMuc).set_attr("maxstanzas", "0");
    route_clustered(std::move(p), from, Completion{});
  }
  if (!joins.empty()) {
    spdlog::info("partition {}: replayed {} room join(s) of local users", partition, joins.size());
  }
}

void MucService::drop_peer_occupants() {
  std::map<std::string, std::set<std::string>> gone;
  {
    std::lock_guard lock(ha_mu_);
    gone.swap(peer_joins_);
  }
  std::size_t n = 0;
  for (const auto& [room, users] : gone) {
    for (const auto& full : users) {
      auto from = Jid::parse(full);
      if (!from) {
        continue;
      }
      XmlElement p("presence", ns::kClient);
      p.set_attr("type", "unavailable").set_attr("from", full).set_attr("to", room);
      dispatch_here(std::move(p), *from, Completion{});
      ++n;
    }
  }
  if (n > 0) {
    spdlog::info("removed {} occupant(s) whose node is gone", n);
  }
}

void MucService::evict_unreachable(const std::string& partition) {
  evict_local(partition, "333");
}

void MucService::evict_local(const std::string& partition, const char* code) {
  std::vector<std::pair<std::string, XmlElement>> evicted;  // user full JID, presence
  {
    const auto view = view_->get();
    std::lock_guard lock(ha_mu_);
    for (auto it = local_joins_.begin(); it != local_joins_.end();) {
      if (!partition.empty() && view->room_partition(it->first) != partition) {
        ++it;
        continue;
      }
      for (auto& [full, presence] : it->second) {
        evicted.emplace_back(full, std::move(presence));
      }
      it = local_joins_.erase(it);
    }
  }
  std::vector<RoomHost::Delivery> out;
  for (const auto& [full, presence] : evicted) {
    auto to = Jid::parse(full);
    if (!to) {
      continue;
    }
    // XEP-0045 §9.9 / status 333: removed because of a technical problem.
    XmlElement p("presence", ns::kClient);
    p.set_attr("from", std::string(presence.attr("to"))).set_attr("to", full);
    p.set_attr("type", "unavailable");
    auto& x = p.add_child("x", ns::kMucUser);
    x.add_child("item", ns::kMucUser).set_attr("affiliation", "none").set_attr("role", "none");
    x.add_child("status", ns::kMucUser).set_attr("code", "110");
    x.add_child("status", ns::kMucUser).set_attr("code", code);
    out.push_back({*to, to_wire(p)});
  }
  if (!out.empty()) {
    spdlog::warn("partition {}: told {} local occupant(s) they left its rooms (status {})",
                 partition.empty() ? "*" : partition, out.size(), code);
    shards_.front()->deliver(std::move(out));
  }
}

void MucService::set_serving(bool serving) {
  const bool was = serving_.exchange(serving);
  if (!was || serving) {
    return;
  }
  if (view_ == nullptr) {
    for (auto& s : shards_) {
      asio::post(s->shard().executor(), [rooms = s.get()] {
        rooms->evict_all();
        rooms->release_all();
      });
    }
    return;
  }
  // In a pair, the rooms move to the peer: only this node's users hear that they are out
  // (332); the peer's users stay joined, and their joins are replayed on the new host.
  const auto view = view_->get();
  for (const auto& p : view->members) {
    if (view->holder(p) == view->self) {
      evict_local(p, "332");
    }
  }
  for (auto& s : shards_) {
    asio::post(s->shard().executor(), [rooms = s.get()] { rooms->release_all(); });
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
