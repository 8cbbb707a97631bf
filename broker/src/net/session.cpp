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

#include "accounts.h"
#include "net/user_routing.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::XmlElement;

namespace {

constexpr std::string_view kVersion = "0.1.0";
constexpr int kMaxSaslFailures = 3;
constexpr auto kCloseGrace = std::chrono::seconds(5);

bool is_plain_allowed(const ServerContext& server, const net::Transport& transport) {
  return transport.is_tls() || (server.config.allow_plain_without_tls && transport.is_loopback());
}

XmlElement sasl_element(std::string name, std::string_view payload) {
  XmlElement e(std::move(name), ns::kSasl);
  if (!payload.empty()) {
    e.add_text(xmpp::base64_encode(payload));
  }
  return e;
}

}  // namespace

Session::Session(ServerContext& server, Shard& shard, net::Transport::Tcp::socket socket)
    : server_(server),
      shard_(shard),
      transport_(std::move(socket)),
      parser_(xmpp::ParserLimits{server.config.max_stanza_bytes, server.config.max_depth,
                                 server.config.max_attributes}),
      auth_timer_(transport_.executor()),
      close_timer_(transport_.executor()),
      stream_id_(xmpp::random_token(16)),
      remote_(transport_.remote_address()) {
  ++server_.metrics.connections_open;
}

