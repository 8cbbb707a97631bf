// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "base/limits.h"
#include "xmpp/jid.h"
#include "xmpp/sasl.h"
#include "xmpp/stream_parser.h"

#include "net/tokens.h"
#include "net/transport.h"
#include "routing/client_stream.h"
#include "routing/stanzas.h"

namespace tc::broker {

class Shard;
struct ServerContext;

/// One client-to-server XMPP stream (RFC 6120): stream negotiation (STARTTLS, SASL, bind),
/// then stanza handling and routing. Shard-affine: every member runs on its shard's thread,
/// except deliver(), close_with() and close_moved(), which post themselves there and may be
/// called from anywhere. Kept alive by its own coroutines (shared_from_this). The code is split
/// by concern: session.cpp (lifecycle, reading, writing, closing), session_auth.cpp
/// (STARTTLS, SASL, registration, bind, XEP-0198), session_stanzas.cpp (stanzas, presence,
/// the server's own IQs).
class Session final : public ClientStream, public std::enable_shared_from_this<Session> {
 public:
  Session(ServerContext& server, Shard& shard, std::shared_ptr<net::Transport> transport);
  ~Session() override;

  /// Starts reading. Call once, on the shard.
  void start();
  /// This connection is counted against its address's limit (AddressCounter); the count is
  /// given back when the session ends.
  void count_address(std::string address) { counted_address_ = std::move(address); }
  /// Answers the stream header with a policy-violation stream error saying `why` (a limit
  /// refused the connection), and ends it.
  void refuse(std::string why) { refused_ = std::move(why); }

  // ClientStream
  void deliver(Wire wire) override;
  void deliver_on_shard(const Wire& wire) override;
  int shard_index() const override;
  void close_with(std::string condition, std::string text = {}) override;
  void close_moved(std::string endpoint, std::string text, std::string extra_xml) override;
  const xmpp::Jid& jid() const override { return jid_; }
  const std::string& moved_in() const override { return moved_in_; }
  bool wants_carbons() const override { return carbons_.load(std::memory_order_relaxed); }
  void answer_probe(const xmpp::Jid& prober) override;

  /// The authenticated username ("" before SASL success).
  const std::string& username() const { return username_; }

 private:
  enum class Phase { Header, Tls, Auth, Bind, Bound, Closed };

  net::Awaitable<void> read_loop();
  net::Awaitable<void> write_loop();
  net::Awaitable<void> on_event(xmpp::StreamEvent& event);
  net::Awaitable<void> on_stream_open(const xmpp::XmlElement& header);
  net::Awaitable<void> on_element(xmpp::XmlElement& element);

  // Negotiation (before the stream is bound).
  net::Awaitable<void> on_starttls();
  net::Awaitable<void> on_sasl(const xmpp::XmlElement& element);
  net::Awaitable<void> on_sasl_auth(const xmpp::XmlElement& auth);
  net::Awaitable<void> on_sasl_response(const xmpp::XmlElement& response);
  net::Awaitable<void> sasl_failure(std::string_view condition, std::string_view text = {});
  void sasl_success(std::string username, std::string additional_data);
  net::Awaitable<void> on_register_iq(const xmpp::XmlElement& iq);
  void on_bind(const xmpp::XmlElement& iq);
  /// The node that holds this node's own partition when it is not this node (failed over,
  /// or cut from the database while the peer serves), else "" (also when nobody holds it).
  std::string own_partition_elsewhere() const;
  /// Ends the stream with see-other-host naming `holder`'s client endpoint (reset when its
  /// endpoint is unknown), with the relogin hint.
  void send_elsewhere(const std::string& holder);
  bool plain_allowed() const;  // PLAIN offered: TLS, or loopback when configured

  // Stanzas after binding.
  net::Awaitable<void> on_stanza(xmpp::XmlElement& stanza);
  void on_sm(const xmpp::XmlElement& element);
  // XEP-0352: while the client says it is inactive, presence it would get is held (the latest
  // per sender) and sent when it is active again; everything else goes at once.
  void on_csi(const xmpp::XmlElement& element);
  bool hold_presence(const Wire& wire);
  void flush_held();
  net::Awaitable<void> on_iq_for_server(const xmpp::XmlElement& iq);
  /// An iq to another user's bare JID, answered by the server on its behalf (vCard, PEP
  /// items, disco; RFC 6121 §8.5.2.1.3).
  net::Awaitable<void> on_iq_for_account(const xmpp::XmlElement& iq, const xmpp::Jid& owner);
  /// A message to a user of this domain: delivered, or stored while the user is offline.
  net::Awaitable<void> on_user_message(xmpp::XmlElement& message, const xmpp::Jid& to);
  net::Awaitable<void> on_presence(xmpp::XmlElement& presence, const std::optional<xmpp::Jid>& to);
  /// Asks the client what its XEP-0115 caps in `presence` stand for (once per hash).
  void ask_caps(const xmpp::XmlElement& presence);
  net::Awaitable<void> on_caps(const xmpp::XmlElement& reply);
  /// A PEP event (a headline from pubsub#event) for a node this client did not ask for.
  bool unwanted_event(const Wire& wire) const;
  net::Awaitable<void> on_password_change(const xmpp::XmlElement& iq);
  void route_to_user(xmpp::XmlElement& stanza, const xmpp::Jid& to);
  void broadcast_own_presence(const xmpp::XmlElement& presence);
  void end_directed_presence(const xmpp::XmlElement& unavailable);
  void track_directed_presence(const xmpp::XmlElement& presence, const xmpp::Jid& to);
  /// A join of `to` would put this connection in more than muc.max_rooms_per_user rooms.
  bool joins_too_many_rooms(const xmpp::Jid& to) const;

