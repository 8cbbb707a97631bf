// SPDX-License-Identifier: Apache-2.0
#include "net/component_link.h"

#include <fstream>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "xmpp/namespaces.h"
#include "xmpp/stanza_error.h"

#include "muc/muc_service.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker::net {

namespace ns = xmpp::ns;
using tcp = asio::ip::tcp;
using xmpp::XmlElement;

namespace {

constexpr std::string_view kComponentNs = "jabber:component:accept";
constexpr std::size_t kMaxInFlight = 1024;  // stanzas handed to rooms before reading waits
constexpr auto kDialTimeout = std::chrono::seconds(5);

std::string sha1_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

/// The front server's stanzas are in jabber:component:accept; inside, they are client
/// stanzas like any other (XEP-0114 §3), and the rooms expect jabber:client.
void to_client_namespace(XmlElement& element) {
  if (element.xmlns() == kComponentNs) {
    element.set_xmlns(ns::kClient);
  }
  for (auto& child : element.nodes()) {
    if (!child.is_text()) {
      to_client_namespace(child);
    }
  }
}

std::string read_secret(const Config& config) {
  if (!config.component_secret.empty()) {
    return config.component_secret;
  }
  std::ifstream in(config.component_secret_file);
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) {
    throw ConfigError("component.secret_file",
                      "cannot read a secret from " + config.component_secret_file.string());
  }
  return line;
}

}  // namespace

ComponentLink::ComponentLink(ServerContext& server, Shard& shard)
    : server_(server),
      shard_(shard),
      name_(*xmpp::Jid::parse(server.config.conference_domain())),
      secret_(read_secret(server.config)),
      socket_(shard.context()),
      retry_(shard.context()),
      parser_(xmpp::ParserLimits{server.config.max_stanza_bytes, server.config.max_depth,
                                 server.config.max_attributes}) {}

ComponentLink::~ComponentLink() = default;

int ComponentLink::shard_index() const {
  return shard_.index();
}

void ComponentLink::start() {
  asio::post(shard_.executor(), [self = shared_from_this()] {
    self->running_ = true;
    if (self->looping_) {
      return;  // a loop still winding down after stop() sees running_ again and goes on
    }
    self->looping_ = true;
    asio::co_spawn(self->shard_.executor(), self->run(), asio::detached);
  });
}

void ComponentLink::resume() {
  start();
}

void ComponentLink::stop() {
  asio::post(shard_.executor(), [self = shared_from_this()] {
    self->running_ = false;
    self->retry_.cancel();
    self->drop();
  });
}

void ComponentLink::deliver(Wire wire) {
  asio::post(shard_.executor(),
             [self = shared_from_this(), wire = std::move(wire)] { self->send(wire); });
}

Awaitable<void> ComponentLink::run() {
  auto self = shared_from_this();
  std::string last_failure;
  while (running_ && !server_.shutting_down) {
    auto why = co_await attach_once();
    if (attached_) {
      attached_ = false;
      server_.router.clear_foreign_route(this);
      spdlog::warn("component {}: detached from {}:{}: {}", name_.str(),
                   server_.config.component_server, server_.config.component_port, why);
    } else if (why != last_failure) {
      // Logged once per distinct reason: the standby node of a pair is refused (conflict)
      // for as long as its peer holds the component.
      spdlog::info("component {}: not attached to {}:{}: {} (retrying every {} ms)", name_.str(),
                   server_.config.component_server, server_.config.component_port, why,
                   server_.config.component_reconnect.count());
    }
    last_failure = why;
    drop();
    if (!running_) {
      break;
    }
    retry_.expires_after(server_.config.component_reconnect);
    co_await retry_.async_wait(kAsTuple);
  }
  looping_ = false;
}

Awaitable<std::string> ComponentLink::attach_once() {
  boost::system::error_code ec;
  tcp::resolver resolver(shard_.context());
  auto resolved = co_await resolver.async_resolve(
      server_.config.component_server, std::to_string(server_.config.component_port), kAsTuple);
  if (std::get<0>(resolved)) {
    co_return "cannot resolve: " + std::get<0>(resolved).message();
  }
  while (writing_) {
    // The last connection's writer is still finishing (aborted); it must not see this one.
    retry_.expires_after(std::chrono::milliseconds(1));
    co_await retry_.async_wait(kAsTuple);
  }
  socket_ = tcp::socket(shard_.context());
  asio::steady_timer dial_timer(shard_.context());
  dial_timer.expires_after(kDialTimeout);
  dial_timer.async_wait([this](boost::system::error_code e) {
    if (!e && !header_seen_) {
      boost::system::error_code ignored;
      socket_.close(ignored);
    }
  });
  header_seen_ = false;
  auto connected = co_await asio::async_connect(socket_, std::get<1>(resolved), kAsTuple);
  if (std::get<0>(connected)) {
    co_return "cannot connect: " + std::get<0>(connected).message();
  }
  socket_.set_option(tcp::no_delay(true), ec);
  parser_.reset();
  queue_.clear();
  queued_bytes_ = 0;
  // XEP-0114 §3: the component opens a stream to the server in the component namespace.
  send(
      to_wire("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
              "xmlns:stream='http://etherx.jabber.org/streams' to='" +
              xmpp::xml_escape(name_.str()) + "'>"));
  co_return co_await read_stanzas();
}

