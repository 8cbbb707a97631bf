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

#include "base/histogram.h"

#include "admin/admin_server.h"
#include "ha/cluster_settings.h"
#include "ha/cluster_view.h"
#include "ha/mesh.h"
#include "ha/peer_link.h"
#include "ha/srm_machine.h"
#include "ha/states.h"
#include "muc/muc_service.h"
#include "net/tokens.h"
#include "routing/router.h"

namespace tc::broker {
struct ServerContext;
class StoreWorker;
}  // namespace tc::broker

namespace tc::broker::ha {

/// The Server Recovery Manager's driver: it performs what the decision core (SrmMachine: the
/// state machine of SPEC.md section 3, leases, takeover and takeback) asks for on the real
/// database, link and rooms, feeds it what happens, and carries the data channel and the
/// admin API's backend. Runs on the control thread; every member is touched only there.
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

  /// `store`: the group's database (leases); `cluster_store`: the cluster's (groups, nodes,
  /// settings; the same worker when one database serves both). `clock`: where HA code reads
  /// the time (the steady clock unless a test injects one).
  Srm(boost::asio::io_context& control, ServerContext& server, StoreWorker& store,
      StoreWorker& cluster_store, ClusterView& view, Hooks hooks,
      const TimeSource& clock = default_clock());
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
  State state() const { return machine_ ? machine_->state() : State::Unknown; }
  Reason reason() const { return machine_ ? machine_->reason() : Reason::Unknown; }
  std::uint16_t service_port() const { return link_ ? link_->port() : 0; }

  // admin::Backend
  void handle(const admin::Request& request, admin::Respond respond) override;

  // muc::ClusterSink (called on any shard)
  void forward_to_room(const std::string& node, xmpp::XmlElement stanza, xmpp::Jid from,
                       muc::Completion done) override;
  void forward_deliveries(std::vector<muc::RoomHost::Delivery> deliveries) override;
  void forward_gone(const xmpp::Jid& room, const xmpp::Jid& real) override;

  // RemoteRoutes (called on any shard): the sessions directory and stanzas for users whose
  // sessions are on the peer.
  void announce(const xmpp::Jid& full, std::int64_t bound_at, bool bound) override;
  void forward_to_user(const std::string& node, const xmpp::Jid& to, const xmpp::XmlElement& stanza,
                       bool bounce) override;

  /// Whether the authentication critical service is running (sessions refuse SASL if not).
  bool auth_serving() const {
    return !machine_ || machine_->service_status(Service::Authentication) != "stopped";
  }

 private:
  /// A local user's stanza forwarded to a room on another node, until that node's `done`.
  struct InFlight {
    std::string node;
    xmpp::XmlElement stanza;
    muc::Completion done;  // fires when destroyed: the session reads its next stanza
    TimePoint sent;
  };
  static const TimeSource& default_clock();

  // ---- driving the machine (srm.cpp) ----
  /// Carries out every action the machine has queued (and those their carrying-out queues).
  void perform();
  void execute(srm::ReadLease& a);
  void execute(srm::AcquireLease& a);
  void execute(srm::RenewLease& a);
  void execute(srm::TransferLease& a);
  void execute(srm::ReleaseLease& a);
  void execute(srm::PingDatabase& a);
  void execute(srm::SendControl& a);
  void execute(srm::Sleep& a);
  void execute(srm::SendHeartbeat& a);
  void execute(srm::ReplyControl& a);
  void execute(srm::Publish& a);
  void execute(srm::LoadPartition& a);
  void execute(srm::UnloadPartition& a);
  void execute(srm::ReplayJoins& a);
  void execute(srm::MoveUsers& a);
  void execute(srm::SetRouter& a);
  void execute(srm::SetConference& a);
  void execute(srm::SetAuthentication& a);
  void execute(srm::EvictPeer& a);
  void execute(srm::ResetLink& a);
  void execute(srm::DiscoverPeer& a);
  void execute(srm::RefreshRegistry& a);
  void execute(srm::StateChanged& a);
  void execute(srm::AdminDone& a);
  void execute(srm::Stopped& a);
  void execute(srm::Log& a);
  /// Hands a store result back to the machine as the outcome of `op`.
  template <class T>
  void finish(std::uint64_t op, const Result<T>& result);

  /// Refuses (throws, naming the setting) a node whose domain is not the cluster's, whose
  /// database another group uses, or whose running peer runs another version.
  void check_cluster_membership();
  void publish();
  void refresh_registry();
  void on_link_element(PeerLink::Channel channel, xmpp::XmlElement element);
  void on_control(const proto::Control& ctl);
  using CtlReply = std::function<void(bool ok, std::string error, const proto::ControlReply&)>;
  /// Sends a control request; `reply` gets the peer's answer, or a failure when it cannot be
  /// sent or is not answered within twice the heartbeat timeout plus 3 s.
  void send_ctl(proto::Control ctl, CtlReply reply);
  std::string client_endpoint_of(const std::string& node) const;