  /// Queues for writing; a stanza is also kept until acknowledged when resumption is on.
  void send(Wire wire);
  void send(const xmpp::XmlElement& element);
  /// Queues for writing only (a resumed session's replay, which is kept already).
  void enqueue(Wire wire);
  void send_features();
  /// RFC 7395 framing or RFC 6120's, as the transport speaks.
  net::Framing framing() const { return transport_->framing(); }
  /// Sends a stream error and </stream:stream>, then closes once that is written.
  void stream_error(std::string_view condition, std::string_view text = {});
  void stream_error(std::string_view condition, std::string_view text, std::string_view content,
                    std::string_view extra_xml);
  void close_now();
  void on_closed();
  void count_sent(const Wire& wire);
  /// The client's address without the port (what per-address limits count).
  std::string address() const;
  /// Charges what one read brought against the rate limits; the read loop pauses for the
  /// returned time (back-pressure: TCP's window fills, nothing is refused).
  std::chrono::milliseconds charge(std::size_t bytes, std::size_t stanzas);
  void arm_idle_timer();

  ServerContext& server_;
  Shard& shard_;
  std::shared_ptr<net::Transport> transport_;
  xmpp::StreamParser parser_;
  boost::asio::steady_timer auth_timer_;
  boost::asio::steady_timer close_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer throttle_timer_;
  TokenBucket stanza_rate_;
  TokenBucket byte_rate_;
  LimitClock::time_point last_read_{};
  bool idle_ping_sent_ = false;
  std::string counted_address_;
  std::string refused_;
  std::string stream_id_;
  std::string remote_;
  Phase phase_ = Phase::Header;
  bool header_sent_ = false;
  bool restart_ = false;  // stream restart pending after STARTTLS / SASL success
  bool closing_ = false;
  bool authenticated_ = false;
  std::string username_;
  xmpp::Jid jid_;
  std::string moved_in_;
  bool registered_in_router_ = false;

  // SASL exchange in progress.
  std::optional<xmpp::ScramServer> scram_;
  std::string scram_username_;
  int sasl_failures_ = 0;

  // Presence state (RFC 6121 §4): available after initial presence, priority for routing.
  bool available_ = false;
  int priority_ = 0;
  xmpp::XmlElement last_presence_;  // the last broadcast available presence (probes get it)
  bool waiting_delivered_ = false;  // subscription requests and offline messages sent
  // XEP-0115 / XEP-0163 §4.3.1: which PEP nodes this client wants events of, when it says.
  std::string caps_key_;                               // node#ver last asked about
  std::string caps_query_id_;                          // the last query sent
  bool caps_pending_ = false;                          // its answer has not come yet
  bool last_items_due_ = false;                        // sent once the answer is in
  std::optional<std::set<std::string>> notify_nodes_;  // nullopt = every event
  std::set<std::string> directed_presence_;            // full JIDs sent directed presence

  std::atomic<bool> carbons_{false};  // XEP-0280 enabled (read by other shards' routing)

  // XEP-0352 client state indication.
  static constexpr std::size_t kMaxHeldPresence = 1000;
  bool inactive_ = false;
  std::vector<Wire> held_;                                   // null = superseded
  std::unordered_map<std::string, std::size_t> held_index_;  // sender -> index in held_

  // XEP-0198 stream management.
  bool sm_enabled_ = false;
  std::uint32_t sm_handled_ = 0;  // inbound stanzas fully handled (mod 2^32)
  // Resumption (§5): stanzas sent and not yet acknowledged are kept; a lost connection leaves
  // the session hibernating (bound, in its rooms, keeping what arrives) until a new connection
  // resumes it, within client.resume_timeout, or the timer ends it.
  std::string sm_id_;            // resumption id ("" = not resumable)
  std::uint32_t sm_acked_ = 0;   // the client's last h
  std::deque<Wire> sm_unacked_;  // stanzas sent since, oldest first
  std::size_t sm_unacked_bytes_ = 0;
  bool lost_ = false;         // the connection went away without a stream close
  bool hibernating_ = false;  // lost, waiting to be resumed
  bool resumed_ = false;      // taken over by a newer connection (successor_)
  std::weak_ptr<Session> successor_;
  boost::asio::steady_timer resume_timer_;

  /// What a resuming connection takes over from the session it resumes.
  struct HandOver {
    xmpp::Jid jid;
    std::uint32_t handled = 0;
    std::uint32_t acked = 0;
    std::deque<Wire> unacked;
    std::set<std::string> directed_presence;
    bool available = false;
    int priority = 0;
    xmpp::XmlElement last_presence;
    bool carbons = false;
    bool waiting_delivered = false;
    std::string caps_key;
    std::optional<std::set<std::string>> notify_nodes;
  };
  net::Awaitable<void> on_resume(const xmpp::XmlElement& resume);
  /// Asks `old` (on its shard) for its state; completes on this session's shard.
  net::Awaitable<std::optional<HandOver>> take_over(std::shared_ptr<Session> old, std::uint32_t h);
  /// On this session's shard: gives its state to `successor` (the client acknowledged `h`),
  /// or nullopt when it cannot be resumed by `username`.
  std::optional<HandOver> hand_over(const std::shared_ptr<Session>& successor,
                                    const std::string& username, std::uint32_t h);
  /// Drops what the client acknowledged up to `h`; false when `h` acknowledges more than sent.
  bool sm_ack(std::uint32_t h);
  void hibernate();
  /// Ends a session's presence, rooms and routing (at close, or when hibernation ends).
  void end_session();
  /// The unacknowledged messages of an ending session go to the user's other resources, or
  /// offline storage (XEP-0198 §5: undeliverable, not lost).
  void requeue_unacked();

  // Write queue: one write in flight, bounded in bytes.
  std::deque<Wire> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool close_after_flush_ = false;
};

}  // namespace tc::broker
