// SPDX-License-Identifier: Apache-2.0
#include "net/session.h"

#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/errc.h"
#include "xmpp/namespaces.h"
#include "xmpp/stream_parser.h"

#include "accounts.h"
#include "im/user_services.h"
#include "net/user_routing.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::XmlElement;

namespace {

constexpr auto kCloseGrace = std::chrono::seconds(5);

}  // namespace

Session::Session(ServerContext& server, Shard& shard, std::shared_ptr<net::Transport> transport)
    : server_(server),
      shard_(shard),
      transport_(std::move(transport)),
      parser_(xmpp::ParserLimits{server.config.max_stanza_bytes, server.config.max_depth,
                                 server.config.max_attributes}),
      auth_timer_(transport_->executor()),
      close_timer_(transport_->executor()),
      idle_timer_(transport_->executor()),
      throttle_timer_(transport_->executor()),
      stanza_rate_(static_cast<double>(server.config.max_stanzas_per_second),
                   2.0 * static_cast<double>(server.config.max_stanzas_per_second)),
      byte_rate_(static_cast<double>(server.config.max_bytes_per_second),
                 2.0 * static_cast<double>(server.config.max_bytes_per_second)),
      stream_id_(xmpp::random_token(16)),
      remote_(transport_->remote_address()),
      resume_timer_(transport_->executor()) {
  ++server_.metrics.connections_open;
}

Session::~Session() {
  --server_.metrics.connections_open;
  if (!counted_address_.empty()) {
    server_.client_addresses.remove(counted_address_);
  }
}

std::string Session::address() const {
  const auto colon = remote_.rfind(':');
  return colon == std::string::npos ? remote_ : remote_.substr(0, colon);
}

std::chrono::milliseconds Session::charge(std::size_t bytes, std::size_t stanzas) {
  const auto now = LimitClock::now();
  return std::max(byte_rate_.take(static_cast<double>(bytes), now),
                  stanza_rate_.take(static_cast<double>(stanzas), now));
}

void Session::arm_idle_timer() {
  const auto idle = server_.config.idle_timeout;
  if (idle.count() <= 0) {
    return;
  }
  idle_timer_.expires_after(idle);
  idle_timer_.async_wait([weak = weak_from_this(), idle](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closing_) {
      return;
    }
    const auto quiet = LimitClock::now() - self->last_read_;
    if (quiet < idle) {
      self->arm_idle_timer();  // something came meanwhile: wait from then on
      return;
    }
    if (self->idle_ping_sent_ || self->phase_ != Phase::Bound) {
      // A half-open stream: nothing since the ping (or it never got as far as binding). The
      // connection is lost, not closed: a resumable session waits for its client (XEP-0198).
      self->lost_ = true;
      spdlog::info("c2s {}: {} silent for {} s; closing", self->stream_id_, self->remote_,
                   std::chrono::duration_cast<std::chrono::seconds>(quiet).count());
      self->stream_error("connection-timeout", "no traffic from the client for too long");
      return;
    }
    // XEP-0199: any answer (even an error) shows the client is there.
    XmlElement ping("iq", ns::kClient);
    ping.set_attr("type", "get")
        .set_attr("id", "idle-" + xmpp::random_token(6))
        .set_attr("from", self->server_.config.domain)
        .set_attr("to", self->jid_.str());
    ping.add_child("ping", ns::kPing);
    self->send(ping);
    self->idle_ping_sent_ = true;
    self->arm_idle_timer();  // an answer resets last_read_; none within `idle` closes
  });
}

int Session::shard_index() const {
  return shard_.index();
}

void Session::start() {
  spdlog::debug("c2s {}: connected from {}", stream_id_, remote_);
  auth_timer_.expires_after(server_.config.auth_timeout);
  auth_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && !self->authenticated_) {
      self->stream_error("connection-timeout", "authentication took too long");
    }
  });
  last_read_ = LimitClock::now();
  arm_idle_timer();
  asio::co_spawn(transport_->executor(), read_loop(), [self = shared_from_this()](auto ep) {
    if (ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        ++self->server_.metrics.internal_errors;
        spdlog::error("c2s {}: internal error: {}", self->stream_id_, e.what());
      }
      self->close_now();
    }
    self->on_closed();
  });
}

