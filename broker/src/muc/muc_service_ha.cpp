// SPDX-License-Identifier: Apache-2.0
// MucService in a redundancy group (docs/architecture.md, "High availability"): routing by
// partition, parking, stanzas and deliveries from the peer, partition moves and evictions.
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/namespaces.h"

#include "muc/muc_service.h"
#include "muc/shard_rooms.h"
#include "routing/router.h"

namespace tc::broker::muc {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::Jid;
using xmpp::XmlElement;

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
  if (!serving_) {
    return false;
  }
  if (auto group = group_of(room.bare_str()); group && *group != view.group) {
    return false;  // another group's room
  }
  return view.holder(view.room_partition(room.bare_str())) == view.self;
}

std::optional<std::string> MucService::group_of(const std::string& room) const {
  std::shared_lock lock(placement_mu_);
  if (auto it = placements_.find(room); it != placements_.end()) {
    return it->second;
  }
  return std::nullopt;
}

std::optional<std::string> MucService::partition_of(const ha::ClusterSnapshot& view,
                                                    const std::string& room) const {
  auto group = group_of(room);
  if (!group) {
    return std::nullopt;
  }
  return view.room_partition(room, *group);
}

void MucService::route_clustered(XmlElement stanza, Jid from, Completion done) {
  const auto view = view_->get();
  const Jid to = *Jid::parse(stanza.attr("to"));
  const auto partition = partition_of(*view, to.bare_str());
  if (!partition) {
    resolve_group(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  route_to_partition(*view, *partition, std::move(stanza), std::move(from), std::move(done));
}

void MucService::route_to_partition(const ha::ClusterSnapshot& view, const std::string& partition,
                                    XmlElement stanza, Jid from, Completion done) {
  const std::string holder = view.holder(partition);
  if (holder == view.self) {
    if (!serving_) {
      ShardRooms& first = *shards_.front();
      if (wants_error_reply(stanza)) {
        first.deliver({{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")),
                                                  {ErrorType::Wait, Condition::ServiceUnavailable},
                                                  "the text-conference service is stopped on "
                                                  "this node"))}});
      }
      return;
    }
    dispatch_here(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  // The group's peer over the pair's link; another group's node over the mesh.
  const bool linked = holder == view.peer() ? view.peer_linked : view.mesh_up.count(holder) > 0;
  if (!holder.empty() && linked) {
    sink_->forward_to_room(holder, std::move(stanza), std::move(from), std::move(done));
    return;
  }
  if (!holder.empty() && view.unreachable(partition)) {
    // A network cut, not a move: waiting would hold the sender's session for nothing.
    if (wants_error_reply(stanza)) {
      shards_.front()->deliver(
          {{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")),
                                      Condition::RecipientUnavailable,
                                      "the room's node is unreachable from this node (network "
                                      "cut); try again later"))}});
    }
    return;
  }
  park(std::move(stanza), std::move(from), std::move(done));
}

void MucService::resolve_group(XmlElement stanza, Jid from, Completion done) {
  const auto view = view_->get();
  const Jid to = *Jid::parse(stanza.attr("to"));
  std::string room = to.bare_str();
  // Only a join creates a room: it places the room on a group (rendezvous hashing over the
  // groups; the first claim wins when nodes of two groups race).
  const bool creates =
      stanza.name() == "presence" && stanza.attr("type").empty() && !to.resource().empty();
  ShardRooms& first = *shards_.front();
  auto job = [room, proposed = view->new_room_group(room),
              creates](storage::Store& s) -> Result<std::string> {
    auto found = s.room_group(room);
    if (found || found.error() != storage::Errc::NotFound || !creates) {
      return found;
    }
    return s.claim_room_group(room, proposed);
  };
  first.shard().cluster_store().async_call(
      std::move(job),
      asio::bind_executor(
          first.shard().executor(), [this, room, stanza = std::move(stanza), from = std::move(from),
                                     done = std::move(done)](Result<std::string> group) mutable {
            const auto now = view_->get();
            if (group) {
              {
                std::unique_lock lock(placement_mu_);
                placements_.insert_or_assign(room, *group);
              }
              route_to_partition(*now, now->room_partition(room, *group), std::move(stanza),
                                 std::move(from), std::move(done));
              return;
            }
            if (group.error() == storage::Errc::NotFound) {
              // No such room anywhere: this node's group answers (item-not-found and the like).
              route_to_partition(*now, now->room_partition(room), std::move(stanza),
                                 std::move(from), std::move(done));
              return;
            }
            spdlog::warn("muc: cannot look up the group of {}: {}", room, group.error().message());
            if (wants_error_reply(stanza)) {
              shards_.front()->deliver(
                  {{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")),
                                              {ErrorType::Wait, Condition::ServiceUnavailable},
                                              "the cluster database is unavailable; try again "
                                              "later"))}});
            }
          }));
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
    if (!wants_error_reply(p.stanza)) {
      continue;
    }
    // Never silently dropped: the sender hears that the room did not come back in time.
    first.deliver({{p.from, to_wire(error_reply(p.stanza, std::string(p.stanza.attr("to")),
                                                Condition::RecipientUnavailable,
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

void MucService::dispatch_from_peer(const std::string& node, XmlElement stanza, Jid from,
                                    Completion done) {
  const auto view = view_->get();
  const auto to = Jid::parse(stanza.attr("to"));
  if (!to || to->local().empty()) {
    dispatch_here(std::move(stanza), std::move(from), std::move(done));
    return;
  }
  if (!hosted_here(*view, *to)) {
    if (wants_error_reply(stanza)) {
      sink_->forward_deliveries(
          {{from, to_wire(error_reply(stanza, std::string(stanza.attr("to")),
                                      Condition::RecipientUnavailable,
                                      "the room is moving between nodes; send it again"))}});
    }
    return;
  }
  if (stanza.name() == "presence") {
    std::lock_guard lock(ha_mu_);
    const std::string_view type = stanza.attr("type");
    if (type.empty() && !to->resource().empty()) {
      peer_joins_[to->bare_str()].insert_or_assign(from.str(), node);
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
      if (partition_of(*view, room) != partition) {
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

void MucService::drop_node_occupants(const std::string& node) {
  std::vector<std::pair<std::string, std::string>> gone;  // room, full JID
  {
    std::lock_guard lock(ha_mu_);
    for (auto room = peer_joins_.begin(); room != peer_joins_.end();) {
      for (auto user = room->second.begin(); user != room->second.end();) {
        if (user->second == node) {
          gone.emplace_back(room->first, user->first);
          user = room->second.erase(user);
        } else {
          ++user;
        }
      }
      room = room->second.empty() ? peer_joins_.erase(room) : std::next(room);
    }
  }
  for (const auto& [room, full] : gone) {
    auto from = Jid::parse(full);
    if (!from) {
      continue;
    }
    XmlElement p("presence", ns::kClient);
    p.set_attr("type", "unavailable").set_attr("from", full).set_attr("to", room);
    dispatch_here(std::move(p), *from, Completion{});
  }
  if (!gone.empty()) {
    spdlog::info("removed {} occupant(s) whose node {} is gone", gone.size(), node);
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
      if (!partition.empty() && partition_of(*view, it->first) != partition) {
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

}  // namespace tc::broker::muc
