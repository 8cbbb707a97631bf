// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "xmpp/xml_element.h"

namespace tc::broker::ha {

/// The node-to-node link on the SRM service port. Each node dials its peer twice, one
/// connection per channel, and accepts the peer's two: "srm" carries heartbeats and
/// takeover handshakes, "data" carries forwarded stanzas, so that a burst of room traffic
/// never queues in front of a heartbeat. Each connection is an XML stream (the same parser
/// and limits as client streams) that starts with <hello/> naming the node, the channel and
/// the cluster secret. Everything runs on the control io_context.
class PeerLink {
 public:
  enum class Channel { Srm, Data };
  /// An element read on an inbound connection, with the node that sent it.
  using Handler = std::function<void(Channel, const std::string& node, xmpp::XmlElement)>;
  using StateHandler = std::function<void(Channel, bool up)>;

  /// `data_only`: dial only the data channel (a link to a node of another group, which
  /// exchanges no heartbeats with this one).
  PeerLink(boost::asio::io_context& control, std::string self, std::string secret,
           bool data_only = false);
  ~PeerLink();

  /// Binds the service port. Throws std::runtime_error naming the address on failure.
  void listen(const std::string& address, std::uint16_t port);
  std::uint16_t port() const;

  /// Where the peer listens ("host:port"); (re)dials when it changes. "" stops dialling.
  void set_peer(std::string peer_name, std::string endpoint);

  void on_element(Handler handler) { on_element_ = std::move(handler); }
  /// Also accepts data connections from the nodes `known` says belong to the cluster (the
  /// other groups' nodes: the mesh); their elements reach the same handler, named by node.
  void accept_from(std::function<bool(const std::string& node)> known) {
    accept_known_ = std::move(known);
  }
  /// Outbound connection of a channel went up or down.
  void on_state(StateHandler handler) { on_state_ = std::move(handler); }

  /// Queues an element on a channel's outbound connection; false when it is not up.
  bool send(Channel channel, const xmpp::XmlElement& element);
  /// Same with already-serialised XML (one element).
  bool send_raw(Channel channel, std::string xml);
  bool up(Channel channel) const;

  /// Test hook and drill fault: while cut, nothing is sent or accepted (both directions are
  /// closed), as if the network between the nodes were down.
  void set_cut(bool cut);
  /// Drops every connection (both directions) and dials again at once: SRM calls it when the
  /// peer has been silent for the heartbeat timeout, because a connection across a cut
  /// network neither errors nor delivers (TCP retransmits for minutes), and forwarded stanzas
  /// must be answered instead of waiting behind it.
  void reset();
  /// How long one dial may wait for the peer to answer; then it is abandoned and retried, so
  /// the link comes back within about this long once the network does (not at the pace of
  /// TCP's SYN retransmissions).
  void set_connect_timeout(std::chrono::milliseconds timeout) { connect_timeout_ = timeout; }
  bool cut() const { return cut_; }

  void stop();

 private:
  struct Connection;
  void dial(Channel channel);
  void accept();

  boost::asio::io_context& control_;
  std::string self_;
  std::string secret_;
  std::string peer_name_;
  std::string peer_endpoint_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Connection> out_[2];
  std::vector<std::weak_ptr<Connection>> inbound_;
  std::uint64_t generation_ = 0;
  bool cut_ = false;
  bool stopped_ = false;
  bool data_only_ = false;
  std::function<bool(const std::string&)> accept_known_;
  std::chrono::milliseconds connect_timeout_{1000};
  Handler on_element_;
  StateHandler on_state_;
};

}  // namespace tc::broker::ha
