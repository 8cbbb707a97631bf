// SPDX-License-Identifier: Apache-2.0
// Session: stream negotiation before the stream is bound (STARTTLS, SASL, XEP-0077
// registration, resource binding) and XEP-0198 stream management.
#include <chrono>
#include <cstdlib>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "storage/errc.h"
#include "xmpp/errc.h"
#include "xmpp/namespaces.h"

#include "accounts.h"
#include "ha/cluster_view.h"
#include "net/session.h"
#include "net/user_routing.h"
#include "server_context.h"
#include "shard/shard.h"

namespace tc::broker {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using xmpp::XmlElement;

namespace {

constexpr int kMaxSaslFailures = 3;

XmlElement sasl_element(std::string name, std::string_view payload) {
  XmlElement e(std::move(name), ns::kSasl);
  if (!payload.empty()) {
    e.add_text(xmpp::base64_encode(payload));
  }
  return e;
}

}  // namespace

bool Session::plain_allowed() const {
  return transport_->is_secure() ||
         (server_.config.allow_plain_without_tls && transport_->is_loopback());
}

// ---- STARTTLS (RFC 6120 §5) ----

net::Awaitable<void> Session::on_starttls() {
  const auto tls = server_.tls_context();
  if (tls == nullptr) {
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
  const auto ec = co_await transport_->start_tls(*tls);
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
  if (server_.login_throttle) {
    // Password guessing: an address with too many recent failures is refused before any
    // password is checked (no PBKDF2 spent on it either).
    const auto wait = server_.login_throttle->blocked_for(address(), LimitClock::now());
    if (wait.count() > 0) {
      ++server_.metrics.logins_throttled;
      co_await sasl_failure("temporary-auth-failure",
                            "too many failed logins from your address; try again in " +
                                std::to_string((wait.count() + 999) / 1000) + " s");
      co_return;
    }
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
          co_await shard_.cluster_store().async_call(std::move(account_job), asio::use_awaitable);
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
    if (!plain_allowed()) {
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
    auto account =
        co_await shard_.cluster_store().async_call(std::move(load_job), asio::use_awaitable);
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
  if (condition == "not-authorized" && server_.login_throttle) {
    server_.login_throttle->failed(address(), LimitClock::now());
  }
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
  if (server_.config.tls_required && !transport_->is_secure()) {
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
    created =
        co_await shard_.cluster_store().async_call(std::move(create_job), asio::use_awaitable);
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

std::string Session::own_partition_elsewhere() const {
  if (server_.cluster == nullptr) {
    return {};
  }
  const auto view = server_.cluster->get();
  if (!view->clustered) {
    return {};
  }
  const std::string holder = view->holder(view->self);
  return holder == view->self ? std::string() : holder;
}

void Session::send_elsewhere(const std::string& holder) {
  std::string endpoint;
  if (server_.cluster != nullptr) {
    const auto view = server_.cluster->get();
    if (auto it = view->client_endpoints.find(holder); it != view->client_endpoints.end()) {
      endpoint = it->second;
    }
  }
  stream_error(endpoint.empty() ? "reset" : "see-other-host", server_.relogin_text(holder),
               endpoint, server_.relogin_xml());
}

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
        // Only the stream error: a client whose bind fails first (slixmpp raises on the
        // IQ error) never reads the see-other-host behind it.
        send_elsewhere(holder);
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

namespace {

/// Whether a serialised element is a stanza (what XEP-0198 counts), not a nonza.
bool is_stanza_wire(std::string_view xml) {
  for (std::string_view name : {"<message", "<presence", "<iq"}) {
    if (xml.starts_with(name) && xml.size() > name.size()) {
      const char next = xml[name.size()];
      return next == ' ' || next == '>' || next == '/';
    }
  }
  return false;
}

XmlElement sm_failed(std::string_view condition, std::string_view text = {}) {
  XmlElement failed("failed", ns::kStreamManagement);
  failed.add_child(std::string(condition), ns::kStanzaErrors);
  if (!text.empty()) {
    failed.add_child("text", ns::kStanzaErrors).add_text(std::string(text));
  }
  return failed;
}

}  // namespace

void Session::on_sm(const XmlElement& element) {
  if (element.name() == "enable") {
    if (sm_enabled_) {
      send(sm_failed("unexpected-request"));
      return;
    }
    sm_enabled_ = true;
    sm_handled_ = 0;
    XmlElement enabled("enabled", ns::kStreamManagement);
    const std::string_view resume = element.attr("resume");
    const auto timeout = server_.config.resume_timeout;
    if ((resume == "true" || resume == "1") && timeout.count() > 0) {
      // §5: resumable on this node, for client.resume_timeout after the connection is lost.
      sm_id_ = xmpp::random_token(24);
      server_.resumable.put(sm_id_, {weak_from_this(), username_, nullptr});
      enabled.set_attr("id", sm_id_).set_attr("resume", "true");
      enabled.set_attr("max",
                       std::to_string(std::max<long long>(
                           1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count())));
    }
    send(enabled);
  } else if (element.name() == "r") {
    if (!sm_enabled_) {
      stream_error("unsupported-stanza-type", "stream management is not enabled");
      return;
    }
    XmlElement ack("a", ns::kStreamManagement);
    ack.set_attr("h", std::to_string(sm_handled_));
    send(ack);
  } else if (element.name() == "a") {
    const auto h = static_cast<std::uint32_t>(std::strtoull(element.attr("h").data(), nullptr, 10));
    if (sm_enabled_ && !sm_ack(h)) {
      stream_error("undefined-condition", "h acknowledges more stanzas than were sent", {},
                   "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='" + std::to_string(h) +
                       "' send-count='" +
                       std::to_string(sm_acked_ + static_cast<std::uint32_t>(sm_unacked_.size())) +
                       "'/>");
    }
  } else {
    stream_error("unsupported-stanza-type", "unknown stream management element");
  }
}

bool Session::sm_ack(std::uint32_t h) {
  const std::uint32_t newly = h - sm_acked_;  // mod 2^32, as the counts are
  if (newly > sm_unacked_.size()) {
    return false;
  }
  for (std::uint32_t i = 0; i < newly; ++i) {
    sm_unacked_bytes_ -= sm_unacked_.front()->size();
    sm_unacked_.pop_front();
  }
  sm_acked_ = h;
  return true;
}

void Session::count_sent(const Wire& wire) {
  if (sm_id_.empty() || resumed_ || (phase_ != Phase::Bound && !hibernating_) ||
      !is_stanza_wire(*wire)) {
    return;
  }
  sm_unacked_.push_back(wire);
  sm_unacked_bytes_ += wire->size();
  if (sm_unacked_bytes_ > server_.config.max_write_queue_bytes) {
    // A client that never acknowledges must not make the server keep everything.
    spdlog::info("c2s {}: {} leaves {} stanzas unacknowledged; ending the session", stream_id_,
                 jid_.str(), sm_unacked_.size());
    if (hibernating_) {
      hibernating_ = false;
      resume_timer_.cancel();
      end_session();
    } else {
      stream_error("policy-violation", "too many unacknowledged stanzas");
    }
    return;
  }
  if (!hibernating_ && sm_unacked_.size() % 32 == 0) {
    send(XmlElement("r", ns::kStreamManagement));  // §4: ask for an ack now and then
  }
}

void Session::hibernate() {
  hibernating_ = true;
  spdlog::debug("c2s {}: {} lost its connection; resumable for {} ms", stream_id_, jid_.str(),
                server_.config.resume_timeout.count());
  // The table keeps the session alive while it hibernates (the router holds it weakly).
  server_.resumable.put(sm_id_, {weak_from_this(), username_, shared_from_this()});
  resume_timer_.expires_after(server_.config.resume_timeout);
  resume_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->hibernating_) {
      self->hibernating_ = false;
      spdlog::debug("c2s {}: {} was not resumed in time", self->stream_id_, self->jid_.str());
      self->end_session();
    }
  });
}

std::optional<Session::HandOver> Session::hand_over(const std::shared_ptr<Session>& successor,
                                                    const std::string& username, std::uint32_t h) {
  if (resumed_ || sm_id_.empty() || username != username_ || !registered_in_router_) {
    spdlog::debug("c2s {}: not resumable (resumed {}, id {}, user {}, bound {})", stream_id_,
                  resumed_, sm_id_, username_, registered_in_router_);
    return std::nullopt;
  }
  if (!sm_ack(h)) {
    return std::nullopt;
  }
  resumed_ = true;
  successor_ = successor;
  hibernating_ = false;
  resume_timer_.cancel();
  server_.resumable.erase(sm_id_, this);  // the successor puts itself there
  if (phase_ != Phase::Closed) {
    // The old connection is still open (its loss not noticed yet): it is simply dropped.
    close_now();
  }
  HandOver out;
  out.jid = jid_;
  out.handled = sm_handled_;
  out.acked = sm_acked_;
  out.unacked = std::move(sm_unacked_);
  out.directed_presence = std::move(directed_presence_);
  out.available = available_;
  out.priority = priority_;
  out.last_presence = last_presence_;
  out.carbons = carbons_.load(std::memory_order_relaxed);
  out.waiting_delivered = waiting_delivered_;
  out.caps_key = caps_key_;
  out.notify_nodes = notify_nodes_;
  sm_unacked_.clear();
  sm_unacked_bytes_ = 0;
  return out;
}

net::Awaitable<std::optional<Session::HandOver>> Session::take_over(std::shared_ptr<Session> old,
                                                                    std::uint32_t h) {
  // Not a coroutine: the initiation's captures live here, outside any co_await expression
  // (GCC 12 may destroy such temporaries twice).
  auto self = shared_from_this();
  auto initiate = [old = std::move(old), self, h](auto handler) {
    auto on_old_shard = [old, self, h, handler = std::move(handler)]() mutable {
      auto taken = old->hand_over(self, self->username_, h);
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, [handler = std::move(handler), taken = std::move(taken)]() mutable {
        std::move(handler)(std::move(taken));
      });
    };
    asio::post(old->transport_->executor(), std::move(on_old_shard));
  };
  return asio::async_initiate<decltype(asio::use_awaitable), void(std::optional<HandOver>)>(
      std::move(initiate), asio::use_awaitable);
}

net::Awaitable<void> Session::on_resume(const XmlElement& resume) {
  const std::string previd(resume.attr("previd"));
  const auto h = static_cast<std::uint32_t>(std::strtoull(resume.attr("h").data(), nullptr, 10));
  const auto entry = server_.resumable.find(previd);
  auto old = entry ? std::dynamic_pointer_cast<Session>(entry->stream.lock()) : nullptr;
  if (!old || entry->username != username_) {
    spdlog::debug("c2s {}: {} has no session {} to resume (known {}, alive {})", stream_id_,
                  username_, previd, entry.has_value(), old != nullptr);
    // Unknown here: expired, ended, or held by a node that failed over. The client binds
    // a new session (§5, and the operator guide).
    send(sm_failed("item-not-found", "no session to resume on this node; bind a new one"));
    co_return;
  }
  // The old session lives on its own shard: its state is read there.
  auto state = co_await take_over(std::move(old), h);
  if (!state) {
    spdlog::debug("c2s {}: {} cannot resume {} (h {})", stream_id_, username_, previd, h);
    send(sm_failed("item-not-found", "the session cannot be resumed (or h is wrong)"));
    co_return;
  }
  if (closing_) {
    co_return;  // this connection went while asking: the old one stays resumed by nobody
  }
  jid_ = state->jid;
  sm_enabled_ = true;
  sm_id_ = previd;
  sm_handled_ = state->handled;
  sm_acked_ = state->acked;
  sm_unacked_ = std::move(state->unacked);
  sm_unacked_bytes_ = 0;
  for (const auto& w : sm_unacked_) {
    sm_unacked_bytes_ += w->size();
  }
  directed_presence_ = std::move(state->directed_presence);
  available_ = state->available;
  priority_ = state->priority;
  last_presence_ = std::move(state->last_presence);
  carbons_ = state->carbons;
  waiting_delivered_ = state->waiting_delivered;
  caps_key_ = std::move(state->caps_key);
  notify_nodes_ = std::move(state->notify_nodes);
  const auto bound_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  server_.router.bind(jid_, shared_from_this(), bound_at);  // the old one is resumed_: not told
  registered_in_router_ = true;
  server_.resumable.put(sm_id_, {weak_from_this(), username_, nullptr});
  phase_ = Phase::Bound;
  auth_timer_.cancel();
  XmlElement resumed("resumed", ns::kStreamManagement);
  resumed.set_attr("previd", previd).set_attr("h", std::to_string(sm_handled_));
  send(resumed);
  // §5: what the client had not acknowledged is sent again, in order.
  for (const auto& w : sm_unacked_) {
    enqueue(w);
  }
  spdlog::debug("c2s {}: resumed {} ({} stanzas sent again)", stream_id_, jid_.str(),
                sm_unacked_.size());
}

}  // namespace tc::broker
