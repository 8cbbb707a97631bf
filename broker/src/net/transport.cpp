// SPDX-License-Identifier: Apache-2.0
#include "net/transport.h"

#include <boost/asio/write.hpp>

namespace tc::broker::net {

Transport::Transport(Tcp::socket socket) : tcp_(std::move(socket)) {}

Transport::Tcp::socket& Transport::socket() {
  return tls_ ? tls_->next_layer() : tcp_;
}

Awaitable<std::tuple<boost::system::error_code, std::size_t>> Transport::read_some(
    asio::mutable_buffer buffer) {
  if (tls_) {
    co_return co_await tls_->async_read_some(buffer, kAsTuple);
  }
  co_return co_await tcp_.async_read_some(buffer, kAsTuple);
}

Awaitable<std::tuple<boost::system::error_code, std::size_t>> Transport::write(
    const std::vector<asio::const_buffer>& buffers) {
  if (tls_) {
    co_return co_await asio::async_write(*tls_, buffers, kAsTuple);
  }
  co_return co_await asio::async_write(tcp_, buffers, kAsTuple);
}

Awaitable<boost::system::error_code> Transport::start_tls(asio::ssl::context& context) {
  tls_ = std::make_unique<asio::ssl::stream<Tcp::socket>>(std::move(tcp_), context);
  const auto done = co_await tls_->async_handshake(asio::ssl::stream_base::server, kAsTuple);
  co_return std::get<0>(done);
}

bool Transport::is_loopback() const {
  boost::system::error_code ec;
  const auto& s = tls_ ? tls_->next_layer() : tcp_;
  const auto ep = s.remote_endpoint(ec);
  return !ec && ep.address().is_loopback();
}

std::string Transport::remote_address() const {
  boost::system::error_code ec;
  const auto& s = tls_ ? tls_->next_layer() : tcp_;
  const auto ep = s.remote_endpoint(ec);
  if (ec) {
    return "?";
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

asio::any_io_executor Transport::executor() {
  return socket().get_executor();
}

void Transport::close() {
  boost::system::error_code ec;
  socket().shutdown(Tcp::socket::shutdown_both, ec);
  socket().close(ec);
}

}  // namespace tc::broker::net
