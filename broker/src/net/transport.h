// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <tuple>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "net/tokens.h"

namespace tc::broker::net {

/// A client connection that starts as plain TCP and may be upgraded in place to TLS
/// (STARTTLS, RFC 6120 §5). Shard-affine: use only on the executor of its socket.
class Transport {
 public:
  using Tcp = asio::ip::tcp;

  explicit Transport(Tcp::socket socket);

  Awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(
      asio::mutable_buffer buffer);
  Awaitable<std::tuple<boost::system::error_code, std::size_t>> write(
      const std::vector<asio::const_buffer>& buffers);
  /// Performs the server side of the TLS handshake on the existing connection.
  Awaitable<boost::system::error_code> start_tls(asio::ssl::context& context);

  bool is_tls() const { return tls_ != nullptr; }
  bool is_loopback() const;
  std::string remote_address() const;
  asio::any_io_executor executor();
  /// Closes the socket at once; pending operations complete with an error.
  void close();

 private:
  Tcp::socket& socket();
  Tcp::socket tcp_;
  std::unique_ptr<asio::ssl::stream<Tcp::socket>> tls_;
};

}  // namespace tc::broker::net