Session::~Session() {
  --server_.metrics.connections_open;
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
  asio::co_spawn(transport_.executor(), read_loop(), [self = shared_from_this()](auto ep) {
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
  asio::post(transport_.executor(), [self = shared_from_this(), wire = std::move(wire)]() mutable {
    self->send(std::move(wire));
  });
}

void Session::close_with(std::string condition, std::string text) {
  asio::post(transport_.executor(),
             [self = shared_from_this(), condition = std::move(condition), text = std::move(text)] {
               self->stream_error(condition, text);
             });
}

// ---- reading ----

net::Awaitable<void> Session::read_loop() {
  auto self = shared_from_this();  // keeps the session alive while reading
  std::vector<char> buffer(16 * 1024);
  std::vector<xmpp::StreamEvent> events;
  while (!closing_ && phase_ != Phase::Closed) {
    const auto got = co_await transport_.read_some(asio::buffer(buffer));
    const auto ec = std::get<0>(got);
    const auto n = std::get<1>(got);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
        spdlog::debug("c2s {}: read: {}", stream_id_, ec.message());
      }
      break;
    }
    events.clear();
    const auto fed = parser_.feed(std::string_view(buffer.data(), n), events);
    for (auto& event : events) {
      if (closing_ || restart_) {
        break;
      }
      co_await on_event(event);
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
      send(to_wire(std::string("</stream:stream>")));
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
  std::string open =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
      "xmlns:stream='http://etherx.jabber.org/streams' id='" +
      stream_id_ + "' from='" + xmpp::xml_escape(server_.config.domain) +
      "' version='1.0' xml:lang='en'>";
  send(to_wire(std::move(open)));
  header_sent_ = true;

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
  if (phase_ == Phase::Header) {
    phase_ = (server_.config.tls_required && !transport_.is_tls()) ? Phase::Tls : Phase::Auth;
  }
  send_features();
}

void Session::send_features() {
  XmlElement features("features", ns::kStream);
  const bool can_tls = server_.tls != nullptr && !transport_.is_tls();
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
    if (is_plain_allowed(server_, transport_)) {
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
  }
  // The features element carries the stream prefix, which our serialiser does not do.
  std::string wire = "<stream:features>";
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
                 server_.tls != nullptr && !transport_.is_tls()) {
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

// ---- STARTTLS (RFC 6120 §5) ----

net::Awaitable<void> Session::on_starttls() {
  if (server_.tls == nullptr) {
    send(XmlElement("failure", ns::kTls));
    stream_error("undefined-condition", "TLS is not configured");
    co_return;
  }
  send(XmlElement("proceed", ns::kTls));
  // The proceed must be on the wire, unencrypted, before the handshake starts.
  while (writing_ && !closing_) {
    close_timer_.expires_after(std::chrono::milliseconds(1));
    co_await close_timer_.async_wait(net::kAsTuple);
  }
  if (closing_) {
    co_return;
  }
  const auto ec = co_await transport_.start_tls(*server_.tls);
  if (ec) {
    spdlog::info("c2s {}: TLS handshake with {} failed: {}", stream_id_, remote_, ec.message());
    closing_ = true;
    close_now();
    co_return;
  }
  phase_ = Phase::Auth;
  restart_ = true;
}

// ---- SASL (RFC 6120 §6) ----

net::Awaitable<void> Session::on_sasl(const XmlElement& element) {
  if (element.name() == "auth") {
    co_await on_sasl_auth(element);
  } else if (element.name() == "response") {
    co_await on_sasl_response(element);
  } else if (element.name() == "abort") {
    scram_.reset();
    XmlElement failure("failure", ns::kSasl);
    failure.add_child("aborted", ns::kSasl);
    send(failure);
  } else {
    stream_error("bad-format", "unknown SASL element");
  }
}

net::Awaitable<void> Session::on_sasl_auth(const XmlElement& auth) {
  const std::string mechanism(auth.attr("mechanism"));
  if (!server_.auth_serving) {
    co_await sasl_failure("temporary-auth-failure",
                          "the authentication service is stopped on this node");
    co_return;
  }
  const std::string text = auth.text();
  std::string payload;
  if (!text.empty() && text != "=") {
    auto decoded = xmpp::base64_decode(text);
    if (!decoded) {
      co_await sasl_failure("incorrect-encoding");
      co_return;
    }
    payload = std::move(*decoded);
  }

  if (mechanism == "SCRAM-SHA-256" || mechanism == "SCRAM-SHA-1") {
    const auto hash = mechanism == "SCRAM-SHA-1" ? xmpp::ScramHash::Sha1 : xmpp::ScramHash::Sha256;
    scram_.emplace(hash);
    auto user = scram_->on_client_first(payload);
    if (!user) {
      co_await sasl_failure("malformed-request");
      co_return;
    }
    auto username = normalize_username(*user);
    const auto& authzid = scram_->authzid();
    if (username && !authzid.empty() && authzid != *username + "@" + server_.config.domain) {
      co_await sasl_failure("invalid-authzid");
      co_return;
    }
    std::optional<xmpp::ScramCredentials> creds;
    if (username) {
      auto account_job = [u = *username](storage::Store& s) { return s.load_account(u); };
      auto account =
          co_await shard_.store().async_call(std::move(account_job), asio::use_awaitable);
      if (closing_ || !scram_) {
        co_return;  // the stream ended while the store worked
      }
      if (account) {
        creds = to_credentials(*account, hash);
        scram_username_ = *username;
      } else if (account.error() != storage::Errc::NotFound) {
        spdlog::warn("c2s {}: account lookup failed: {}", stream_id_, account.error().message());
        scram_.reset();
        co_await sasl_failure("temporary-auth-failure", "the account database is unavailable");
        co_return;
      }
    }
    // Unknown users get a plausible challenge too, so that they cannot be told apart.
    const auto first = scram_->server_first(creds, server_.config.scram_iterations);
    send(sasl_element("challenge", first));
    co_return;
  }

  if (mechanism == "PLAIN") {
    if (!is_plain_allowed(server_, transport_)) {
      co_await sasl_failure("encryption-required", "PLAIN needs TLS");
      co_return;
    }
    auto plain = xmpp::parse_sasl_plain(payload);
    if (!plain) {
      co_await sasl_failure("malformed-request");
      co_return;
    }
    auto username = normalize_username(plain->username);
    if (!username) {
      co_await sasl_failure("not-authorized");
      co_return;
    }
    if (!plain->authzid.empty() && plain->authzid != *username + "@" + server_.config.domain) {
      co_await sasl_failure("invalid-authzid");
      co_return;
    }
    // PBKDF2 runs on the store worker, not on this I/O thread.
    // The account comes from the store worker; PBKDF2 runs on the CPU pool, so neither an
    // I/O thread nor the archive's commits wait for it.
    auto load_job = [u = *username](storage::Store& s) { return s.load_account(u); };
    auto account = co_await shard_.store().async_call(std::move(load_job), asio::use_awaitable);
    if (closing_) {
      co_return;
    }
    Result<bool> verified = false;
    if (account) {
      auto verify_job = [creds = to_credentials(*account, xmpp::ScramHash::Sha256),
                         p = std::move(plain->password)]() {
        return xmpp::verify_password(creds, p);
      };
      verified = co_await server_.cpu->async_run(std::move(verify_job), asio::use_awaitable);
    } else if (account.error() != storage::Errc::NotFound) {
      verified = Result<bool>(boost::system::in_place_error, account.error());
    }
    if (closing_) {
      co_return;
    }
    if (!verified) {
      co_await sasl_failure("temporary-auth-failure", "the account database is unavailable");
    } else if (!*verified) {
      co_await sasl_failure("not-authorized");
    } else {
      sasl_success(*username, {});
    }
    co_return;
  }
  co_await sasl_failure("invalid-mechanism");
}

net::Awaitable<void> Session::on_sasl_response(const XmlElement& response) {
  if (!scram_) {
    co_await sasl_failure("malformed-request", "no exchange in progress");
    co_return;
  }
  auto payload = xmpp::base64_decode(response.text());
  if (!payload) {
    scram_.reset();
    co_await sasl_failure("incorrect-encoding");
    co_return;
  }
  auto final_message = scram_->on_client_final(*payload);
  scram_.reset();
  if (!final_message || scram_username_.empty()) {
    co_await sasl_failure(final_message.has_error() &&
                                  final_message.error() == xmpp::Errc::MalformedRequest
                              ? "malformed-request"
                              : "not-authorized");
    co_return;
  }
  sasl_success(scram_username_, *final_message);
}

net::Awaitable<void> Session::sasl_failure(std::string_view condition, std::string_view text) {
  ++server_.metrics.auth_failure;
  ++sasl_failures_;
  scram_.reset();
  scram_username_.clear();
  XmlElement failure("failure", ns::kSasl);
  failure.add_child(std::string(condition), ns::kSasl);
  if (!text.empty()) {
    failure.add_child("text", ns::kSasl).add_text(std::string(text));
  }
  send(failure);
  spdlog::info("c2s {}: SASL failure ({}) from {}", stream_id_, condition, remote_);
  if (sasl_failures_ >= kMaxSaslFailures) {
    stream_error("policy-violation", "too many failed authentication attempts");
  }
  co_return;
}

void Session::sasl_success(std::string username, std::string additional_data) {
  ++server_.metrics.auth_success;
  authenticated_ = true;
  auth_timer_.cancel();
  username_ = std::move(username);
  send(sasl_element("success", additional_data));
  spdlog::info("c2s {}: {} authenticated from {}", stream_id_, username_, remote_);
  phase_ = Phase::Bind;
  restart_ = true;
}

// ---- XEP-0077 in-band registration (before authentication) ----

net::Awaitable<void> Session::on_register_iq(const XmlElement& iq) {
  if (!server_.config.registration) {
    send(make_error_reply(iq, Condition::ServiceUnavailable, "in-band registration is disabled"));
    co_return;
  }
  if (server_.config.tls_required && !transport_.is_tls()) {
    send(make_error_reply(iq, Condition::NotAllowed, "STARTTLS first"));
    co_return;
  }
  const XmlElement* query = iq.child("query", ns::kRegister);
  if (iq.attr("type") == "get") {
    auto reply = make_iq_result(iq);
    auto& q = reply.add_child("query", ns::kRegister);
    q.add_child("instructions", ns::kRegister)
        .add_text("Choose a username and password to register with this server.");
    q.add_child("username", ns::kRegister);
    q.add_child("password", ns::kRegister);
    send(reply);
    co_return;
  }
  if (iq.attr("type") != "set") {
    co_return;
  }
  if (query->child("remove", ns::kRegister) != nullptr) {
    send(make_error_reply(iq, Condition::NotAllowed, "log in first"));
    co_return;
  }
  auto username = normalize_username(query->child_text("username", ns::kRegister));
  const std::string password = query->child_text("password", ns::kRegister);
  if (!username || password.empty()) {
    send(make_error_reply(iq, Condition::NotAcceptable,
                          "a valid username and a password are required"));
    co_return;
  }
  auto hash_job = [u = *username, p = password, iterations = server_.config.scram_iterations] {
    return make_account(u, p, iterations);  // PBKDF2: on the CPU pool
  };
  auto account = co_await server_.cpu->async_run(std::move(hash_job), asio::use_awaitable);
  Result<void> created = account.has_error() ? Result<void>(account.error()) : Result<void>();
  if (account) {
    auto create_job = [a = std::move(*account)](storage::Store& s) { return s.create_account(a); };
    created = co_await shard_.store().async_call(std::move(create_job), asio::use_awaitable);
  }
  if (closing_) {
    co_return;
  }
  if (created) {
    spdlog::info("c2s {}: registered account {}", stream_id_, *username);
    send(make_iq_result(iq));
  } else if (created.error() == storage::Errc::AlreadyExists) {
    send(make_error_reply(iq, Condition::Conflict, "that username is taken"));
  } else if (created.error() == xmpp::Errc::MalformedRequest) {
    send(make_error_reply(iq, Condition::NotAcceptable, "unusable password"));
  } else {
    send(make_error_reply(iq, {ErrorType::Wait, Condition::InternalServerError},
                          "the account database is unavailable"));
  }
}

// ---- resource binding (RFC 6120 §7) ----

void Session::on_bind(const XmlElement& iq) {
  if (iq.attr("type") != "set") {
    send(make_error_reply(iq, Condition::BadRequest));
    return;
  }
  std::string resource = iq.child("bind", ns::kBind)->child_text("resource", ns::kBind);
  if (resource.empty()) {
    resource = "tc-" + xmpp::random_token(12);  // RFC 6120 §7.6: server-generated
  }
  auto full = xmpp::Jid::from_parts(username_, server_.config.domain, resource);
  if (!full) {
    send(make_error_reply(iq, Condition::BadRequest, "resource not acceptable"));
    return;
  }
  if (server_.cluster != nullptr) {
    const auto view = server_.cluster->get();
    if (view->clustered) {
      // Any node serves any user (SPEC.md section 1), as long as the node itself serves: a
      // node whose own partition is held elsewhere (failed over, starting) sends the client
      // to whoever holds it. With redirect_users on, a user is also sent to the node that
      // holds its assigned partition (the vendor's behaviour).
      std::string holder = view->holder(view->self);
      const auto partition = view->user_partition(username_);
      if (holder == view->self && view->redirect_users && partition) {
        holder = view->holder(*partition);
      }
      if (holder != view->self) {
        std::string endpoint;
        if (auto it = view->client_endpoints.find(holder); it != view->client_endpoints.end()) {
          endpoint = it->second;
        }
        // Only the stream error: a client whose bind fails first (slixmpp raises on the
        // IQ error) never reads the see-other-host behind it.
        stream_error(endpoint.empty() ? "reset" : "see-other-host", server_.relogin_text(holder),
                     endpoint, server_.relogin_xml());
        return;
      }
      // A user whose assigned node is failed over and who logs in here (its backup) is moved
      // back to it on fallback.
      if (partition && *partition != view->self && view->holder(*partition) == view->self) {
        moved_in_ = *partition;
      }
    }
  }
  jid_ = *full;
  const auto bound_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  if (auto old = server_.router.bind(jid_, shared_from_this(), bound_at)) {
    // RFC 6120 §7.7.2.2: the newer session wins; the older one is told why.
    old->close_with("conflict", "replaced by a new connection");
  }
  registered_in_router_ = true;
  phase_ = Phase::Bound;
  auto reply = make_iq_result(iq);
  reply.remove_attr("from");
  reply.add_child("bind", ns::kBind).add_child("jid", ns::kBind).add_text(jid_.str());
  send(reply);
  spdlog::debug("c2s {}: bound {}", stream_id_, jid_.str());
}

// ---- XEP-0198 ----

void Session::on_sm(const XmlElement& element) {
  if (element.name() == "enable") {
    if (sm_enabled_) {
      XmlElement failed("failed", ns::kStreamManagement);
      failed.add_child("unexpected-request", ns::kStanzaErrors);
      send(failed);
      return;
    }
    sm_enabled_ = true;
    sm_handled_ = 0;
    // Resumption is not offered: a moved or restarted client logs in again.
    send(XmlElement("enabled", ns::kStreamManagement));
  } else if (element.name() == "r") {
    if (!sm_enabled_) {
      stream_error("unsupported-stanza-type", "stream management is not enabled");
      return;
    }
    XmlElement ack("a", ns::kStreamManagement);
    ack.set_attr("h", std::to_string(sm_handled_));
    send(ack);
  } else if (element.name() == "a") {
    // Acks of what we sent: we keep no outbound queue to trim (no resumption).
  } else {
    stream_error("unsupported-stanza-type", "unknown stream management element");
  }
}

// ---- stanzas ----

net::Awaitable<void> Session::on_stanza(XmlElement& stanza) {
  // RFC 6120 §8.1.2.1: the server stamps the full JID; a client may only claim its own.
  if (stanza.has_attr("from")) {
    const auto claimed = xmpp::Jid::parse(stanza.attr("from"));
    if (!claimed || (*claimed != jid_ && *claimed != jid_.bare())) {
      stream_error("invalid-from", "the from address is not this stream's");
      co_return;
    }
  }
  stanza.set_attr("from", jid_.str());
  const std::string_view type = stanza.attr("type");

  std::optional<xmpp::Jid> to;
  if (stanza.has_attr("to")) {
    auto parsed = xmpp::Jid::parse(stanza.attr("to"));
    if (!parsed) {
      if (type != "error" && type != "result") {
        send(make_error_reply(stanza, Condition::JidMalformed));
      }
      co_return;
    }
    to = *parsed;
    stanza.set_attr("to", to->str());  // normalised
  }

  const bool for_server =
      !to || (to->local().empty() && to->domain() == server_.config.domain && to->is_bare());
  const bool for_own_account = to && *to == jid_.bare();

  if (stanza.name() == "iq") {
    if (type != "get" && type != "set" && type != "result" && type != "error") {
      send(make_error_reply(stanza, Condition::BadRequest, "iq needs a type"));
      co_return;
    }
    if (stanza.attr("id").empty()) {
      send(make_error_reply(stanza, Condition::BadRequest, "iq needs an id"));
      co_return;
    }
    if (for_server || for_own_account) {
      if (type == "set" && stanza.child("query", ns::kRegister) != nullptr) {
        co_await on_password_change(stanza);
      } else {
        on_iq_for_server(stanza);
      }
      co_return;
    }
  }
  if (stanza.name() == "presence" && !to) {
    on_presence(stanza, to);
    co_return;
  }
  if (stanza.name() == "message" && !to) {
    // RFC 6120 §10.3.1: no 'to' means the sender's own bare JID.
    route_to_user(stanza, jid_.bare());
    co_return;
  }
  if (to->domain() == server_.muc->domain()) {
    if (stanza.name() == "presence") {
      track_directed_presence(stanza, *to);
    }
    // Completes once the room has handled it: for a groupchat message, after the commit, so
    // the XEP-0198 count (and the client's ack) never runs ahead of the database.
    co_await server_.muc->async_dispatch(std::move(stanza), jid_, asio::use_awaitable);
    co_return;
  }
  if (to->domain() != server_.config.domain) {
    if (type != "error" && type != "result") {
      send(make_error_reply(stanza, Condition::RemoteServerNotFound,
                            "this server does not federate"));
    }
    co_return;
  }
  if (to->local().empty()) {
    // A message or presence to the server itself (or to a resource of it).
    if (stanza.name() == "iq" && (type == "get" || type == "set")) {
      send(make_error_reply(stanza, Condition::ServiceUnavailable));
    }
    co_return;
  }
  if (stanza.name() == "presence") {
    on_presence(stanza, to);
    co_return;
  }
  route_to_user(stanza, *to);
}

void Session::on_iq_for_server(const XmlElement& iq) {
  const std::string_view type = iq.attr("type");
  if (type == "result" || type == "error") {
    return;  // answers to nothing we asked; RFC 6120 §8.2.3 says do not reply
  }
  const XmlElement* payload = iq.first_element();
  if (payload == nullptr) {
    send(make_error_reply(iq, Condition::BadRequest, "empty iq"));
    return;
  }
  const std::string& name = payload->name();
  const std::string& xmlns = payload->xmlns();
  const bool get = type == "get";
  const bool to_account = iq.has_attr("to") && xmpp::Jid::parse(iq.attr("to"))->local() != "";

  if (get && name == "ping" && xmlns == ns::kPing) {
    send(make_iq_result(iq));  // XEP-0199 §4.1
    return;
  }
  if (get && name == "query" && xmlns == ns::kDiscoInfo) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kDiscoInfo);
    if (!payload->attr("node").empty()) {
      send(make_error_reply(iq, Condition::ItemNotFound));
      return;
    }
    auto& identity = query.add_child("identity", ns::kDiscoInfo);
    if (to_account) {
      identity.set_attr("category", "account").set_attr("type", "registered");
    } else {
      identity.set_attr("category", "server").set_attr("type", "im").set_attr("name", "tcbroker");
    }
    for (const char* feature : {ns::kDiscoInfo, ns::kDiscoItems, ns::kPing, ns::kVersion,
                                ns::kRoster, ns::kStreamManagement}) {
      query.add_child("feature", ns::kDiscoInfo).set_attr("var", feature);
    }
    if (server_.config.registration) {
      query.add_child("feature", ns::kDiscoInfo).set_attr("var", ns::kRegister);
    }
    send(reply);
    return;
  }
  if (get && name == "query" && xmlns == ns::kDiscoItems) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kDiscoItems);
    if (!to_account) {
      query.add_child("item", ns::kDiscoItems)
          .set_attr("jid", server_.muc->domain())
          .set_attr("name", "Chat rooms");
    }
    send(reply);
    return;
  }
  if (name == "query" && xmlns == ns::kRoster) {
    if (get) {
      // Rosters are not stored: this is a chat-room broker. An empty roster lets every
      // client proceed (RFC 6121 §2.1.3).
      auto reply = make_iq_result(iq);
      reply.add_child("query", ns::kRoster);
      send(reply);
    } else {
      send(make_error_reply(iq, Condition::FeatureNotImplemented,
                            "rosters are not stored by this server"));
    }
    return;
  }
  if (!get && name == "session" && xmlns == ns::kSession) {
    send(make_iq_result(iq));  // RFC 3921 legacy no-op
    return;
  }
  if (get && name == "query" && xmlns == ns::kVersion && !to_account) {
    auto reply = make_iq_result(iq);
    auto& query = reply.add_child("query", ns::kVersion);
    query.add_child("name", ns::kVersion).add_text("tcbroker");
    query.add_child("version", ns::kVersion).add_text(std::string(kVersion));
    send(reply);
    return;
  }
  send(make_error_reply(iq, Condition::ServiceUnavailable));
}

