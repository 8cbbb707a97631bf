// SPDX-License-Identifier: Apache-2.0
#include "muc/shard_rooms.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/namespaces.h"

#include "routing/router.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

XmlElement error_reply(const XmlElement& stanza, const std::string& from, const StanzaError& error,
                       std::string_view text) {
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
  reply.add_child(xmpp::make_error_element(error, text));
  return reply;
}

void MucService::ShardRooms::handle(XmlElement stanza, Jid from, Completion done) {
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

void MucService::ShardRooms::deliver(std::vector<Delivery> deliveries) {
  // One post per destination shard, in order (batched fan-out).
  std::vector<std::vector<std::pair<std::shared_ptr<ClientStream>, Wire>>> by_shard(
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
    asio::post(service_.shards_[i]->shard().executor(),
               [batch = std::move(by_shard[i]), fanout = &service_.metrics_.fanout,
                started = std::chrono::steady_clock::now()] {
                 for (const auto& [session, wire] : batch) {
                   session->deliver_on_shard(wire);
                 }
                 fanout->observe(std::chrono::steady_clock::now() - started);
               });
  }
}

bool MucService::ShardRooms::is_service_admin(const Jid& bare) const {
  const std::string b = bare.bare_str();
  for (const auto& admin : service_.config_.muc_admins) {
    if (admin == b) {
      return true;
    }
  }
  return false;
}

bool MucService::ShardRooms::reserve_persistent_room() {
  auto n = service_.persistent_rooms_.load();
  do {
    if (n >= service_.config_.muc_max_persistent_rooms) {
      return false;
    }
  } while (!service_.persistent_rooms_.compare_exchange_weak(n, n + 1));
  return true;
}

std::string MucService::ShardRooms::partition_of(const Jid& room) const {
  if (service_.view_ == nullptr) {
    return service_.config_.node_name;
  }
  return service_.view_->get()->room_partition(room.bare_str());
}

std::optional<storage::Fence> MucService::ShardRooms::fence_for(const Jid& room) const {
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

void MucService::ShardRooms::on_occupant_gone(const Jid& room, const Jid& real) {
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

void MucService::ShardRooms::release(const std::string& partition) {
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

std::vector<MucService::LiveRoom> MucService::ShardRooms::live_rooms() const {
  std::vector<LiveRoom> out;
  for (const auto& [key, entry] : rooms_) {
    if (!entry.loading && entry.room) {
      out.push_back({key, entry.room->occupant_count()});
    }
  }
  return out;
}

std::shared_ptr<Room> MucService::ShardRooms::live(const std::string& key) {
  auto it = rooms_.find(key);
  return (it == rooms_.end() || it->second.loading) ? nullptr : it->second.room;
}

void MucService::ShardRooms::on_room_empty(const Jid& room) {
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

void MucService::ShardRooms::on_room_destroyed(const Jid& room) {
  asio::post(shard_.executor(), [this, key = room.bare_str()] {
    if (rooms_.erase(key) > 0) {
      --service_.live_rooms_;
      --service_.known_rooms_;
    }
  });
}

void MucService::ShardRooms::release_all() {
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

void MucService::ShardRooms::preload(std::vector<std::string> keys) {
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

void MucService::ShardRooms::evict_all() {
  for (auto& [key, entry] : rooms_) {
    if (entry.room) {
      entry.room->evict_all("the service is shutting down");
    }
  }
}

void MucService::ShardRooms::request_load(const std::string& key) {
  load_queue_.push_back(key);
  if (!load_in_flight_) {
    load_in_flight_ = true;
    // Posted: stanzas already queued on this shard join the same batch.
    asio::post(shard_.executor(), [this] { load_next_batch(); });
  }
}

void MucService::ShardRooms::load_next_batch() {
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
            found.emplace(std::move(key), Room::Loaded{std::move(b.room), std::move(b.affiliations),
                                                       std::move(b.recent)});
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

void MucService::ShardRooms::on_loaded(const Jid& room_jid, Result<Room::Loaded> loaded) {
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
      bounce(p.stanza, {ErrorType::Wait, Condition::InternalServerError},
             "the room cannot be loaded now");
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
        bounce(p.stanza, Condition::ItemNotFound, "no such room");
      } else if (p.stanza.attr("type").empty()) {
        // XEP-0045 §7.2.1: a join needs a nickname; a new room is not created without one.
        bounce(p.stanza, Condition::JidMalformed, "a nickname is required");
      }
      continue;
    }
    if (service_.known_rooms_.load() >= service_.config_.muc_max_rooms) {
      bounce(p.stanza, Condition::ResourceConstraint, "the service has reached its room limit");
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

void MucService::ShardRooms::route(const std::shared_ptr<Room>& room, XmlElement stanza, Jid from,
                                   Completion done) {
  if (stanza.name() == "presence") {
    room->on_presence(stanza, from, std::move(done));
  } else if (stanza.name() == "message") {
    room->on_message(stanza, from, std::move(done));
  } else {
    room->on_iq(stanza, from, std::move(done));
  }
}

void MucService::ShardRooms::bounce(const XmlElement& stanza, const StanzaError& error,
                                    std::string_view text) {
  if (stanza.attr("type") == "error" || stanza.attr("type") == "result") {
    return;
  }
  const auto from = Jid::parse(stanza.attr("from"));
  if (!from) {
    return;
  }
  deliver({{*from, to_wire(error_reply(stanza, std::string(stanza.attr("to")), error, text))}});
}

}  // namespace tc::broker::muc