void Session::deliver(Wire wire) {
  asio::post(transport_->executor(), [self = shared_from_this(), wire = std::move(wire)]() mutable {
    self->deliver_on_shard(wire);
  });
}

void Session::deliver_on_shard(const Wire& wire) {
  if (resumed_) {
    // Routed here before the router learnt of the resuming connection.
    if (auto next = successor_.lock()) {
      next->deliver(wire);
    }
    return;
  }
  if (notify_nodes_ && unwanted_event(wire)) {
    return;
  }
  if (inactive_ && hold_presence(wire)) {
    return;
  }
  send(wire);
}

bool Session::unwanted_event(const Wire& wire) const {
  // A scan of the serialised message, never a parse: only headlines are looked into.
  const std::string_view xml = *wire;
  if (!xml.starts_with("<message")) {
    return false;
  }
  const auto tag_end = xml.find('>');
  if (tag_end == std::string_view::npos ||
      xml.substr(0, tag_end).find("type=\"headline\"") == std::string_view::npos) {
    return false;
  }
  const auto event = xml.find("http://jabber.org/protocol/pubsub#event");
  if (event == std::string_view::npos) {
    return false;
  }
  constexpr std::string_view kNode = " node=\"";
  const auto at = xml.find(kNode, event);
  if (at == std::string_view::npos) {
    return false;
  }
  const auto begin = at + kNode.size();
  const auto end = xml.find('"', begin);
  if (end == std::string_view::npos) {
    return false;
  }
  return !notify_nodes_->contains(std::string(xml.substr(begin, end - begin)));
}

// ---- XEP-0352 client state indication ----

namespace {

/// The value of the first `from` attribute of a serialised <presence>, "" when there is none
/// in its start tag. A scan of the start tag only: the body is never parsed.
std::string_view presence_from(std::string_view xml) {
  const auto end = xml.find('>');
  const std::string_view tag = xml.substr(0, end);
  for (const char quote : {'\'', '"'}) {
    const std::string key = std::string(" from=") + quote;
    if (const auto at = tag.find(key); at != std::string_view::npos) {
      const auto start = at + key.size();
      const auto stop = tag.find(quote, start);
      if (stop != std::string_view::npos) {
        return tag.substr(start, stop - start);
      }
    }
  }
  return {};
}

/// Available or unavailable presence (no type, or type unavailable): what CSI may hold.
bool holdable_presence(std::string_view xml) {
  if (xml.substr(0, 9) != "<presence") {
    return false;
  }
  const std::string_view tag = xml.substr(0, xml.find('>'));
  const auto type = tag.find(" type=");
  if (type == std::string_view::npos) {
    return true;
  }
  const auto value = tag.substr(type + 7);
  return value.substr(0, 11) == "unavailable";
}

}  // namespace

bool Session::hold_presence(const Wire& wire) {
  if (!holdable_presence(*wire)) {
    return false;  // messages, iqs, presence errors and subscriptions go at once
  }
  const std::string from(presence_from(*wire));
  if (from.empty()) {
    return false;
  }
  // Only the latest presence of each sender matters once the client looks again.
  if (auto it = held_index_.find(from); it != held_index_.end()) {
    held_[it->second] = nullptr;
  }
  held_index_[from] = held_.size();
  held_.push_back(wire);
  if (held_.size() > kMaxHeldPresence) {
    flush_held();  // bounded: a client inactive for ever does not grow the server
  }
  return true;
}

void Session::flush_held() {
  auto held = std::exchange(held_, {});
  held_index_.clear();
  for (auto& w : held) {
    if (w) {
      send(std::move(w));
    }
  }
}

void Session::on_csi(const XmlElement& element) {
  if (element.name() == "inactive") {
    inactive_ = true;
  } else if (element.name() == "active") {
    inactive_ = false;
    flush_held();
  }
  // XEP-0352 §4: nonzas are not answered, and neither counted by XEP-0198.
}