net::Awaitable<void> Session::on_password_change(const XmlElement& iq) {
  // XEP-0077 §3.3: change of password by an authenticated user.
  const XmlElement* query = iq.child("query", ns::kRegister);
  if (query->child("remove", ns::kRegister) != nullptr) {
    send(make_error_reply(iq, Condition::NotAllowed, "accounts are removed by an administrator"));
    co_return;
  }
  const auto username = normalize_username(query->child_text("username", ns::kRegister));
  const std::string password = query->child_text("password", ns::kRegister);
  if (!username || *username != username_ || password.empty()) {
    send(
        make_error_reply(iq, Condition::BadRequest, "give your own username and the new password"));
    co_return;
  }
  auto hash_job = [u = username_, p = password, iterations = server_.config.scram_iterations] {
    return make_account(u, p, iterations);  // PBKDF2: on the CPU pool
  };
  auto account = co_await server_.cpu->async_run(std::move(hash_job), asio::use_awaitable);
  Result<void> changed = account.has_error() ? Result<void>(account.error()) : Result<void>();
  if (account) {
    auto update_job = [a = std::move(*account)](storage::Store& s) { return s.update_account(a); };
    changed = co_await shard_.store().async_call(std::move(update_job), asio::use_awaitable);
  }
  if (closing_) {
    co_return;
  }
  if (changed) {
    send(make_iq_result(iq));
  } else if (changed.error() == xmpp::Errc::MalformedRequest) {
    send(make_error_reply(iq, Condition::NotAcceptable, "unusable password"));
  } else {
    send(make_error_reply(iq, {ErrorType::Wait, Condition::InternalServerError}));
  }
}

