// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gloox/client.h>
#include <gloox/connectionlistener.h>
#include <gloox/discohandler.h>
#include <gloox/eventhandler.h>
#include <gloox/iqhandler.h>
#include <gloox/loghandler.h>
#include <gloox/message.h>
#include <gloox/messagehandler.h>

#include "harness.h"

namespace tc::integration {

/// SCRAM-SHA-1 as gloox 1.0.24 gets it right. With SCRAM-SHA-1-PLUS disallowed, gloox announces
/// the GS2 flag "y" (client could bind, server cannot) yet sends c=biws, the encoding of "n,,",
/// which a strict server must reject (RFC 5802 §6). Allowing -PLUS as well makes gloox say "n";
/// it still picks plain SCRAM-SHA-1 when the server offers no -PLUS variant.
inline constexpr int kGlooxScramSha1 = gloox::SaslMechScramSha1 | gloox::SaslMechScramSha1Plus;

/// A message stanza as a test wants to look at it.
struct ReceivedMessage {
  std::string from;  ///< full JID
  gloox::Message::MessageType type = gloox::Message::Invalid;
  std::string body;
  std::string stanza_id;  ///< XEP-0359 <stanza-id/> id, "" when absent
  bool delayed = false;   ///< carries a XEP-0203 <delay/>
  gloox::StanzaError error = gloox::StanzaErrorUndefined;  ///< set for type='error'
  gloox::StanzaErrorType error_type = gloox::StanzaErrorTypeUndefined;
};

struct DiscoInfoResult {
  bool ok = false;  ///< false: an error reply, see `error`
  std::vector<std::pair<std::string, std::string>> identities;  ///< (category, type)
  std::vector<std::string> features;
  gloox::StanzaError error = gloox::StanzaErrorUndefined;

  bool has_feature(const std::string& var) const;
  bool has_identity(const std::string& category, const std::string& type) const;
};

struct IqReply {
  gloox::IQ::IqType type = gloox::IQ::Invalid;
  gloox::StanzaError error = gloox::StanzaErrorUndefined;
  gloox::StanzaErrorType error_type = gloox::StanzaErrorTypeUndefined;
};

/// One gloox::Client on its own thread. gloox is not thread-safe, so the client is created, used
/// and destroyed only on that thread: the test thread posts work to it and waits for results with
/// bounded timeouts. The thread runs recv() in short slices so posted work starts promptly.
class GlooxClient final : gloox::ConnectionListener,
                          gloox::MessageHandler,
                          gloox::EventHandler,
                          gloox::DiscoHandler,
                          gloox::IqHandler,
                          gloox::LogHandler {
 public:
  static constexpr Millis kTimeout = 15s;

  struct Options {
    std::string jid;  ///< user@domain, optionally with a resource
    std::string password;
    int port = 0;  ///< on 127.0.0.1
    int sasl_mechanisms = kGlooxScramSha1;
    gloox::TLSPolicy tls = gloox::TLSRequired;
  };

  enum class State { Connecting, Connected, Disconnected };

  /// Starts the thread, which connects at once.
  explicit GlooxClient(Options options);
  /// Disconnects (sending </stream:stream>) and joins the thread.
  ~GlooxClient() override;
  GlooxClient(const GlooxClient&) = delete;
  GlooxClient& operator=(const GlooxClient&) = delete;

  /// Waits until the client is connected (after bind, session and roster) or has given up.
  State wait_settled(Millis timeout = kTimeout);
  /// True once connected. Shorthand for wait_settled() == Connected.
  bool wait_connected(Millis timeout = kTimeout) {
    return wait_settled(timeout) == State::Connected;
  }
  /// The reason given to onDisconnect(), once disconnected; nullopt while still connected after
  /// `timeout`.
  std::optional<gloox::ConnectionError> wait_disconnected(Millis timeout = kTimeout);

  State state() const;
  gloox::AuthenticationError auth_error() const;
  gloox::StreamError stream_error() const;
  /// The full JID the server bound, known once connected.
  std::string bound_jid() const;
  /// The TLS protocol reported by the handshake; empty when TLS was never established.
  std::string tls_protocol() const;

  /// XEP-0199 ping; the event gloox reported (PingPong or PingError), nullopt on timeout.
  std::optional<gloox::Event::EventType> ping(const std::string& to, Millis timeout = kTimeout);
  /// XEP-0030 disco#info; nullopt on timeout.
  std::optional<DiscoInfoResult> disco_info(const std::string& to, Millis timeout = kTimeout);
  /// An <iq type='get'> whose only child is in a namespace no server knows.
  std::optional<IqReply> query_unknown_namespace(const std::string& to, Millis timeout = kTimeout);
  /// Sends <message type='chat'> (does not wait).
  void send_chat(const std::string& to, const std::string& body);
  /// The same, with 'to' written verbatim: gloox::JID would refuse an invalid address.
  void send_chat_to_raw_address(const std::string& to, const std::string& body);
  /// Sends MUC join presence (XEP-0045 §7.2) to room@service/nick (does not wait).
  void join_room(const std::string& occupant_jid);
  /// Sends <message type='groupchat'> to a room (does not wait).
  void send_groupchat(const std::string& room, const std::string& body);
  /// Waits for a received message satisfying `match` (and removes it from the inbox).
  std::optional<ReceivedMessage> wait_message(
      const std::function<bool(const ReceivedMessage&)>& match, Millis timeout = kTimeout);

  /// The last lines gloox logged (XML in and out included), for failure messages.
  std::string transcript() const;

 private:
  // gloox::ConnectionListener
  void onConnect() override;
  void onDisconnect(gloox::ConnectionError e) override;
  bool onTLSConnect(const gloox::CertInfo& info) override;
  // gloox::MessageHandler
  void handleMessage(const gloox::Message& msg, gloox::MessageSession* session) override;
  // gloox::EventHandler
  void handleEvent(const gloox::Event& event) override;
  // gloox::DiscoHandler
  void handleDiscoInfo(const gloox::JID& from, const gloox::Disco::Info& info,
                       int context) override;
  void handleDiscoItems(const gloox::JID& from, const gloox::Disco::Items& items,
                        int context) override;
  void handleDiscoError(const gloox::JID& from, const gloox::Error* error, int context) override;
  // gloox::IqHandler
  bool handleIq(const gloox::IQ& iq) override;
  void handleIqID(const gloox::IQ& iq, int context) override;
  // gloox::LogHandler
  void handleLog(gloox::LogLevel level, gloox::LogArea area, const std::string& message) override;

  void run();
  /// Queues `task` for the client thread.
  void post(std::function<void()> task);
  /// Records the first disconnect reason; later ones (recv() after onDisconnect) are echoes.
  void mark_disconnected(gloox::ConnectionError e);
  int next_context();

  const Options options_;
  std::unique_ptr<gloox::Client> client_;  // only touched on thread_

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  // Everything below is guarded by mutex_.
  bool stop_ = false;
  std::deque<std::function<void()>> tasks_;
  State state_ = State::Connecting;
  std::optional<gloox::ConnectionError> disconnect_reason_;
  gloox::AuthenticationError auth_error_ = gloox::AuthErrorUndefined;
  gloox::StreamError stream_error_ = gloox::StreamErrorUndefined;
  std::string bound_jid_;
  std::string tls_protocol_;
  std::deque<ReceivedMessage> messages_;
  std::deque<gloox::Event::EventType> ping_events_;
  std::vector<std::pair<int, DiscoInfoResult>> disco_results_;
  std::vector<std::pair<int, IqReply>> iq_replies_;
  std::deque<std::string> log_lines_;
  int context_counter_ = 0;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace tc::integration
