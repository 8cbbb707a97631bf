// SPDX-License-Identifier: Apache-2.0
#include "gloox_client.h"

#include <algorithm>
#include <string_view>

#include <gloox/delayeddelivery.h>
#include <gloox/disco.h>
#include <gloox/error.h>
#include <gloox/event.h>
#include <gloox/iq.h>
#include <gloox/jid.h>
#include <gloox/stanzaextension.h>
#include <gloox/tag.h>

namespace tc::integration {
namespace {

/// recv() slice: how long posted work may wait for the client thread.
constexpr int kRecvSliceMicros = 20'000;
constexpr std::size_t kMaxLogLines = 400;
constexpr std::string_view kUnknownNamespace = "urn:example:tcbroker:no-such-namespace";

/// A payload in a namespace nobody implements, so the server must answer <service-unavailable/>
/// (RFC 6120 §8.4).
class UnknownQuery final : public gloox::StanzaExtension {
 public:
  static constexpr int kType = gloox::ExtUser + 4711;
  UnknownQuery() : gloox::StanzaExtension(kType) {}
  const std::string& filterString() const override {
    static const std::string filter = "/iq/query[@xmlns='" + std::string(kUnknownNamespace) + "']";
    return filter;
  }
  gloox::StanzaExtension* newInstance(const gloox::Tag* /*tag*/) const override {
    return new UnknownQuery;
  }
  gloox::Tag* tag() const override {
    return new gloox::Tag("query", "xmlns", std::string(kUnknownNamespace));
  }
  gloox::StanzaExtension* clone() const override { return new UnknownQuery; }
};

/// XEP-0359 <stanza-id/>, which gloox 1.0 does not know: registered so that messages keep it.
class StanzaIdExtension final : public gloox::StanzaExtension {
 public:
  static constexpr int kType = gloox::ExtUser + 4712;
  explicit StanzaIdExtension(std::string id = {})
      : gloox::StanzaExtension(kType), id_(std::move(id)) {}
  const std::string& filterString() const override {
    static const std::string filter = "/message/stanza-id[@xmlns='urn:xmpp:sid:0']";
    return filter;
  }
  gloox::StanzaExtension* newInstance(const gloox::Tag* tag) const override {
    return new StanzaIdExtension(tag ? tag->findAttribute("id") : std::string());
  }
  gloox::Tag* tag() const override {
    auto* t = new gloox::Tag("stanza-id", "xmlns", "urn:xmpp:sid:0");
    t->addAttribute("id", id_);
    return t;
  }
  gloox::StanzaExtension* clone() const override { return new StanzaIdExtension(id_); }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
};

template <class T>
std::optional<T> take_by_context(std::vector<std::pair<int, T>>& results, int context) {
  auto it = std::find_if(results.begin(), results.end(),
                         [context](const auto& entry) { return entry.first == context; });
  if (it == results.end()) {
    return std::nullopt;
  }
  T value = std::move(it->second);
  results.erase(it);
  return value;
}

}  // namespace

bool DiscoInfoResult::has_feature(const std::string& var) const {
  return std::find(features.begin(), features.end(), var) != features.end();
}

bool DiscoInfoResult::has_identity(const std::string& category, const std::string& type) const {
  return std::find(identities.begin(), identities.end(), std::pair{category, type}) !=
         identities.end();
}

GlooxClient::GlooxClient(Options options)
    : options_(std::move(options)), thread_([this] { run(); }) {}

GlooxClient::~GlooxClient() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void GlooxClient::run() {
  client_ =
      std::make_unique<gloox::Client>(gloox::JID(options_.jid), options_.password, options_.port);
  client_->setServer("127.0.0.1");  // the JID's domain stays the stream's 'to'
  client_->setPort(options_.port);
  client_->setTls(options_.tls);
  client_->setSASLMechanisms(options_.sasl_mechanisms);
  client_->setCompression(false);
  client_->registerConnectionListener(this);
  client_->registerMessageHandler(this);
  client_->registerStanzaExtension(new StanzaIdExtension);
  client_->registerStanzaExtension(new gloox::DelayedDelivery());  // XEP-0203 on messages
  client_->logInstance().registerLogHandler(gloox::LogLevelDebug, gloox::LogAreaAll, this);

  if (!client_->connect(false)) {
    mark_disconnected(gloox::ConnConnectionRefused);
  }
  while (true) {
    std::deque<std::function<void()>> tasks;
    bool connected_or_connecting = false;
    {
      std::unique_lock lock(mutex_);
      if (state_ == State::Disconnected) {
        // Nothing to receive any more: sleep until there is work or we are told to stop.
        changed_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      }
      if (stop_) {
        break;
      }
      tasks.swap(tasks_);
      connected_or_connecting = state_ != State::Disconnected;
    }
    for (auto& task : tasks) {
      task();
    }
    if (connected_or_connecting) {
      const gloox::ConnectionError e = client_->recv(kRecvSliceMicros);
      if (e != gloox::ConnNoError) {
        mark_disconnected(e);
      }
    }
  }
  if (state() != State::Disconnected) {
    client_->disconnect();
  }
  client_.reset();
}

void GlooxClient::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  changed_.notify_all();
}

