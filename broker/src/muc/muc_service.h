// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "storage/store.h"
#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

#include "ha/cluster_view.h"
#include "muc/room.h"
#include "muc/room_host.h"
#include "muc/types.h"

namespace tc::broker {
class Shard;
class Router;
}  // namespace tc::broker

namespace tc::broker::muc {

/// A stanza error answering `stanza` on behalf of the service or a room at `from`, addressed
/// to the stanza's sender; a presence error carries an empty MUC <x/>.
xmpp::XmlElement error_reply(const xmpp::XmlElement& stanza, const std::string& from,
                             const StanzaError& error, std::string_view text = {});

/// Where MucService sends what it cannot handle on this node (HA; implemented by SRM's
/// node-to-node link). Called on any shard.
class ClusterSink {
 public:
  virtual ~ClusterSink() = default;
  /// A local user's stanza for a room `node` hosts (the peer, or a node of another group).
  /// `done` completes when that room has handled it (for a groupchat message: after its
  /// commit) or the link gave up.
  virtual void forward_to_room(const std::string& node, xmpp::XmlElement stanza, xmpp::Jid from,
                               Completion done) = 0;
  /// Room output for users whose sessions are not on this node.
  virtual void forward_deliveries(std::vector<RoomHost::Delivery> deliveries) = 0;
  /// A peer user left a room hosted here (kick, ban, destroy, leave).
  virtual void forward_gone(const xmpp::Jid& room, const xmpp::Jid& real) = 0;
};

/// The text-conference service at the conference domain. Rooms are spread over the shards
/// by a stable hash of the bare room JID; each shard keeps a registry of its live rooms,
/// loads a room from the store on first use, and unloads it when the last occupant leaves.
/// dispatch() may be called from any shard; it completes on the caller's executor once the
/// room has fully handled the stanza (for a groupchat message: after the commit).
class MucService {
 public:
  MucService(const Config& config, std::vector<Shard*> shards, Router& router);
  ~MucService();

  const std::string& domain() const { return domain_; }