  // ---- the data channel, to the peer and to the other groups' nodes (srm_data.cpp) ----
  /// Sends one serialised element to `node` (the peer's data channel or the mesh).
  bool send_data(const std::string& node, std::string xml);
  bool data_up(const std::string& node) const;
  /// To the peer and every node of the other groups whose link is up.
  void broadcast_data(const std::string& xml);
  void on_data(const std::string& node, xmpp::XmlElement element);
  void on_data_link(const std::string& node, bool up);
  /// Tells `node` ("" = every other group's node) which partitions this node holds now.
  void send_serving(const std::string& node);
  /// A node of another group says which partitions it holds.
  void on_serving(const std::string& node, const xmpp::XmlElement& element);
  /// Reads the cluster's groups and nodes (cluster database): the mesh's members and
  /// endpoints, the view's groups. Blocking at start-up, then on the tick while anything is
  /// missing or every few seconds.
  void refresh_cluster();
  /// Records in the cluster database that every room of this group's database lives in this
  /// group (rooms created before placements were kept, or merged in by tc-merge).
  void backfill_placements();
  void apply_cluster(const std::vector<storage::GroupRecord>& groups,
                     const std::vector<storage::NodeRecord>& nodes);
  /// Answers the senders of forwarded stanzas whose fate is unknown (recipient-unavailable)
  /// and releases their sessions.
  void fail_in_flight(std::vector<InFlight> stanzas, std::string_view why);
  /// Gives up on forwarded stanzas older than the heartbeat timeout, so that a cut network
  /// never holds a session (run with each heartbeat).
  void expire_in_flight();
  /// Tells the peer every session of this node (after a reset), so its directory is exact.
  void send_sessions(const std::string& node);
  void on_session_frame(const std::string& node, const xmpp::XmlElement& element);

  // ---- admin (srm_admin.cpp) ----
  void admin_status(admin::Respond respond);
  void admin_rooms(admin::Respond respond);
  /// GET /api/v1/cluster/status: every group and node of the cluster (srm_cluster.cpp).
  void admin_cluster_status(admin::Respond respond);
  std::string ping_frame() const;
  void admin_action(const std::string& action, const std::string& node, const std::string& service,
                    admin::Respond respond);
  std::string metrics_text() const;

  boost::asio::io_context& control_;
  ServerContext& server_;
  StoreWorker& store_;
  StoreWorker& cluster_store_;
  ClusterView& view_;
  Hooks hooks_;
  const TimeSource& clock_;
  std::unique_ptr<PeerLink> link_;
  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<SrmMachine> machine_;
  // The other groups: who holds their partitions (from their `serving` frames).
  struct RemoteHolder {
    std::string node;  ///< "" = nobody right now (it is moving)
    std::int64_t epoch = 0;
    bool had_holder = false;  ///< some node held it since this node first heard of it
  };
  std::map<std::string, RemoteHolder> remote_holders_;
  // What the other groups' nodes last said in their pings (cluster status).
  struct MeshInfo {
    std::string state;
    std::string reason;
    std::uint64_t users = 0;
    std::uint64_t rooms = 0;
  };
  std::map<std::string, MeshInfo> mesh_info_;
  std::map<std::string, storage::NodeRecord> registry_;         // tc_nodes as last read
  std::map<std::string, storage::GroupRecord> cluster_groups_;  // tc_groups as last read
  std::string last_serving_;  // the last `serving` frame sent, to send only changes
  bool refreshing_cluster_ = false;
  TimePoint cluster_refreshed_{};

  bool clustered_ = false;
  bool ha_enabled_ = false;
  storage::GroupRecord group_;
  ClusterSettings settings_;
  std::string self_;
  std::string peer_;
  std::string peer_client_endpoint_;
  std::string srm_host_;  ///< srm_host(), resolved once
  std::string srm_host();
  std::map<std::string, std::string> client_endpoints_;

  bool performing_ = false;
  bool discovering_ = false;  // a registry lookup of the peer's endpoints is running
  std::uint64_t next_id_ = 1;
  std::map<std::string, CtlReply> ctl_pending_;
  std::map<std::uint64_t, InFlight> in_flight_;
  /// Timers of the machine's sleeps, cancelled when a clean stop is over.
  std::map<std::uint64_t, std::shared_ptr<boost::asio::steady_timer>> sleeps_;
  // How long each transient state lasted (control thread only; read by metrics_text()).
  std::map<State, LatencyHistogram> phase_timing_;
  TimePoint state_entered_{};
  struct AdminTicket {
    bool failover = false;
    admin::Respond respond;
  };
  std::uint64_t next_ticket_ = 1;
  std::map<std::uint64_t, AdminTicket> admin_tickets_;
  std::function<void()> stopped_then_;
};

}  // namespace tc::broker::ha