void GlooxClient::mark_disconnected(gloox::ConnectionError e) {
  {
    std::lock_guard lock(mutex_);
    if (!disconnect_reason_) {
      disconnect_reason_ = e;
    }
    state_ = State::Disconnected;
  }
  changed_.notify_all();
}

int GlooxClient::next_context() {
  std::lock_guard lock(mutex_);
  return ++context_counter_;
}

GlooxClient::State GlooxClient::wait_settled(Millis timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [this] { return state_ != State::Connecting; });
  return state_;
}

std::optional<gloox::ConnectionError> GlooxClient::wait_disconnected(Millis timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [this] { return state_ == State::Disconnected; });
  return disconnect_reason_;
}

GlooxClient::State GlooxClient::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

gloox::AuthenticationError GlooxClient::auth_error() const {
  std::lock_guard lock(mutex_);
  return auth_error_;
}

gloox::StreamError GlooxClient::stream_error() const {
  std::lock_guard lock(mutex_);
  return stream_error_;
}

std::string GlooxClient::bound_jid() const {
  std::lock_guard lock(mutex_);
  return bound_jid_;
}

std::string GlooxClient::tls_protocol() const {
  std::lock_guard lock(mutex_);
  return tls_protocol_;
}

std::optional<gloox::Event::EventType> GlooxClient::ping(const std::string& to, Millis timeout) {
  {
    std::lock_guard lock(mutex_);
    ping_events_.clear();
  }
  post([this, to] { client_->xmppPing(gloox::JID(to), this); });
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [this] { return !ping_events_.empty(); })) {
    return std::nullopt;
  }
  const auto event = ping_events_.front();
  ping_events_.pop_front();
  return event;
}

std::optional<DiscoInfoResult> GlooxClient::disco_info(const std::string& to, Millis timeout) {
  const int context = next_context();
  post([this, to, context] {
    client_->disco()->getDiscoInfo(gloox::JID(to), gloox::EmptyString, this, context);
  });
  std::unique_lock lock(mutex_);
  std::optional<DiscoInfoResult> result;
  changed_.wait_for(lock, timeout, [&] {
    result = take_by_context(disco_results_, context);
    return result.has_value();
  });
  return result;
}

std::optional<IqReply> GlooxClient::query_unknown_namespace(const std::string& to, Millis timeout) {
  const int context = next_context();
  post([this, to, context] {
    gloox::IQ iq(gloox::IQ::Get, gloox::JID(to), client_->getID());
    iq.addExtension(new UnknownQuery);
    client_->send(iq, this, context);
  });
  std::unique_lock lock(mutex_);
  std::optional<IqReply> result;
  changed_.wait_for(lock, timeout, [&] {
    result = take_by_context(iq_replies_, context);
    return result.has_value();
  });
  return result;
}

void GlooxClient::send_chat(const std::string& to, const std::string& body) {
  post([this, to, body] {
    gloox::Message message(gloox::Message::Chat, gloox::JID(to), body);
    client_->send(message);
  });
}

void GlooxClient::send_chat_to_raw_address(const std::string& to, const std::string& body) {
  post([this, to, body] {
    auto* message = new gloox::Tag("message");
    message->addAttribute("to", to);
    message->addAttribute("type", "chat");
    message->addAttribute("id", client_->getID());
    new gloox::Tag(message, "body", body);
    client_->send(message);  // takes ownership
  });
}

std::optional<ReceivedMessage> GlooxClient::wait_message(
    const std::function<bool(const ReceivedMessage&)>& match, Millis timeout) {
  std::unique_lock lock(mutex_);
  std::optional<ReceivedMessage> found;
  changed_.wait_for(lock, timeout, [&] {
    auto it = std::find_if(messages_.begin(), messages_.end(), match);
    if (it == messages_.end()) {
      return false;
    }
    found = std::move(*it);
    messages_.erase(it);
    return true;
  });
  return found;
}