  /// Handles a stanza a local user sent to the conference domain. `from` is the sender's full
  /// JID; the stanza's 'to' is already validated and normalised.
  template <class Token>
  auto async_dispatch(xmpp::XmlElement stanza, xmpp::Jid from, Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler, xmpp::XmlElement st, xmpp::Jid f) {
          auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
          Completion done([h = std::move(handler), w = std::move(work)]() mutable {
            auto ex = w.get_executor();
            boost::asio::post(ex, std::move(h));
            w.reset();
          });
          dispatch(std::move(st), std::move(f), std::move(done));
        },
        token, std::move(stanza), std::move(from));
  }

  /// Starts the archive retention job (when any retention is configured).
  void start();
  /// Tells every occupant of every live room that the service is going away (status 332),
  /// then calls `then` (on some shard) once every eviction has been handed to the sessions'
  /// shards, so that a session closed afterwards still sends its 332 first.
  void shutdown(std::function<void()> then);

  // ---- HA (docs/architecture.md, "High availability") ----
  /// Joins a redundancy group: rooms are then routed by partition (ClusterSnapshot), and
  /// what the peer hosts goes through `sink`. Stanzas for a partition nobody serves right
  /// now wait up to `park_timeout`, then get an error. Call before start().
  void attach_cluster(ha::ClusterView& view, ClusterSink& sink,
                      std::chrono::milliseconds park_timeout);
  /// A stanza `node` (the peer or another group's node) forwarded for a room hosted here;
  /// `from` is that node's user's full JID.
  void dispatch_from_peer(const std::string& node, xmpp::XmlElement stanza, xmpp::Jid from,
                          Completion done);
  /// Room output the peer's rooms send to users on this node.
  void deliver_from_peer(const xmpp::Jid& to, Wire wire);
  /// The peer says one of its users left a room hosted there.
  void peer_occupant_gone(const std::string& room, const std::string& real);
  /// SRM published a new view: re-route parked stanzas.
  void on_view_changed();
  /// Unloads the rooms of `partition` without telling their occupants (they stay joined;
  /// their joins are replayed to the new host), then calls `then` on some shard.
  void release_partition(const std::string& partition, std::function<void()> then);
  /// This node now hosts `partition` (takeover, fallback): loads all its persistent rooms from the
  /// database at once (configuration, affiliations, subject, recent history), in batches,
  /// instead of one load per room on its first stanza.
  void preload_partition(const std::string& partition);
  /// Replays the joins of local users in the rooms of `partition` (after it moved), so that
  /// they stay occupants on the room's new host. History is not sent again.
  void replay_joins(const std::string& partition);
  /// `node` is gone (failed over, stopped): its users leave the rooms hosted here
  /// (unavailable presence).
  void drop_node_occupants(const std::string& node);
  /// Local users in rooms of `partition`, which nobody reachable serves, are told they are
  /// no longer in them (XEP-0045 status 333) and forgotten.
  void evict_unreachable(const std::string& partition);
  /// Critical service stop/start (drills): stop evicts every occupant with 332 and refuses
  /// stanzas for rooms until start.
  void set_serving(bool serving);
  bool serving() const { return serving_.load(); }
  struct LiveRoom {
    std::string jid;  ///< bare room JID
    std::size_t occupants = 0;
  };
  /// The rooms live on this node; `done` runs on some shard.
  void list_live(std::function<void(std::vector<LiveRoom>)> done);
  /// Occupants (joins) of local users, over all rooms (for status).
  std::size_t local_joins() const;

  /// Live rooms and occupants over all shards (approximate; for status and metrics).
  std::size_t live_rooms() const { return live_rooms_.load(); }
  /// Commit, MAM and fan-out latencies of every room of this node.
  const MucMetrics& metrics() const { return metrics_; }

  /// Runs one retention pass now; returns messages removed. Blocking: tests and tools only.
  std::uint64_t purge_expired_for_test();

 private:
  class ShardRooms;
  void dispatch(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void on_service_stanza(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  std::size_t shard_index(const xmpp::Jid& room) const;
  ShardRooms& rooms_for(const xmpp::Jid& room);
  void schedule_retention();
  void dispatch_here(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void route_clustered(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void route_to_partition(const ha::ClusterSnapshot& view, const std::string& partition,
                          xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void park(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void expire_parked();
  /// Tells local users in the rooms of `partition` ("" = every room) that they are out, with
  /// XEP-0045 status `code`, and forgets their joins.
  void evict_local(const std::string& partition, const char* code);
  void track_local_join(const xmpp::XmlElement& presence, const xmpp::Jid& from);
  bool hosted_here(const ha::ClusterSnapshot& view, const xmpp::Jid& room) const;
  /// The group hosting `room` as far as this node knows (the cache of the cluster database's
  /// placements); nullopt when not cached.
  std::optional<std::string> group_of(const std::string& room) const;
  /// The partition of `room` in its group; nullopt when its group is not known here.
  std::optional<std::string> partition_of(const ha::ClusterSnapshot& view,
                                          const std::string& room) const;
  /// Looks the room's group up in the cluster database (placing a new room that a join
  /// creates), caches it and routes the stanza again.
  void resolve_group(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);

  struct Parked {
    xmpp::XmlElement stanza;
    xmpp::Jid from;
    Completion done;
    std::chrono::steady_clock::time_point deadline;
  };

  const Config& config_;
  std::string domain_;
  std::vector<std::unique_ptr<ShardRooms>> shards_;
  Router& router_;
  std::atomic<std::size_t> live_rooms_{0};
  MucMetrics metrics_;
  std::atomic<std::size_t> known_rooms_{0};       // rooms in the store, for muc.max_rooms
  std::atomic<std::size_t> persistent_rooms_{0};  // for muc.max_persistent_rooms
  std::unique_ptr<boost::asio::steady_timer> retention_timer_;

  // HA
  ha::ClusterView* view_ = nullptr;
  ClusterSink* sink_ = nullptr;
  std::chrono::milliseconds park_timeout_{0};
  std::atomic<bool> serving_{true};
  mutable std::mutex ha_mu_;
  // room bare JID -> local user's full JID -> its latest presence to the room
  std::map<std::string, std::map<std::string, xmpp::XmlElement>> local_joins_;
  // room bare JID -> full JID of a user of another node in a room hosted here -> that node
  std::map<std::string, std::map<std::string, std::string>> peer_joins_;
  // room bare JID -> the group hosting it (multi-group clusters; rooms never change group)
  mutable std::shared_mutex placement_mu_;
  std::unordered_map<std::string, std::string> placements_;
  std::deque<Parked> parked_;
  std::unique_ptr<boost::asio::steady_timer> park_timer_;
};

/// Deletes archived messages past their room's retention (the room's override, else the
/// service default; 0 keeps forever). Returns how many were removed.
Result<std::uint64_t> purge_expired(storage::Store& store, const Config& config,
                                    storage::UnixMillis now);

}  // namespace tc::broker::muc