void Session::close_with(std::string condition, std::string text) {
  asio::post(transport_->executor(),
             [self = shared_from_this(), condition = std::move(condition), text = std::move(text)] {
               if (self->hibernating_) {
                 self->hibernating_ = false;  // nobody to tell: it just ends
                 self->resume_timer_.cancel();
                 self->end_session();
                 return;
               }
               self->stream_error(condition, text);
             });
}

// ---- reading ----

net::Awaitable<void> Session::read_loop() {
  auto self = shared_from_this();  // keeps the session alive while reading
  std::vector<char> buffer(16 * 1024);
  std::vector<xmpp::StreamEvent> events;
  while (!closing_ && phase_ != Phase::Closed) {
    const auto got = co_await transport_->read_some(asio::buffer(buffer));
    const auto ec = std::get<0>(got);
    const auto n = std::get<1>(got);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
        spdlog::debug("c2s {}: read: {}", stream_id_, ec.message());
      }
      lost_ = lost_ || !closing_;  // not a close either side asked for
      break;
    }
    last_read_ = LimitClock::now();
    idle_ping_sent_ = false;
    events.clear();
    const auto fed = parser_.feed(std::string_view(buffer.data(), n), events);
    std::size_t stanzas = 0;
    for (auto& event : events) {
      if (closing_ || restart_) {
        break;
      }
      stanzas += event.kind == xmpp::StreamEvent::Kind::Stanza ? 1 : 0;
      co_await on_event(event);
    }
    if (const auto pause = charge(n, stanzas); pause.count() > 0 && !closing_) {
      // Over the connection's rate: stop reading for a while (the client's TCP window fills
      // and it slows down); what was read is handled, nothing is dropped.
      ++server_.metrics.throttled;
      throttle_timer_.expires_after(pause);
      co_await throttle_timer_.async_wait(net::kAsTuple);
    }
    if (closing_) {
      break;
    }
    if (restart_) {
      // RFC 6120 §5.4.3.3 / §6.4.6: both sides start a fresh stream; nothing the client sent
      // after the negotiation element belongs to the old one.
      restart_ = false;
      header_sent_ = false;
      parser_.reset();
      continue;
    }
    if (!fed) {
      const auto condition = xmpp::stream_condition(fed.error());
      spdlog::info("c2s {}: {} from {}: {}", stream_id_, condition, remote_, fed.error().message());
      stream_error(condition, fed.error().message());
      break;
    }
  }
}

net::Awaitable<void> Session::on_event(xmpp::StreamEvent& event) {
  switch (event.kind) {
    case xmpp::StreamEvent::Kind::StreamOpen:
      co_await on_stream_open(event.element);
      break;
    case xmpp::StreamEvent::Kind::StreamClose:
      // RFC 6120 §4.4: answer the close, then end the connection.
      closing_ = true;
      send(to_wire(std::string(net::stream_close(framing()))));
      close_after_flush_ = true;
      if (!writing_) {
        close_now();
      }
      break;
    case xmpp::StreamEvent::Kind::Stanza:
      co_await on_element(event.element);
      break;
  }
}

