// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <deque>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "xmpp/jid.h"
#include "xmpp/stream_parser.h"

#include "net/tokens.h"
#include "routing/client_stream.h"
#include "routing/stanzas.h"

namespace tc::broker {

class Shard;
struct ServerContext;

namespace net {

/// Component mode (XEP-0114, [component]): the conference service attaches to another XMPP
/// server (Prosody, ejabberd, …) as its external component named muc.domain, so that server's
/// users join our rooms. The link dials the front server, authenticates with the shared
/// secret (<handshake/>: SHA-1 of stream id and secret), then carries stanzas both ways:
/// what arrives goes to the rooms (wherever in the group they are hosted), and every JID
/// outside this node's domain is routed back through the link (Router's foreign route).
/// Both nodes of a pair dial; the front server accepts one of them (the other is refused with
/// <conflict/> and keeps retrying every component.reconnect_interval), so when the attached
/// node dies the other attaches. Runs on one shard; deliver() may be called from anywhere.
class ComponentLink final : public ClientStream,
                            public std::enable_shared_from_this<ComponentLink> {
 public:
  ComponentLink(ServerContext& server, Shard& shard);
  ~ComponentLink() override;

  /// Starts dialling (and redialling). Call once.
  void start();
  /// Detaches and stops dialling (the router critical service stopped, or shutdown).
  void stop();
  /// Dials again after stop().
  void resume();

  // ClientStream: the front server's users, all behind this one stream.
  void deliver(Wire wire) override;
  void deliver_on_shard(const Wire& wire) override { send(wire); }
  int shard_index() const override;
  void close_with(std::string, std::string) override {}  // not ours to close
  void close_moved(std::string, std::string, std::string) override {}
  const xmpp::Jid& jid() const override { return name_; }
  const std::string& moved_in() const override { return no_partition_; }

 private:
  Awaitable<void> run();
  /// One connection: dial, handshake, then read until it ends. Returns why it ended.
  Awaitable<std::string> attach_once();
  Awaitable<std::string> read_stanzas();
  Awaitable<void> on_stanza(xmpp::XmlElement& stanza);
  void send(Wire wire);
  Awaitable<void> write_loop();
  void drop();

  ServerContext& server_;
  Shard& shard_;
  xmpp::Jid name_;  ///< the component's JID: the conference domain
  std::string secret_;
  const std::string no_partition_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer retry_;
  xmpp::StreamParser parser_;
  std::string stream_id_;
  bool running_ = false;  ///< wanted: start()/resume() set it, stop() clears it
  bool looping_ = false;  ///< run() is active
  bool attached_ = false;
  bool header_seen_ = false;
  std::size_t in_flight_ = 0;  ///< stanzas handed to the rooms and not yet handled
  std::deque<Wire> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
};

}  // namespace net
}  // namespace tc::broker
