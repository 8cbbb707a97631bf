// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "ha/peer_link.h"
#include "ha/srm_machine.h"

namespace tc::broker::ha {

/// The data links to the nodes of the other redundancy groups of the cluster (the mesh;
/// docs/architecture.md, "Cluster"). One outbound data-only PeerLink per node; what those
/// nodes send arrives on this node's own SRM port (PeerLink::accept_from) and is handed in
/// through heard(). No heartbeats cross groups, so liveness is a ping on each link every
/// heartbeat interval: a node silent for the heartbeat timeout has its link reset (a cut
/// network is silence, not a closed socket). Control thread only.
class Mesh {
 public:
  using StateHandler = std::function<void(const std::string& node, bool up)>;

  Mesh(boost::asio::io_context& control, std::string self, std::string secret);
  ~Mesh();

  /// The other groups' nodes, node -> group. Links to nodes no longer listed are dropped.
  void set_nodes(std::map<std::string, std::string> node_groups);
  /// Where `node` listens ("host:port" of its SRM port); (re)dials when it changes.
  void set_endpoint(const std::string& node, const std::string& endpoint);
  bool known(const std::string& node) const { return links_.count(node) > 0; }
  /// The group of `node` ("" when it is not in another group).
  std::string group_of(const std::string& node) const;

  void on_state(StateHandler handler) { on_state_ = std::move(handler); }
  bool send_raw(const std::string& node, std::string xml);
  bool up(const std::string& node) const;
  /// The nodes whose link is up.
  std::vector<std::string> up_nodes() const;

  /// Something arrived from `node`: it is alive.
  void heard(const std::string& node, TimePoint now);
  /// Sends `ping` (one serialised element: this node's state and load) on every link that is
  /// up and resets those whose node has been silent for `timeout`.
  void tick(TimePoint now, std::chrono::milliseconds timeout, const std::string& ping);
  void set_connect_timeout(std::chrono::milliseconds timeout) { connect_timeout_ = timeout; }
  /// Drill fault: while cut, nothing is sent to another group's node.
  void set_cut(bool cut);
  void stop();

 private:
  struct Node {
    std::unique_ptr<PeerLink> link;
    std::string endpoint;
    TimePoint heard{};  ///< the last element from it, or when its link came up
  };

  boost::asio::io_context& control_;
  std::string self_;
  std::string secret_;
  std::map<std::string, std::string> groups_;  // node -> group
  std::map<std::string, Node> links_;
  std::vector<std::unique_ptr<PeerLink>> retired_;  // links of nodes that left the cluster
  std::chrono::milliseconds connect_timeout_{1000};
  bool cut_ = false;
  StateHandler on_state_;
};

}  // namespace tc::broker::ha