net::Awaitable<void> Session::on_stream_open(const XmlElement& header) {
  send(to_wire(net::stream_open(framing(), stream_id_, server_.config.domain)));
  header_sent_ = true;
  if (!refused_.empty()) {
    stream_error("policy-violation", refused_);
    co_return;
  }

  if (header.name() != "stream" || header.xmlns() != ns::kStream) {
    stream_error("invalid-namespace", "expected a stream:stream element");
    co_return;
  }
  if (header.has_attr("xmlns") && header.attr("xmlns") != ns::kClient) {
    stream_error("invalid-namespace", "this port serves jabber:client streams");
    co_return;
  }
  const auto to = xmpp::nameprep(header.attr("to"));
  if (!to || *to != server_.config.domain) {
    stream_error("host-unknown", "this server serves " + server_.config.domain);
    co_return;
  }
  if (header.attr("version").empty() || header.attr("version").substr(0, 2) != "1.") {
    stream_error("unsupported-version", "XMPP 1.0 streams only");
    co_return;
  }
  // A node whose own partition another node holds (failed over, or cut from the database
  // while its peer serves its users) sends clients there before they authenticate:
  // authentication may need the database this node cannot reach (on bind it would do the same).
  if (const std::string holder = own_partition_elsewhere(); !holder.empty()) {
    send_elsewhere(holder);
    co_return;
  }
  if (phase_ == Phase::Header) {
    const bool needs_tls = server_.config.tls_required && !transport_->is_secure();
    if (needs_tls && !transport_->can_start_tls()) {
      // A WebSocket cannot start TLS inside the stream (RFC 7395 §3.7).
      stream_error("policy-violation",
                   "this server requires encryption: connect with wss://, or set "
                   "websocket.consider_secure behind a TLS-terminating proxy");
      co_return;
    }
    phase_ = needs_tls ? Phase::Tls : Phase::Auth;
  }
  send_features();
}

void Session::send_features() {
  XmlElement features("features", ns::kStream);
  const bool can_tls = server_.tls_context() != nullptr && transport_->can_start_tls();
  if (phase_ == Phase::Tls || phase_ == Phase::Auth) {
    if (can_tls) {
      auto& starttls = features.add_child("starttls", ns::kTls);
      if (server_.config.tls_required) {
        starttls.add_child("required", ns::kTls);
      }
    }
  }
  if (phase_ == Phase::Auth) {
    auto& mechanisms = features.add_child("mechanisms", ns::kSasl);
    mechanisms.add_child("mechanism", ns::kSasl).add_text("SCRAM-SHA-256");
    mechanisms.add_child("mechanism", ns::kSasl).add_text("SCRAM-SHA-1");
    if (plain_allowed()) {
      mechanisms.add_child("mechanism", ns::kSasl).add_text("PLAIN");
    }
    if (server_.config.registration) {
      features.add_child("register", ns::kRegisterFeature);
    }
  }
  if (phase_ == Phase::Bind) {
    features.add_child("bind", ns::kBind).add_child("required", ns::kBind);
    features.add_child("session", ns::kSession).add_child("optional", ns::kSession);
    features.add_child("sm", ns::kStreamManagement);
    features.add_child("csi", ns::kCsi);
    features.add_child("ver", "urn:xmpp:features:rosterver");  // XEP-0237
  }
  // The features element carries the stream prefix, which our serialiser does not do.
  std::string wire = net::stream_element_start(framing(), "features");
  for (const auto& child : features.nodes()) {
    child.append_to(wire, ns::kClient);
  }
  wire += "</stream:features>";
  send(to_wire(std::move(wire)));
}

net::Awaitable<void> Session::on_element(XmlElement& element) {
  switch (phase_) {
    case Phase::Header:
      stream_error("not-well-formed", "no stream header");
      co_return;
    case Phase::Tls:
      if (element.name() == "starttls" && element.xmlns() == ns::kTls) {
        co_await on_starttls();
      } else {
        stream_error("policy-violation", "STARTTLS is required before anything else");
      }
      co_return;
    case Phase::Auth:
      if (element.xmlns() == ns::kSasl) {
        co_await on_sasl(element);
      } else if (element.name() == "starttls" && element.xmlns() == ns::kTls &&
                 server_.tls_context() != nullptr && transport_->can_start_tls()) {
        co_await on_starttls();
      } else if (element.name() == "iq" && element.xmlns() == ns::kClient &&
                 element.child("query", ns::kRegister) != nullptr) {
        co_await on_register_iq(element);
      } else {
        stream_error("not-authorized", "authenticate first");
      }
      co_return;
    case Phase::Bind:
      if (element.name() == "iq" && element.xmlns() == ns::kClient &&
          element.child("bind", ns::kBind) != nullptr) {
        on_bind(element);
      } else if (element.xmlns() == ns::kStreamManagement && element.name() == "resume") {
        co_await on_resume(element);
      } else if (element.xmlns() == ns::kStreamManagement && element.name() == "enable") {
        XmlElement failed("failed", ns::kStreamManagement);
        failed.add_child("unexpected-request", ns::kStanzaErrors);
        send(failed);
      } else {
        stream_error("not-authorized", "bind a resource first");
      }
      co_return;
    case Phase::Bound:
      if (element.xmlns() == ns::kStreamManagement) {
        on_sm(element);
      } else if (element.xmlns() == ns::kCsi) {
        on_csi(element);
      } else if (is_stanza(element)) {
        ++server_.metrics.stanzas_in;
        co_await on_stanza(element);
        // XEP-0198 §4: a stanza counts as handled once its processing is complete (for room
        // messages that is after the commit, which on_stanza awaits).
        if (sm_enabled_) {
          ++sm_handled_;
        }
      } else {
        stream_error("unsupported-stanza-type", "unknown top-level element " + element.name());
      }
      co_return;
    case Phase::Closed:
      co_return;
  }
}