Awaitable<std::string> ComponentLink::read_stanzas() {
  auto self = shared_from_this();
  std::vector<char> buffer(16 * 1024);
  std::vector<xmpp::StreamEvent> events;
  for (;;) {
    auto got = co_await socket_.async_read_some(asio::buffer(buffer), kAsTuple);
    if (std::get<0>(got)) {
      co_return header_seen_ ? "connection lost: " + std::get<0>(got).message()
                             : "no answer: " + std::get<0>(got).message();
    }
    events.clear();
    const auto fed = parser_.feed(std::string_view(buffer.data(), std::get<1>(got)), events);
    for (auto& event : events) {
      switch (event.kind) {
        case xmpp::StreamEvent::Kind::StreamOpen:
          header_seen_ = true;
          stream_id_ = std::string(event.element.attr("id"));
          // XEP-0114 §3: <handshake/> carries hex(SHA-1(stream id + secret)).
          send(to_wire("<handshake>" + sha1_hex(stream_id_ + secret_) + "</handshake>"));
          break;
        case xmpp::StreamEvent::Kind::StreamClose:
          co_return "the server closed the stream";
        case xmpp::StreamEvent::Kind::Stanza: {
          auto& element = event.element;
          if (element.name() == "error" && element.xmlns() == ns::kStream) {
            std::string condition;
            for (const auto& c : element.nodes()) {
              if (!c.is_text() && c.name() != "text") {
                condition = c.name();
              }
            }
            const auto text = element.child_text("text", ns::kStreamErrors);
            co_return "stream error " + condition + (text.empty() ? "" : " (" + text + ")");
          }
          if (!attached_) {
            if (element.name() == "handshake") {
              attached_ = true;
              server_.router.set_foreign_route(server_.config.domain, shared_from_this());
              spdlog::info("component {}: attached to {}:{}; its users reach our rooms",
                           name_.str(), server_.config.component_server,
                           server_.config.component_port);
            } else {
              co_return "unexpected <" + element.name() + "/> before the handshake";
            }
            break;
          }
          co_await on_stanza(element);
          break;
        }
      }
    }
    if (!fed) {
      co_return "unreadable XML from the server: " + fed.error().message();
    }
  }
}

Awaitable<void> ComponentLink::on_stanza(XmlElement& stanza) {
  const auto& name = stanza.name();
  if ((name != "message" && name != "presence" && name != "iq") || stanza.xmlns() != kComponentNs) {
    spdlog::debug("component {}: ignoring <{} xmlns='{}'/>", name_.str(), name, stanza.xmlns());
    co_return;
  }
  to_client_namespace(stanza);
  const auto from = xmpp::Jid::parse(stanza.attr("from"));
  const auto to = xmpp::Jid::parse(stanza.attr("to"));
  if (!from || !to || from->domain() == name_.domain() || from->domain() == server_.config.domain) {
    // The front server stamps 'from'; one we cannot read, or one that claims our own
    // domains, is refused rather than trusted.
    if (wants_error_reply(stanza) && to) {
      send(to_wire(make_error_reply(stanza, Condition::JidMalformed,
                                    "the front server sent an unusable 'from'")));
    }
    co_return;
  }
  if (to->domain() != name_.domain()) {
    if (wants_error_reply(stanza)) {
      send(to_wire(make_error_reply(stanza, Condition::ServiceUnavailable,
                                    "this component serves " + name_.str() + " only")));
    }
    co_return;
  }
  // Handed to the rooms in arrival order (so each room sees one user's stanzas in order);
  // awaited only when too many are pending, which paces the front server.
  ++in_flight_;
  if (in_flight_ >= kMaxInFlight) {
    co_await server_.muc->async_dispatch(std::move(stanza), *from, asio::use_awaitable);
    --in_flight_;
    co_return;
  }
  server_.muc->async_dispatch(
      std::move(stanza), *from,
      asio::bind_executor(shard_.executor(), [self = shared_from_this()] { --self->in_flight_; }));
}

void ComponentLink::send(Wire wire) {
  if (!socket_.is_open()) {
    return;
  }
  if (queued_bytes_ + wire->size() > server_.config.max_write_queue_bytes * 4) {
    spdlog::warn("component {}: the front server does not read fast enough; reconnecting",
                 name_.str());
    drop();
    return;
  }
  queued_bytes_ += wire->size();
  queue_.push_back(std::move(wire));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(shard_.executor(), write_loop(), asio::detached);
  }
}

Awaitable<void> ComponentLink::write_loop() {
  auto self = shared_from_this();
  std::vector<Wire> batch;
  std::vector<asio::const_buffer> buffers;
  while (!queue_.empty() && socket_.is_open()) {
    batch.clear();
    buffers.clear();
    while (!queue_.empty() && batch.size() < 256) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      queued_bytes_ -= batch.back()->size();
      buffers.push_back(asio::buffer(*batch.back()));
    }
    const auto wrote = co_await asio::async_write(socket_, buffers, kAsTuple);
    if (std::get<0>(wrote)) {
      drop();
      break;
    }
  }
  writing_ = false;
}

void ComponentLink::drop() {
  if (attached_) {
    server_.router.clear_foreign_route(this);
  }
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  queue_.clear();
  queued_bytes_ = 0;
}

}  // namespace tc::broker::net
