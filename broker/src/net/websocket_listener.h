// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace tc::broker {

class Shard;
struct ServerContext;

namespace net {

/// The [websocket] listener: XMPP over WebSocket (RFC 7395) for web clients, and XEP-0156
/// discovery (/.well-known/host-meta and host-meta.json) on the same HTTP port. Accepts on
/// the control context and serves each connection on a shard, like the TCP listener: the
/// HTTP handshake (origin check, subprotocol "xmpp", per-address connection limit) and
/// then a Session over a WebSocket transport, which is the TCP session in all but framing.
class WebSocketListener {
 public:
  WebSocketListener(ServerContext& server, boost::asio::io_context& control,
                    std::vector<Shard*> shards);
  ~WebSocketListener();
  WebSocketListener(const WebSocketListener&) = delete;
  WebSocketListener& operator=(const WebSocketListener&) = delete;

  /// Binds websocket.address:port and starts accepting. Throws std::runtime_error naming the
  /// address on failure.
  void start();
  /// Stops accepting (open connections are the router's to close). Control thread only.
  void stop();
  /// Accepts again on the port bound by start() (the router service was started again).
  void resume();
  /// The bound port (useful when the config asked for port 0).
  std::uint16_t port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  ///< shared with the coroutines it spawns
};

}  // namespace net
}  // namespace tc::broker
