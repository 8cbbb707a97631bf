// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/admin_server.h"
#include "ha/cluster_settings.h"
#include "ha/cluster_view.h"
#include "ha/peer_link.h"
#include "ha/states.h"
#include "muc/muc_service.h"
#include "net/tokens.h"
#include "routing/router.h"

namespace tc::broker {
struct ServerContext;
class StoreWorker;
}  // namespace tc::broker

namespace tc::broker::ha {

/// The critical services of a node (SPEC.md section 2).
enum class Service { Router, TextConference, Database, Authentication };
inline constexpr Service kServices[] = {Service::Router, Service::TextConference, Service::Database,
                                        Service::Authentication};
std::string_view to_string(Service s);
std::optional<Service> service_from(std::string_view name);

/// The Server Recovery Manager: heartbeats with the peer, the lease on each partition, the
/// state machine of SPEC.md section 3, takeover and takeback, and the admin API's backend.
/// Runs on the control thread; every member is touched only there.
class Srm final : public admin::Backend, public muc::ClusterSink, public RemoteRoutes {
 public:
  /// What SRM asks of the node (implemented by Server).
  struct Hooks {
    /// Opens (true) or closes (false) the client listener; closing ends every client stream.
    std::function<void(bool)> set_router;
    /// Disconnects, with see-other-host naming `endpoint`, every session of this node when
    /// `partition` is "" (this node stops serving), else the sessions that came here because
    /// `partition` was failed over to this node (it is handed back).
    std::function<void(const std::string& partition, const std::string& endpoint)> move_users;
    /// Client sessions open on this node.
    std::function<std::size_t()> users_connected;
    /// A stanza another node forwarded for this node's sessions of `to`; `bounce`: answer
    /// its sender with an error when there is none.
    std::function<void(const xmpp::XmlElement& stanza, const xmpp::Jid& to, bool bounce)>
        deliver_user;
    /// Closes this node's session of `full` with <conflict/>: a newer one is bound on `node`.
    std::function<void(const xmpp::Jid& full, const std::string& node)> close_replaced;
  };

  Srm(boost::asio::io_context& control, ServerContext& server, StoreWorker& store,
      ClusterView& view, Hooks hooks);
  ~Srm() override;

  /// Reads the group and the cluster settings (blocking, at start-up). Without a group this
  /// node stands alone: state Unknown, no link, no leases. Throws on a bad setting.
  void configure();
  /// Binds the service port and starts heartbeats, leases and the state machine.
  void start();
  /// A clean stop: hands this node's users and rooms to a healthy peer (which reports
  /// Peer Reboot), then calls `then`. Bounded by the heartbeat timeout.
  void shutdown(std::function<void()> then);

  bool clustered() const { return clustered_; }
  /// How long a stanza for a moving room may wait for its new host.
  std::chrono::milliseconds park_timeout() const {
    return settings_.heartbeat_timeout * 2 + std::chrono::seconds(1);
  }
  State state() const { return state_; }
  Reason reason() const { return reason_; }
  std::uint16_t service_port() const { return link_ ? link_->port() : 0; }

  // admin::Backend
  void handle(const admin::Request& request, admin::Respond respond) override;

  // muc::ClusterSink (called on any shard)
  void forward_to_room(xmpp::XmlElement stanza, xmpp::Jid from, muc::Completion done) override;
  void forward_deliveries(std::vector<muc::RoomHost::Delivery> deliveries) override;
  void forward_gone(const xmpp::Jid& room, const xmpp::Jid& real) override;

  // RemoteRoutes (called on any shard): the sessions directory and stanzas for users whose
  // sessions are on the peer.
  void announce(const xmpp::Jid& full, std::int64_t bound_at, bool bound) override;
  void forward_to_user(const std::string& node, const xmpp::Jid& to, const xmpp::XmlElement& stanza,
                       bool bounce) override;

  /// Whether the authentication critical service is running (sessions refuse SASL if not).
  bool auth_serving() const { return !stopped_[static_cast<int>(Service::Authentication)]; }

 private:
  struct PeerInfo {
    bool heard = false;
    std::chrono::steady_clock::time_point last_heard{};
    State state = State::Unknown;
    Reason reason = Reason::Unknown;
    std::map<std::string, std::string> services;
    std::size_t rooms = 0;
    std::size_t users = 0;
    std::int64_t epoch = 0;
    bool rebooting = false;                              // it said it is shutting down cleanly
    bool hears_us = true;                                // its last heartbeat said it hears ours
    std::chrono::steady_clock::time_point deaf_since{};  // since when it does not
  };
  /// A local user's stanza forwarded to a room on the peer, until the peer's `done`.
  struct InFlight {
    xmpp::XmlElement stanza;
    muc::Completion done;  // fires when destroyed: the session reads its next stanza
    std::chrono::steady_clock::time_point sent;
  };
  struct Held {
    std::int64_t epoch = 0;
    std::chrono::steady_clock::time_point renewed{};  // when the last successful renew was sent
  };