std::string GlooxClient::transcript() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& line : log_lines_) {
    out += line;
    out += '\n';
  }
  return out;
}

// ---- gloox callbacks: all on the client thread ----

void GlooxClient::onConnect() {
  {
    std::lock_guard lock(mutex_);
    bound_jid_ = client_->jid().full();
    if (state_ == State::Connecting) {
      state_ = State::Connected;
    }
  }
  changed_.notify_all();
}

void GlooxClient::onDisconnect(gloox::ConnectionError e) {
  {
    std::lock_guard lock(mutex_);
    auth_error_ = client_->authError();
    stream_error_ = client_->streamError();
  }
  mark_disconnected(e);
}

bool GlooxClient::onTLSConnect(const gloox::CertInfo& info) {
  std::lock_guard lock(mutex_);
  tls_protocol_ = info.protocol.empty() ? "unknown" : info.protocol;
  return true;  // the test's self-signed certificate
}

void GlooxClient::handleMessage(const gloox::Message& msg, gloox::MessageSession* /*session*/) {
  ReceivedMessage received;
  received.from = msg.from().full();
  received.type = msg.subtype();
  received.body = msg.body();
  if (const auto* sid = msg.findExtension<StanzaIdExtension>(StanzaIdExtension::kType)) {
    received.stanza_id = sid->id();
  }
  received.delayed = msg.when() != nullptr;
  if (const gloox::Error* error = msg.error()) {
    received.error = error->error();
    received.error_type = error->type();
  }
  {
    std::lock_guard lock(mutex_);
    messages_.push_back(std::move(received));
  }
  changed_.notify_all();
}

void GlooxClient::join_room(const std::string& occupant_jid) {
  post([this, occupant_jid] {
    auto* presence = new gloox::Tag("presence");
    presence->addAttribute("to", occupant_jid);
    new gloox::Tag(presence, "x", "xmlns", "http://jabber.org/protocol/muc");
    client_->send(presence);  // takes ownership
  });
}

void GlooxClient::send_groupchat(const std::string& room, const std::string& body) {
  post([this, room, body] {
    gloox::Message message(gloox::Message::Groupchat, gloox::JID(room), body);
    client_->send(message);
  });
}

void GlooxClient::handleEvent(const gloox::Event& event) {
  {
    std::lock_guard lock(mutex_);
    ping_events_.push_back(event.eventType());
  }
  changed_.notify_all();
}

void GlooxClient::handleDiscoInfo(const gloox::JID& /*from*/, const gloox::Disco::Info& info,
                                  int context) {
  DiscoInfoResult result;
  result.ok = true;
  for (const gloox::Disco::Identity* identity : info.identities()) {
    result.identities.emplace_back(identity->category(), identity->type());
  }
  result.features.assign(info.features().begin(), info.features().end());
  {
    std::lock_guard lock(mutex_);
    disco_results_.emplace_back(context, std::move(result));
  }
  changed_.notify_all();
}

void GlooxClient::handleDiscoItems(const gloox::JID& /*from*/, const gloox::Disco::Items& /*items*/,
                                   int /*context*/) {}

void GlooxClient::handleDiscoError(const gloox::JID& /*from*/, const gloox::Error* error,
                                   int context) {
  DiscoInfoResult result;
  result.error = error != nullptr ? error->error() : gloox::StanzaErrorUndefined;
  {
    std::lock_guard lock(mutex_);
    disco_results_.emplace_back(context, std::move(result));
  }
  changed_.notify_all();
}

bool GlooxClient::handleIq(const gloox::IQ& /*iq*/) {
  return false;
}

void GlooxClient::handleIqID(const gloox::IQ& iq, int context) {
  IqReply reply;
  reply.type = iq.subtype();
  if (const gloox::Error* error = iq.error()) {
    reply.error = error->error();
    reply.error_type = error->type();
  }
  {
    std::lock_guard lock(mutex_);
    iq_replies_.emplace_back(context, reply);
  }
  changed_.notify_all();
}

void GlooxClient::handleLog(gloox::LogLevel /*level*/, gloox::LogArea area,
                            const std::string& message) {
  const char* direction = area == gloox::LogAreaXmlIncoming   ? "<< "
                          : area == gloox::LogAreaXmlOutgoing ? ">> "
                                                              : "   ";
  std::lock_guard lock(mutex_);
  log_lines_.push_back(direction + message);
  if (log_lines_.size() > kMaxLogLines) {
    log_lines_.pop_front();
  }
}

}  // namespace tc::integration
