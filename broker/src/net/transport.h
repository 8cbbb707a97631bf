// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "net/framing.h"
#include "net/tokens.h"
#include "routing/stanzas.h"

namespace tc::broker::net {

/// What a client session reads from and writes to: a TCP connection (RFC 6120) or a WebSocket
/// (RFC 7395). The session speaks the RFC 6120 byte stream to it; a transport with another
/// framing translates (see framing.h). Shard-affine: use only on the executor it was made on.
/// Held by shared_ptr: a closing transport may finish its close handshake after its session.
class Transport {
 public:
  virtual ~Transport() = default;

  /// Reads the next bytes of the client's RFC 6120 stream.
  virtual Awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(
      asio::mutable_buffer buffer) = 0;
  /// Writes whole elements (or stream fragments) in order; one write for the batch where
  /// the framing allows.
  virtual Awaitable<std::tuple<boost::system::error_code, std::size_t>> write(
      const std::vector<Wire>& wires) = 0;
  /// Closes at once (a WebSocket starts its close handshake, bounded); pending operations
  /// complete with an error. Idempotent.
  virtual void close() = 0;

  virtual Framing framing() const = 0;
  /// STARTTLS is possible on this connection (plain TCP with TLS configured).
  virtual bool can_start_tls() const { return false; }
  /// Performs the server side of the TLS handshake on the existing connection.
  virtual Awaitable<boost::system::error_code> start_tls(asio::ssl::context& context);
  /// The client's traffic is encrypted (TLS, wss, or a WebSocket behind a TLS proxy the
  /// operator vouches for).
  virtual bool is_secure() const = 0;
  virtual bool is_loopback() const = 0;
  virtual std::string remote_address() const = 0;
  virtual asio::any_io_executor executor() = 0;
};

/// A client connection that starts as plain TCP and may be upgraded in place to TLS
/// (STARTTLS, RFC 6120 §5).
class TcpTransport final : public Transport {
 public:
  using Tcp = asio::ip::tcp;

  explicit TcpTransport(Tcp::socket socket);

  Awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(
      asio::mutable_buffer buffer) override;
  Awaitable<std::tuple<boost::system::error_code, std::size_t>> write(
      const std::vector<Wire>& wires) override;
  void close() override;
  Framing framing() const override { return Framing::Tcp; }
  bool can_start_tls() const override { return tls_ == nullptr; }
  Awaitable<boost::system::error_code> start_tls(asio::ssl::context& context) override;
  bool is_secure() const override { return tls_ != nullptr; }
  bool is_loopback() const override;
  std::string remote_address() const override;
  asio::any_io_executor executor() override;

 private:
  Tcp::socket& socket();
  const Tcp::socket& socket() const;
  Tcp::socket tcp_;
  std::unique_ptr<asio::ssl::stream<Tcp::socket>> tls_;
  std::vector<asio::const_buffer> buffers_;
};

/// "address:port" of a connected socket's peer ("?" once it is gone).
std::string describe_peer(const asio::ip::tcp::socket& socket);

}  // namespace tc::broker::net