void Session::route_to_user(XmlElement& stanza, const xmpp::Jid& to) {
  broker::route_to_user(server_, stanza, to, UserHop::Origin);
}

void Session::on_presence(XmlElement& presence, const std::optional<xmpp::Jid>& to) {
  const std::string_view type = presence.attr("type");
  if (!to) {
    if (type.empty() || type == "unavailable") {
      available_ = type.empty();
      const auto priority = presence.child_text("priority", ns::kClient);
      priority_ = priority.empty() ? 0 : std::atoi(priority.c_str());
      broadcast_own_presence(presence);
      if (!available_) {
        end_directed_presence(presence);
      }
    }
    return;  // subscription management without a roster has nothing to do
  }
  track_directed_presence(presence, *to);
  broker::route_to_user(server_, presence, *to, UserHop::Origin);
}

void Session::end_directed_presence(const XmlElement& unavailable) {
  for (const auto& target : directed_presence_) {
    auto jid = xmpp::Jid::parse(target);
    if (!jid) {
      continue;
    }
    XmlElement copy = unavailable;
    copy.set_attr("to", target);
    if (jid->domain() == server_.muc->domain()) {
      server_.muc->async_dispatch(std::move(copy), jid_, asio::detached);  // leaves the room
    } else if (jid->domain() == server_.config.domain && !jid->local().empty()) {
      broker::route_to_user(server_, copy, *jid, UserHop::Origin);
    }
  }
  directed_presence_.clear();
}

