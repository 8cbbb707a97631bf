// SPDX-License-Identifier: Apache-2.0
#include "net/websocket_listener.h"

#include <mutex>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "xmpp/xml_element.h"

#include "net/listen.h"
#include "net/session.h"
#include "net/websocket_transport.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;

namespace {

constexpr int kMaxRequestsPerConnection = 100;
constexpr std::string_view kHostMeta = "/.well-known/host-meta";
constexpr std::string_view kHostMetaJson = "/.well-known/host-meta.json";

/// Open connections per client address, across shards.
class AddressCounts : public std::enable_shared_from_this<AddressCounts> {
 public:
  /// A slot that counts while it lives, or null when `address` already has `max`.
  ConnectionSlot acquire(const std::string& address, std::size_t max) {
    {
      std::lock_guard lock(mutex_);
      auto& n = open_[address];
      if (n >= max) {
        return nullptr;
      }
      ++n;
    }
    return std::make_shared<Slot>(shared_from_this(), address);
  }

 private:
  struct Slot {
    Slot(std::shared_ptr<AddressCounts> c, std::string a) : counts(std::move(c)), address(a) {}
    ~Slot() { counts->release(address); }
    std::shared_ptr<AddressCounts> counts;
    std::string address;
  };

  void release(const std::string& address) {
    std::lock_guard lock(mutex_);
    const auto it = open_.find(address);
    if (it != open_.end() && --it->second == 0) {
      open_.erase(it);
    }
  }

  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> open_;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

/// "https://Host:443" -> "host:443"; the authority part of an origin, lower-cased.
std::string origin_authority(std::string_view origin) {
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) {
    return {};
  }
  return lower(origin.substr(scheme_end + 3));
}

bool offers_xmpp(const Request& request) {
  const auto header = request[http::field::sec_websocket_protocol];
  std::size_t at = 0;
  while (at <= header.size()) {
    auto end = header.find(',', at);
    if (end == std::string_view::npos) {
      end = header.size();
    }
    auto token = header.substr(at, end - at);
    while (!token.empty() && token.front() == ' ') {
      token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
      token.remove_suffix(1);
    }
    if (token == "xmpp") {
      return true;
    }
    at = end + 1;
  }
  return false;
}

std::string json_escape(std::string_view raw) {
  std::string out;
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

struct WebSocketListener::Impl : std::enable_shared_from_this<Impl> {
  Impl(ServerContext& s, asio::io_context& c, std::vector<Shard*> sh)
      : server(s), control(c), shards(std::move(sh)), acceptor(c) {}

  const Config& config() const { return server.config; }

  Awaitable<void> accept_loop() {
    auto self = shared_from_this();
    std::size_t next = 0;
    while (acceptor.is_open()) {
      Shard& shard = *shards[next++ % shards.size()];
      auto accepted = co_await acceptor.async_accept(shard.context(), kAsTuple);
      auto ec = std::get<0>(accepted);
      auto socket = std::move(std::get<1>(accepted));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
          co_return;
        }
        spdlog::warn("websocket accept: {}", ec.message());
        asio::steady_timer pause(control, std::chrono::milliseconds(50));
        co_await pause.async_wait(kAsTuple);
        continue;
      }
      ++server.metrics.connections_accepted;
      if (server.metrics.connections_open >= config().max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto executor = socket.get_executor();
      asio::co_spawn(executor, serve(shard, std::move(socket)), asio::detached);
    }
  }

  /// One HTTP connection: TLS when configured, then requests until an upgrade or the end.
  Awaitable<void> serve(Shard& shard, tcp::socket socket) {
    auto self = shared_from_this();
    const std::string remote = describe_peer(socket);
    boost::system::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    if (ec) {
      co_return;
    }
    const bool loopback = endpoint.address().is_loopback();
    auto slot =
        counts->acquire(endpoint.address().to_string(), config().websocket_max_connections_per_ip);
    beast::tcp_stream stream(std::move(socket));
    if (config().websocket_tls) {
      const auto context = server.tls_context();
      beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), *context);
      beast::get_lowest_layer(tls).expires_after(config().websocket_handshake_timeout);
      const auto shaken = co_await tls.async_handshake(asio::ssl::stream_base::server, kAsTuple);
      if (std::get<0>(shaken)) {
        spdlog::debug("websocket: TLS handshake with {} failed: {}", remote,
                      std::get<0>(shaken).message());
        co_return;
      }
      co_await serve_requests(shard, std::move(tls), std::move(slot), true, remote, loopback);
    } else {
      co_await serve_requests(shard, std::move(stream), std::move(slot),
                              config().websocket_consider_secure, remote, loopback);
    }
  }

  template <class Stream>
  Awaitable<void> serve_requests(Shard& shard, Stream stream, ConnectionSlot slot, bool secure,
                                 std::string remote, bool loopback) {
    beast::flat_buffer buffer;
    for (int i = 0; i < kMaxRequestsPerConnection; ++i) {
      beast::get_lowest_layer(stream).expires_after(config().websocket_handshake_timeout);
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(16 * 1024);
      const auto read = co_await http::async_read(stream, buffer, parser, kAsTuple);
      if (const auto ec = std::get<0>(read); ec) {
        if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
            ec != asio::error::eof && ec != asio::error::connection_reset) {
          co_await respond(stream, http::status::bad_request, 11, false, "text/plain",
                           "bad HTTP request: " + ec.message() + "\n");
        }
        co_return;
      }
      Request request = parser.release();
      const bool keep_alive = request.keep_alive();
      const unsigned version = request.version();
      const auto target = request.target();
      const std::string path(target.substr(0, target.find('?')));
      if (!slot) {
        co_await respond(stream, http::status::service_unavailable, version, false, "text/plain",
                         "too many connections from your address (websocket."
                         "max_connections_per_ip)\n");
        co_return;
      }
      if (websocket::is_upgrade(request)) {
        if (path != config().websocket_path) {
          co_await respond(stream, http::status::not_found, version, false, "text/plain",
                           "no WebSocket endpoint at " + path + "\n");
          co_return;
        }
        if (!origin_allowed(request)) {
          spdlog::info("websocket: refused origin '{}' from {}",
                       std::string(request[http::field::origin]), remote);
          co_await respond(stream, http::status::forbidden, version, false, "text/plain",
                           "origin not allowed (websocket.allowed_origins)\n");
          co_return;
        }
        if (!offers_xmpp(request)) {
          co_await respond(stream, http::status::bad_request, version, false, "text/plain",
                           "the WebSocket subprotocol 'xmpp' is required (RFC 7395)\n");
          co_return;
        }
        co_await upgrade(shard, std::move(stream), request, std::move(slot), secure,
                         std::move(remote), loopback);
        co_return;
      }
      const bool get = request.method() == http::verb::get || request.method() == http::verb::head;
      if (get && path == kHostMeta) {
        co_await respond(stream, http::status::ok, version, keep_alive, "application/xrd+xml",
                         host_meta_xml(request), true);
      } else if (get && path == kHostMetaJson) {
        co_await respond(stream, http::status::ok, version, keep_alive, "application/json",
                         host_meta_json(request), true);
      } else if (path == config().websocket_path) {
        co_await respond(stream, http::status::upgrade_required, version, keep_alive, "text/plain",
                         "this is an XMPP WebSocket endpoint (RFC 7395)\n");
      } else {
        co_await respond(stream, http::status::not_found, version, keep_alive, "text/plain",
                         "not found\n");
      }
      if (!keep_alive) {
        co_return;
      }
    }
  }

  template <class Stream>
  Awaitable<void> upgrade(Shard& shard, Stream stream, const Request& request, ConnectionSlot slot,
                          bool secure, std::string remote, bool loopback) {
    auto transport = std::make_shared<WebSocketTransport<Stream>>(
        std::move(stream), std::move(slot), secure, std::move(remote), loopback);
    const auto ec = co_await transport->accept(request, config());
    if (ec) {
      spdlog::debug("websocket: handshake with {} failed: {}", transport->remote_address(),
                    ec.message());
      transport->close();
      co_return;
    }
    auto session = std::make_shared<Session>(server, shard, std::move(transport));
    session->start();
  }

  template <class Stream>
  Awaitable<void> respond(Stream& stream, http::status status, unsigned version, bool keep_alive,
                          std::string_view content_type, std::string body, bool cors = false) {
    http::response<http::string_body> response{status, version};
    response.set(http::field::server, "tcbroker");
    response.set(http::field::content_type, content_type);
    if (cors) {
      // XEP-0156 §3: web clients on other origins read host-meta.
      response.set(http::field::access_control_allow_origin, "*");
    }
    response.keep_alive(keep_alive);
    response.body() = std::move(body);
    response.prepare_payload();
    co_await http::async_write(stream, response, kAsTuple);
    if (!keep_alive) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  /// RFC 6455 §10.2: browsers name the page's origin; only the same origin and the
  /// configured ones may open a stream with the user's credentials. Non-browser clients
  /// send no Origin.
  bool origin_allowed(const Request& request) const {
    const auto origin = request[http::field::origin];
    if (origin.empty()) {
      return true;
    }
    for (const auto& allowed : config().websocket_allowed_origins) {
      if (allowed == "*" || lower(allowed) == lower(origin)) {
        return true;
      }
    }
    const auto host = lower(request[http::field::host]);
    return !host.empty() && origin_authority(origin) == host;
  }

  /// The URL web clients should use: websocket.public_url, else this request's host.
  std::string websocket_url(const Request& request) const {
    if (!config().websocket_public_url.empty()) {
      return config().websocket_public_url;
    }
    std::string host(request[http::field::host]);
    if (host.empty()) {
      host = config().domain;
    }
    const bool wss = config().websocket_tls || config().websocket_consider_secure;
    return std::string(wss ? "wss://" : "ws://") + host + config().websocket_path;
  }

  std::string host_meta_xml(const Request& request) const {
    return "<?xml version='1.0' encoding='utf-8'?>\n"
           "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
           "  <Link rel='urn:xmpp:alt-connections:websocket' href='" +
           xmpp::xml_escape(websocket_url(request)) + "'/>\n</XRD>\n";
  }

  std::string host_meta_json(const Request& request) const {
    return "{\"links\": [{\"rel\": \"urn:xmpp:alt-connections:websocket\", \"href\": \"" +
           json_escape(websocket_url(request)) + "\"}]}\n";
  }

  ServerContext& server;
  asio::io_context& control;
  std::vector<Shard*> shards;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::shared_ptr<AddressCounts> counts = std::make_shared<AddressCounts>();
};