// ---- writing and closing ----

void Session::send(const XmlElement& element) {
  send(to_wire(element));
}

void Session::send(Wire wire) {
  count_sent(wire);
  enqueue(std::move(wire));
}

void Session::enqueue(Wire wire) {
  if (phase_ == Phase::Closed) {
    return;
  }
  if (queued_bytes_ + wire->size() > server_.config.max_write_queue_bytes) {
    // A client that does not read must not make the server buffer without bound.
    ++server_.metrics.slow_consumers;
    spdlog::warn("c2s {}: {} does not read fast enough; closing", stream_id_, remote_);
    close_now();
    return;
  }
  queued_bytes_ += wire->size();
  queue_.push_back(std::move(wire));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(transport_->executor(), write_loop(), asio::detached);
  }
}

net::Awaitable<void> Session::write_loop() {
  auto self = shared_from_this();
  std::vector<Wire> batch;
  while (!queue_.empty() && phase_ != Phase::Closed) {
    batch.clear();
    while (!queue_.empty() && batch.size() < 64) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    const auto wrote = co_await transport_->write(batch);
    const auto ec = std::get<0>(wrote);
    for (const auto& w : batch) {
      queued_bytes_ -= w->size();
    }
    if (ec) {
      close_now();
      break;
    }
  }
  writing_ = false;
  if (close_after_flush_) {
    close_now();
  }
}

void Session::close_moved(std::string endpoint, std::string text, std::string extra_xml) {
  asio::post(transport_->executor(), [self = shared_from_this(), endpoint = std::move(endpoint),
                                      text = std::move(text), extra = std::move(extra_xml)] {
    if (self->hibernating_) {
      self->hibernating_ = false;
      self->resume_timer_.cancel();
      self->end_session();
      return;
    }
    self->stream_error(endpoint.empty() ? "reset" : "see-other-host", text, endpoint, extra);
  });
}

void Session::stream_error(std::string_view condition, std::string_view text) {
  stream_error(condition, text, {}, {});
}

void Session::stream_error(std::string_view condition, std::string_view text,
                           std::string_view content, std::string_view extra_xml) {
  if (closing_ || phase_ == Phase::Closed) {
    return;
  }
  closing_ = true;
  ++server_.metrics.stream_errors;
  if (!header_sent_) {
    // RFC 6120 §4.9.1.1: an error before the header still needs an opened stream.
    send(to_wire(net::stream_open(framing(), stream_id_, server_.config.domain)));
    header_sent_ = true;
  }
  if (condition == "see-other-host" && framing() == net::Framing::WebSocket) {
    // A host:port means nothing to a web client, which dials its configured URL again
    // (RFC 7395 §3.6.1 would name a ws:// URI); any node of the group serves it.
    condition = "reset";
    content = {};
  }
  std::string wire = net::stream_element_start(framing(), "error");
  wire += "<" + std::string(condition) + " xmlns='" + ns::kStreamErrors + "'";
  wire += content.empty() ? "/>"
                          : ">" + xmpp::xml_escape(content) + "</" + std::string(condition) + ">";
  if (!text.empty()) {
    wire += "<text xmlns='" + std::string(ns::kStreamErrors) + "'>" + xmpp::xml_escape(text) +
            "</text>";
  }
  wire += extra_xml;
  wire += "</stream:error>";
  send(to_wire(std::move(wire)));
  send(to_wire(std::string(net::stream_close(framing()))));
  close_after_flush_ = true;
  if (!writing_) {
    close_now();
    return;
  }
  // Do not wait forever on a client that stopped reading.
  close_timer_.expires_after(kCloseGrace);
  close_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) {
      self->close_now();
    }
  });
}