void Session::track_directed_presence(const XmlElement& presence, const xmpp::Jid& to) {
  // RFC 6121 §4.6: whoever got directed presence gets unavailable presence when we go.
  const std::string_view type = presence.attr("type");
  if (type.empty()) {
    directed_presence_.insert(to.str());
  } else if (type == "unavailable" || type == "error") {
    directed_presence_.erase(to.str());
  }
}

void Session::broadcast_own_presence(const XmlElement& presence) {
  // RFC 6121 §4.2.2: the user's own resources, this one included, see its presence.
  for (const auto& s : server_.router.sessions_of(jid_.bare())) {
    XmlElement copy = presence;
    copy.set_attr("to", s->jid().str());
    s->deliver(to_wire(copy));
  }
  // ... and so do its resources on other nodes of the cluster.
  if (auto* remote = server_.router.remote_routes()) {
    for (const auto& [node, full] : server_.router.remote_sessions_of(jid_.bare())) {
      XmlElement copy = presence;
      copy.set_attr("to", full.str());
      remote->forward_to_user(node, full, copy, false);
    }
  }
}

// ---- writing and closing ----

void Session::send(const XmlElement& element) {
  send(to_wire(element));
}

void Session::send(Wire wire) {
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
    asio::co_spawn(transport_.executor(), write_loop(), asio::detached);
  }
}

