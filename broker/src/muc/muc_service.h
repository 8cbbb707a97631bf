// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
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

#include "muc/room.h"
#include "muc/room_host.h"
#include "muc/types.h"

namespace tc::broker {
class Shard;
class Router;
}  // namespace tc::broker

namespace tc::broker::muc {

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

  /// Live rooms and occupants over all shards (approximate; for status and metrics).
  std::size_t live_rooms() const { return live_rooms_.load(); }

  /// Runs one retention pass now; returns messages removed. Blocking: tests and tools only.
  std::uint64_t purge_expired_for_test();

 private:
  class ShardRooms;
  void dispatch(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  void on_service_stanza(xmpp::XmlElement stanza, xmpp::Jid from, Completion done);
  ShardRooms& rooms_for(const xmpp::Jid& room);
  void schedule_retention();

  const Config& config_;
  std::string domain_;
  std::vector<std::unique_ptr<ShardRooms>> shards_;
  Router& router_;
  std::atomic<std::size_t> live_rooms_{0};
  std::atomic<std::size_t> known_rooms_{0};       // rooms in the store, for muc.max_rooms
  std::atomic<std::size_t> persistent_rooms_{0};  // for muc.max_persistent_rooms
  std::unique_ptr<boost::asio::steady_timer> retention_timer_;
};

/// Deletes archived messages past their room's retention (the room's override, else the
/// service default; 0 keeps forever). Returns how many were removed.
Result<std::uint64_t> purge_expired(storage::Store& store, const Config& config,
                                    storage::UnixMillis now);

}  // namespace tc::broker::muc