WebSocketListener::WebSocketListener(ServerContext& server, asio::io_context& control,
                                     std::vector<Shard*> shards)
    : impl_(std::make_shared<Impl>(server, control, std::move(shards))) {}

WebSocketListener::~WebSocketListener() {
  stop();
}

void WebSocketListener::start() {
  const auto& config = impl_->config();
  boost::system::error_code ec;
  (void)asio::ip::make_address(config.websocket_address, ec);
  if (ec) {
    throw ConfigError("websocket.address",
                      "\"" + config.websocket_address + "\" is not an IP address");
  }
  auto& acceptor = impl_->acceptor;
  ec = listen_on(acceptor, config.websocket_address, config.websocket_port);
  if (ec) {
    throw std::runtime_error("cannot listen for WebSocket clients on " + config.websocket_address +
                             ":" + std::to_string(config.websocket_port) + ": " + ec.message());
  }
  impl_->bound_port = acceptor.local_endpoint().port();
  asio::co_spawn(impl_->control, impl_->accept_loop(), asio::detached);
  spdlog::info("WebSocket clients on {}://{}:{}{} (host-meta at {})",
               config.websocket_tls ? "wss" : "ws", config.websocket_address, impl_->bound_port,
               config.websocket_path, kHostMeta);
}

void WebSocketListener::stop() {
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

void WebSocketListener::resume() {
  auto& acceptor = impl_->acceptor;
  if (acceptor.is_open() || impl_->bound_port == 0) {
    return;
  }
  if (const auto ec = listen_on(acceptor, impl_->config().websocket_address, impl_->bound_port)) {
    spdlog::error("router: cannot listen again for WebSocket clients on port {}: {}",
                  impl_->bound_port, ec.message());
    return;
  }
  asio::co_spawn(impl_->control, impl_->accept_loop(), asio::detached);
}

std::uint16_t WebSocketListener::port() const {
  return impl_->bound_port;
}

}  // namespace tc::broker::net