net::Awaitable<void> Session::write_loop() {
  auto self = shared_from_this();
  std::vector<Wire> batch;
  std::vector<asio::const_buffer> buffers;
  while (!queue_.empty() && phase_ != Phase::Closed) {
    batch.clear();
    buffers.clear();
    while (!queue_.empty() && batch.size() < 64) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      buffers.push_back(asio::buffer(*batch.back()));
    }
    const auto wrote = co_await transport_.write(buffers);
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
  asio::post(transport_.executor(), [self = shared_from_this(), endpoint = std::move(endpoint),
                                     text = std::move(text), extra = std::move(extra_xml)] {
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
  std::string wire;
  if (!header_sent_) {
    // RFC 6120 §4.9.1.1: an error before the header still needs an opened stream.
    wire =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' id='" +
        stream_id_ + "' from='" + xmpp::xml_escape(server_.config.domain) + "' version='1.0'>";
  }
  wire += "<stream:error><" + std::string(condition) + " xmlns='" + ns::kStreamErrors + "'";
  wire += content.empty() ? "/>"
                          : ">" + xmpp::xml_escape(content) + "</" + std::string(condition) + ">";
  if (!text.empty()) {
    wire += "<text xmlns='" + std::string(ns::kStreamErrors) + "'>" + xmpp::xml_escape(text) +
            "</text>";
  }
  wire += extra_xml;
  wire += "</stream:error></stream:stream>";
  send(to_wire(std::move(wire)));
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
  transport_.close();
}

void Session::on_closed() {
  close_timer_.cancel();
  if (!registered_in_router_) {
    close_now();
    return;
  }
  registered_in_router_ = false;
  server_.router.unbind(jid_, this);
  // RFC 6121 §4.5.2: the server sends unavailable presence on the client's behalf, to its
  // other resources if it was available, and to every room and user it sent presence to
  // (a client may join rooms without ever sending initial presence).
  XmlElement gone("presence", ns::kClient);
  gone.set_attr("from", jid_.str());
  gone.set_attr("type", "unavailable");
  if (available_) {
    available_ = false;
    broadcast_own_presence(gone);
  }
  end_directed_presence(gone);
  spdlog::debug("c2s {}: {} disconnected", stream_id_, jid_.str());
  if (!writing_) {
    close_now();
  } else {
    close_after_flush_ = true;
  }
}

}  // namespace tc::broker
