// SPDX-License-Identifier: Apache-2.0
#include "net/transport.h"

#include <boost/asio/write.hpp>

namespace tc::broker::net {

Awaitable<boost::system::error_code> Transport::start_tls(asio::ssl::context&) {
  co_return asio::error::operation_not_supported;
}

std::string describe_peer(const asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) {
    return "?";
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

TcpTransport::TcpTransport(Tcp::socket socket) : tcp_(std::move(socket)) {}

TcpTransport::Tcp::socket& TcpTransport::socket() {
  return tls_ ? tls_->next_layer() : tcp_;
}

const TcpTransport::Tcp::socket& TcpTransport::socket() const {
  return tls_ ? tls_->next_layer() : tcp_;
}

Awaitable<std::tuple<boost::system::error_code, std::size_t>> TcpTransport::read_some(
    asio::mutable_buffer buffer) {
  if (tls_) {
    co_return co_await tls_->async_read_some(buffer, kAsTuple);
  }
  co_return co_await tcp_.async_read_some(buffer, kAsTuple);
}

Awaitable<std::tuple<boost::system::error_code, std::size_t>> TcpTransport::write(
    const std::vector<Wire>& wires) {
  buffers_.clear();
  for (const auto& w : wires) {
    buffers_.push_back(asio::buffer(*w));
  }
  if (tls_) {
    co_return co_await asio::async_write(*tls_, buffers_, kAsTuple);
  }
  co_return co_await asio::async_write(tcp_, buffers_, kAsTuple);
}

Awaitable<boost::system::error_code> TcpTransport::start_tls(asio::ssl::context& context) {
  tls_ = std::make_unique<asio::ssl::stream<Tcp::socket>>(std::move(tcp_), context);
  const auto done = co_await tls_->async_handshake(asio::ssl::stream_base::server, kAsTuple);
  co_return std::get<0>(done);
}

bool TcpTransport::is_loopback() const {
  boost::system::error_code ec;
  const auto ep = socket().remote_endpoint(ec);
  return !ec && ep.address().is_loopback();
}

std::string TcpTransport::remote_address() const {
  return describe_peer(socket());
}

asio::any_io_executor TcpTransport::executor() {
  return socket().get_executor();
}

void TcpTransport::close() {
  boost::system::error_code ec;
  socket().shutdown(Tcp::socket::shutdown_both, ec);
  socket().close(ec);
}

}  // namespace tc::broker::net