void Session::close_now() {
  if (phase_ == Phase::Closed) {
    return;
  }
  phase_ = Phase::Closed;
  closing_ = true;
  auth_timer_.cancel();
  idle_timer_.cancel();
  throttle_timer_.cancel();
  transport_->close();
}

void Session::on_closed() {
  if (resumed_) {
    registered_in_router_ = false;  // the resuming connection carries on with everything
  } else if (registered_in_router_ && lost_ && !sm_id_.empty() &&
             server_.config.resume_timeout.count() > 0) {
    hibernate();
  } else if (registered_in_router_) {
    end_session();
  }
  if (!writing_) {
    close_timer_.cancel();
    close_now();
    return;
  }
  // A stream error and its close are still being written (over WebSocket, one message
  // each): let them out, within the grace.
  close_after_flush_ = true;
  close_timer_.expires_after(kCloseGrace);
  close_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) {
      self->close_now();
    }
  });
}

void Session::end_session() {
  if (!registered_in_router_) {
    return;
  }
  registered_in_router_ = false;
  server_.router.unbind(jid_, this);
  if (!sm_id_.empty()) {
    server_.resumable.erase(sm_id_, this);
  }
  // RFC 6121 §4.5.2: the server sends unavailable presence on the client's behalf, to its
  // other resources if it was available, and to every room and user it sent presence to
  // (a client may join rooms without ever sending initial presence).
  XmlElement gone("presence", ns::kClient);
  gone.set_attr("from", jid_.str());
  gone.set_attr("type", "unavailable");
  if (available_) {
    available_ = false;
    broadcast_own_presence(gone);
    // ... and to its contacts (the roster is read on the store's thread; nothing here
    // waits for it).
    asio::co_spawn(
        transport_->executor(),
        [&server = server_, &store = shard_.cluster_store(), jid = jid_,
         gone]() -> net::Awaitable<void> {
          im::UserServices users(server, store);
          co_await users.broadcast_presence(jid, gone, false);
        },
        asio::detached);
  }
  end_directed_presence(gone);
  requeue_unacked();
  spdlog::debug("c2s {}: {} disconnected", stream_id_, jid_.str());
}

void Session::requeue_unacked() {
  std::vector<XmlElement> messages;
  for (const auto& wire : sm_unacked_) {
    auto stanza = xmpp::parse_element(*wire);
    if (stanza && stanza->name() == "message" && im::UserServices::offline_eligible(*stanza)) {
      messages.push_back(std::move(*stanza));
    }
  }
  sm_unacked_.clear();
  sm_unacked_bytes_ = 0;
  if (messages.empty()) {
    return;
  }
  spdlog::debug("c2s {}: {} unacknowledged messages of {} go to its other resources or storage",
                stream_id_, messages.size(), jid_.str());
  asio::co_spawn(
      transport_->executor(),
      [&server = server_, &store = shard_.cluster_store(), bare = jid_.bare(),
       messages = std::move(messages)]() mutable -> net::Awaitable<void> {
        im::UserServices users(server, store);
        for (auto& m : messages) {
          m.set_attr("to", bare.str());
          if (user_online(server, bare)) {
            broker::route_to_user(server, m, bare, UserHop::Origin, false);
          } else {
            co_await users.store_offline(bare, m);
          }
        }
      },
      asio::detached);
}

}  // namespace tc::broker
