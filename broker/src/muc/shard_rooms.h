// SPDX-License-Identifier: Apache-2.0
// MucService's rooms on one shard (shard_rooms.cpp). Private to the muc service files.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

#include "muc/muc_service.h"
#include "muc/room.h"
#include "muc/room_host.h"
#include "shard/shard.h"

namespace tc::broker::muc {

/// The live rooms of one shard: the RoomHost they run on, their registry, and their loading
/// (in batches) from the store. Every method runs on the shard.
class MucService::ShardRooms final : public RoomHost {
 public:
  ShardRooms(MucService& service, Shard& shard) : service_(service), shard_(shard) {}

  /// On the shard: routes a stanza to its room, loading the room first if needed.
  void handle(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);

  // RoomHost
  void deliver(std::vector<Delivery> deliveries) override;
  StoreWorker& store() override { return shard_.store(); }
  boost::asio::any_io_executor executor() override { return shard_.executor(); }
  const Config& config() const override { return service_.config_; }
  bool is_service_admin(const xmpp::Jid& bare) const override;
  bool reserve_persistent_room() override;
  void release_persistent_room() override { --service_.persistent_rooms_; }
  void on_room_empty(const xmpp::Jid& room) override;
  void on_room_destroyed(const xmpp::Jid& room) override;
  std::string partition_of(const xmpp::Jid& room) const override;
  std::optional<storage::Fence> fence_for(const xmpp::Jid& room) const override;
  void on_occupant_gone(const xmpp::Jid& room, const xmpp::Jid& real) override;
  MucMetrics* metrics() override { return &service_.metrics_; }

  /// Drops the rooms of `partition` from this shard without a word to their occupants.
  void release(const std::string& partition);
  /// Drops every live room (the service stops serving).
  void release_all();
  std::vector<LiveRoom> live_rooms() const;
  /// The room object, when it is live on this shard.
  std::shared_ptr<Room> live(const std::string& key);
  /// On the shard: loads these rooms (this shard's share of a partition it now hosts);
  /// rooms already loaded or loading are skipped.
  void preload(std::vector<std::string> keys);
  /// Every occupant of every room here leaves with status 332.
  void evict_all();
  Shard& shard() { return shard_; }

 private:
  struct Pending {
    xmpp::XmlElement stanza;
    xmpp::Jid from;
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
  void request_load(const std::string& key);
  void load_next_batch();
  void on_loaded(const xmpp::Jid& room_jid, Result<Room::Loaded> loaded);
  void route(const std::shared_ptr<Room>& room, xmpp::XmlElement stanza, xmpp::Jid from,
             Completion done);
  void bounce(const xmpp::XmlElement& stanza, const StanzaError& error, std::string_view text);

  MucService& service_;
  Shard& shard_;
  std::unordered_map<std::string, Entry> rooms_;
};

}  // namespace tc::broker::muc