  net::Awaitable<void> run();
  net::Awaitable<void> tick();
  net::Awaitable<void> heartbeat_loop();
  net::Awaitable<void> evaluate();
  net::Awaitable<bool> take_over(std::string partition, Reason reason, bool handed);
  net::Awaitable<void> fail_over(Reason reason, bool admin);
  net::Awaitable<void> fall_back(Reason reason);
  net::Awaitable<void> give_back(std::string partition, Reason reason,
                                 std::function<void(bool, std::string)> reply);
  // Coroutine entry points take everything by value (a lambda's captures would die with it).
  net::Awaitable<void> adopt(std::string id, std::string partition, Reason reason, bool handed);
  net::Awaitable<void> release_for_peer(std::string id, std::string partition, Reason reason);
  net::Awaitable<void> admin_failover(admin::Respond respond);
  net::Awaitable<void> admin_fallback(admin::Respond respond);
  net::Awaitable<void> shutdown_task(std::function<void()> then);
  net::Awaitable<void> recover_local();
  net::Awaitable<void> self_fence(std::string partition, Reason reason);

  void set_state(State s, Reason r);
  void publish();
  void send_heartbeat();
  void on_link_element(PeerLink::Channel channel, xmpp::XmlElement element);
  void on_control(const xmpp::XmlElement& ctl);
  void on_data(xmpp::XmlElement element);
  void on_data_link(bool up);
  /// Answers the senders of forwarded stanzas whose fate is unknown (recipient-unavailable)
  /// and releases their sessions.
  void fail_in_flight(std::vector<InFlight> stanzas, std::string_view why);
  /// Heartbeat timer: resets a link the peer has been silent on for the heartbeat timeout and
  /// gives up on forwarded stanzas older than it, so that a cut network never holds a session.
  void check_link_liveness();
  /// Tells the peer every session of this node (after a reset), so its directory is exact.
  void send_sessions();
  void on_session_frame(const xmpp::XmlElement& element);
  void reply_ctl(const std::string& id, bool ok, const std::string& error, unsigned status = 409);
  using CtlReply = std::function<void(bool ok, std::string error, const xmpp::XmlElement&)>;
  void send_ctl(xmpp::XmlElement ctl, CtlReply reply);
  struct CtlResult {
    bool ok = false;
    std::string error;  // the peer's message, or why there was no answer
    xmpp::XmlElement reply;
  };
  /// send_ctl as a coroutine: the peer's ctl-reply, or why there was none.
  net::Awaitable<CtlResult> await_ctl(xmpp::XmlElement ctl);
  bool peer_alive() const;
  bool service_running(Service s) const;
  std::string service_status(Service s) const;
  std::optional<Service> first_down_service() const;
  std::string client_endpoint_of(const std::string& node) const;
  void set_service(Service s, bool run);
  void refresh_registry();

  // admin
  void admin_status(admin::Respond respond);
  void admin_rooms(admin::Respond respond);
  void admin_action(const std::string& action, const std::string& node, const std::string& service,
                    admin::Respond respond);
  std::optional<std::string> refuse_failover(const std::string& node) const;
  std::optional<std::string> refuse_fallback(const std::string& node) const;
  std::optional<std::string> refuse_recover(const std::string& group) const;
  std::string metrics_text() const;

  boost::asio::io_context& control_;
  ServerContext& server_;
  StoreWorker& store_;
  ClusterView& view_;
  Hooks hooks_;
  std::unique_ptr<PeerLink> link_;

  bool clustered_ = false;
  bool ha_enabled_ = false;
  storage::GroupRecord group_;
  ClusterSettings settings_;
  std::string self_;
  std::string peer_;
  std::string peer_client_endpoint_;
  std::map<std::string, std::string> client_endpoints_;

  State state_ = State::Unknown;
  Reason reason_ = Reason::Unknown;
  std::chrono::steady_clock::time_point state_since_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  PeerInfo peer_info_;
  std::map<std::string, Held> held_;                // partitions this node holds
  std::map<std::string, std::string> holders_;      // partition -> holder as last published
  bool stopped_[4] = {false, false, false, false};  // stopped by the admin or by failover
  bool db_ok_ = true;
  std::optional<std::chrono::steady_clock::time_point> down_since_;
  bool busy_ = false;        // a transition is running
  std::uint64_t ticks_ = 0;  // the registry row is refreshed every 20 ticks
  bool unreachable_handled_ = false;
  storage::UnixMillis peer_lease_seen_ = 0;  // the peer's lease expiry when we lost it
  bool shutting_down_ = false;
  bool data_up_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::string, CtlReply> ctl_pending_;
  std::map<std::uint64_t, InFlight> in_flight_;
  std::chrono::steady_clock::time_point link_reset_at_{};  // the last reset of a silent link
  /// A one-way cut: we hear the peer, it has not heard us for the heartbeat timeout (what we
  /// send is lost). Its rooms then answer at once, as in a full cut.
  bool one_way_ = false;
  std::chrono::steady_clock::time_point srm_up_since_{};  // our srm connection's last dial
  std::unique_ptr<boost::asio::steady_timer> tick_timer_;
  std::unique_ptr<boost::asio::steady_timer> heartbeat_timer_;
};

}  // namespace tc::broker::ha
