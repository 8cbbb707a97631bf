// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "latency_stats.h"

namespace tc::bench {

using Clock = std::chrono::steady_clock;

/// What to run; filled from the command line.
struct BenchOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5222;
  std::string domain = "localhost";
  std::string muc_domain;   ///< "" = "conference." + domain
  std::size_t clients = 0;  ///< connections; 0 = rooms * occupants (one room per client)
  std::size_t rooms = 1;
  std::size_t occupants = 10;  ///< per room
  std::size_t senders = 1;     ///< per room: the first `senders` occupants of each room
  std::size_t messages = 100;  ///< per sender, unless duration_s > 0
  double duration_s = 0;       ///< > 0: send for this long instead of `messages`
  double rate = 0;             ///< messages/s per sender; 0 = closed loop with `window`
  std::size_t window = 1;      ///< closed loop: messages in flight per sender
  std::size_t body_bytes = 64;
  bool register_accounts = false;  ///< XEP-0077 in-band registration before logging in
  std::string user_prefix = "bench";
  std::string room_prefix = "bench";
  std::string password = "bench-password";
  std::size_t threads = 1;               ///< I/O threads, one io_context each
  std::size_t connect_concurrency = 64;  ///< logins in progress at once, over all threads
  double setup_timeout_s = 120;
  double drain_timeout_s = 10;  ///< give up when nothing arrives for this long

  std::string conference_domain() const {
    return muc_domain.empty() ? "conference." + domain : muc_domain;
  }
};

/// Who sits where. Occupant slot k = room * occupants + occupant belongs to client
/// k % clients, so a client holds at most one slot per room as long as occupants <= clients.
/// The first `senders` occupants of each room send; stream = room * senders + occupant
/// names one sender's sequence of messages.
class Plan {
 public:
  struct Membership {
    std::size_t room;
    std::size_t occupant;
  };

  explicit Plan(const BenchOptions& options);

  std::size_t clients() const { return clients_; }
  std::size_t rooms() const { return rooms_; }
  std::size_t occupants() const { return occupants_; }
  std::size_t senders() const { return senders_; }
  std::size_t streams() const { return rooms_ * senders_; }

  std::size_t client_of(std::size_t room, std::size_t occupant) const {
    return (room * occupants_ + occupant) % clients_;
  }
  std::size_t stream_of(std::size_t room, std::size_t occupant) const {
    return room * senders_ + occupant;
  }
  std::size_t room_of_stream(std::size_t stream) const { return stream / senders_; }
  std::size_t occupant_of_stream(std::size_t stream) const { return stream % senders_; }
  std::vector<Membership> memberships(std::size_t client) const;

  std::string user(std::size_t client) const;
  std::string room_jid(std::size_t room) const;

 private:
  std::size_t clients_;
  std::size_t rooms_;
  std::size_t occupants_;
  std::size_t senders_;
  std::string user_prefix_;
  std::string room_prefix_;
  std::string conference_domain_;
};

/// Counters every I/O thread touches, for the main thread to see progress and decide when
/// the run is over. The exact figures come from ThreadStats after the threads have stopped.
struct SharedCounters {
  std::atomic<std::int64_t> in_flight{0};  ///< sent, neither reflected nor refused yet
  std::atomic<std::uint64_t> expected_deliveries{0};
  std::atomic<std::uint64_t> deliveries{0};
  std::atomic<std::uint64_t> progress{0};  ///< bumps on every reflection or delivery
  std::atomic<std::size_t> senders_active{0};
  std::atomic<std::size_t> setup_remaining{0};
  std::atomic<std::size_t> setup_failed{0};
  std::atomic<std::size_t> disconnects{0};
  std::atomic<bool> stop_sending{false};
};

/// What every client of the run shares. `start` is written by the main thread before it
/// posts the start of sending, which orders the write before any read.
struct RunContext {
  const BenchOptions& options;
  const Plan& plan;
  SharedCounters& shared;
  boost::asio::ip::tcp::endpoint endpoint;
  Clock::time_point start{};
};

/// Per I/O thread results; only that thread writes them.
struct ThreadStats {
  LatencyStats commit;    ///< send -> reflection at the sender (durable commit included)
  LatencyStats delivery;  ///< send -> arrival at another occupant
  LatencyStats setup;     ///< connect -> every room joined, per client
  std::uint64_t sent = 0;
  std::uint64_t committed = 0;  ///< reflections received
  std::uint64_t refused = 0;    ///< error replies to our messages
  std::uint64_t delivered = 0;  ///< bench messages received by occupants other than the sender
  std::uint64_t out_of_order = 0;
  std::uint64_t unexpected = 0;  ///< bench messages that did not fit the plan
  std::map<std::string, std::uint64_t> errors;
  Clock::time_point last_commit{};
  Clock::time_point last_delivery{};

  void merge(const ThreadStats& other);
};

}  // namespace tc::bench
