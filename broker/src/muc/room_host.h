// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "base/histogram.h"
#include "broker/config.h"
#include "storage/records.h"
#include "xmpp/jid.h"

#include "routing/stanzas.h"

namespace tc::broker {
class StoreWorker;
}

namespace tc::broker::muc {

/// Latencies the rooms report at /metrics (rendered by the SRM's admin backend).
struct MucMetrics {
  LatencyHistogram commit;   ///< a room write: handed to the store worker -> committed
  LatencyHistogram archive;  ///< a MAM query: handed to the store worker -> rows back
  LatencyHistogram fanout;   ///< a broadcast: handed out -> queued on a recipient's shard
};

/// What a Room needs from the node, so that rooms can be tested without sockets. All
/// methods are called on the room's shard.
class RoomHost {
 public:
  virtual ~RoomHost() = default;

  /// One stanza to one user's session (full JID).
  struct Delivery {
    xmpp::Jid to;
    Wire wire;
  };
  /// Hands stanzas to the users' sessions, grouped so that each destination shard gets one
  /// post (batched fan-out).
  virtual void deliver(std::vector<Delivery> deliveries) = 0;
  /// The store worker of the room's shard.
  virtual StoreWorker& store() = 0;
  /// The room's shard executor: completions of store work come back here.
  virtual boost::asio::any_io_executor executor() = 0;
  virtual const Config& config() const = 0;
  /// Service administrators (muc.admins) have owner rights everywhere.
  virtual bool is_service_admin(const xmpp::Jid& bare) const = 0;
  /// Counts a room becoming persistent against muc.max_persistent_rooms; false when the
  /// service is full. `release_persistent_room` gives the slot back.
  virtual bool reserve_persistent_room() = 0;
  virtual void release_persistent_room() = 0;
  /// The room has no occupants left and may be unloaded (or deleted, if temporary).
  virtual void on_room_empty(const xmpp::Jid& room) = 0;
  /// The room was destroyed by its owner.
  virtual void on_room_destroyed(const xmpp::Jid& room) = 0;

  /// HA: the partition a room belongs to (its tc_rooms.host_node), and the fence every write
  /// of the room carries (nullopt on a node without a redundancy group). When this node does
  /// not hold the partition the fence has epoch -1, so the write fails rather than go
  /// unfenced.
  virtual std::string partition_of(const xmpp::Jid& room) const = 0;
  virtual std::optional<storage::Fence> fence_for(const xmpp::Jid& room) const = 0;
  /// Where latencies are counted; null (the default) counts nothing.
  virtual MucMetrics* metrics() { return nullptr; }
  /// An occupant (real full JID) left the room for any reason (leave, kick, ban, destroy).
  virtual void on_occupant_gone(const xmpp::Jid& room, const xmpp::Jid& real) {
    (void)room, (void)real;
  }
};

}  // namespace tc::broker::muc
