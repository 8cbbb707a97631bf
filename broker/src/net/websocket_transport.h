// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "broker/config.h"

#include "net/framing.h"
#include "net/transport.h"

namespace tc::broker::net {

/// Whatever must stay counted while a connection lives (the per-address connection count).
using ConnectionSlot = std::shared_ptr<void>;

/// A client stream over one WebSocket (RFC 7395): each text message in is translated into the
/// RFC 6120 byte stream the session parses (framing.h, ws::inbound), each element out goes as
/// one text message (ws::outbound). Beast enforces the frame rules: a message over
/// websocket.max_message_bytes closes with 1009, a protocol violation with 1002; a binary
/// message closes with 1003; pings go out at half the idle timeout and a silent peer is
/// dropped at the full timeout. `Next` is beast::tcp_stream or an ssl_stream over one.
template <class Next>
class WebSocketTransport final : public Transport,
                                 public std::enable_shared_from_this<WebSocketTransport<Next>> {
 public:
  WebSocketTransport(Next next, ConnectionSlot slot, bool secure, std::string remote, bool loopback)
      : ws_(std::move(next)),
        close_timer_(ws_.get_executor()),
        slot_(std::move(slot)),
        secure_(secure),
        loopback_(loopback),
        remote_(std::move(remote)) {}

  /// Completes the opening handshake for `request` (already checked by the listener).
  Awaitable<boost::system::error_code> accept(
      const boost::beast::http::request<boost::beast::http::string_body>& request,
      const Config& config) {
    namespace websocket = boost::beast::websocket;
    boost::beast::get_lowest_layer(ws_).expires_never();  // the WebSocket's own timeouts rule
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = config.websocket_handshake_timeout;
    timeouts.idle_timeout = config.websocket_idle_timeout;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
      response.set(boost::beast::http::field::server, "tcbroker");
      response.set(boost::beast::http::field::sec_websocket_protocol, "xmpp");
    }));
    ws_.read_message_max(config.websocket_max_message_bytes);
    ws_.text(true);
    const auto accepted = co_await ws_.async_accept(request, kAsTuple);
    co_return std::get<0>(accepted);
  }

  Awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(
      asio::mutable_buffer buffer) override {
    while (pending_at_ >= pending_.size()) {
      in_.clear();
      const auto got = co_await ws_.async_read(in_, kAsTuple);
      const auto ec = std::get<0>(got);
      if (ec) {
        co_return std::make_tuple(ec, std::size_t{0});
      }
      if (!ws_.got_text()) {
        // RFC 7395 §3.2: XMPP goes in text messages only.
        close_with(boost::beast::websocket::close_code::unknown_data);
        co_return std::make_tuple(
            boost::system::error_code(boost::beast::websocket::error::bad_data_frame),
            std::size_t{0});
      }
      pending_ = ws::inbound(boost::beast::buffers_to_string(in_.data()));
      pending_at_ = 0;
      if (in_.capacity() > kKeptBuffer) {
        in_.shrink_to_fit();  // one large message does not pin its buffer for the session
      }
    }
    const auto n = std::min(buffer.size(), pending_.size() - pending_at_);
    std::memcpy(buffer.data(), pending_.data() + pending_at_, n);
    pending_at_ += n;
    co_return std::make_tuple(boost::system::error_code{}, n);
  }

  Awaitable<std::tuple<boost::system::error_code, std::size_t>> write(
      const std::vector<Wire>& wires) override {
    std::size_t total = 0;
    for (const auto& wire : wires) {
      out_ = ws::outbound(*wire);
      const auto wrote = co_await ws_.async_write(asio::buffer(out_), kAsTuple);
      if (std::get<0>(wrote)) {
        co_return std::make_tuple(std::get<0>(wrote), total);
      }
      total += wire->size();
    }
    co_return std::make_tuple(boost::system::error_code{}, total);
  }

  void close() override { close_with(boost::beast::websocket::close_code::normal); }

  Framing framing() const override { return Framing::WebSocket; }
  bool is_secure() const override { return secure_; }
  bool is_loopback() const override { return loopback_; }
  std::string remote_address() const override { return remote_; }
  asio::any_io_executor executor() override { return ws_.get_executor(); }

 private:
  static constexpr auto kCloseGrace = std::chrono::seconds(2);
  static constexpr std::size_t kKeptBuffer = 64 * 1024;

  /// Starts the closing handshake; the TCP connection ends when it completes, or after
  /// kCloseGrace if the peer does not answer (or a write to it is stuck).
  void close_with(boost::beast::websocket::close_code code) {
    if (closing_) {
      return;
    }
    closing_ = true;
    auto self = this->shared_from_this();
    close_timer_.expires_after(kCloseGrace);
    close_timer_.async_wait([self](boost::system::error_code ec) {
      if (!ec) {
        self->drop();
      }
    });
    if (!ws_.is_open()) {
      drop();
      return;
    }
    ws_.async_close(code, [self](boost::system::error_code) { self->drop(); });
  }

  void drop() {
    close_timer_.cancel();
    boost::beast::get_lowest_layer(ws_).close();
  }

  boost::beast::websocket::stream<Next> ws_;
  asio::steady_timer close_timer_;
  ConnectionSlot slot_;
  bool secure_;
  bool loopback_;
  std::string remote_;
  bool closing_ = false;
  boost::beast::flat_buffer in_;
  std::string pending_;  ///< the current message, translated
  std::size_t pending_at_ = 0;
  std::string out_;
};

}  // namespace tc::broker::net
