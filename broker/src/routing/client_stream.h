// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "xmpp/jid.h"

#include "routing/stanzas.h"

namespace tc::broker {

/// A bound client stream, as the router hands it out: what the rooms, the user router and the
/// SRM may do with a user's connection without knowing how it is carried: net::Session over
/// TCP or a WebSocket, or net::ComponentLink, which stands for every user of a front server
/// in component mode (XEP-0114).
class ClientStream {
 public:
  virtual ~ClientStream() = default;

  /// Queues a serialised stanza for this client. Thread-safe.
  virtual void deliver(Wire wire) = 0;
  /// Queues a serialised stanza; call only on this stream's shard (batched fan-out).
  virtual void deliver_on_shard(const Wire& wire) = 0;
  /// Index of the shard this stream lives on.
  virtual int shard_index() const = 0;

  /// Ends the stream with a stream error (RFC 6120 §4.9), e.g. "conflict",
  /// "system-shutdown". Thread-safe.
  virtual void close_with(std::string condition, std::string text = {}) = 0;
  /// HA: ends the stream with see-other-host naming `endpoint` ("host:port"; "" sends reset),
  /// `text` and `extra_xml` (the re-login window). Thread-safe.
  virtual void close_moved(std::string endpoint, std::string text, std::string extra_xml) = 0;

  /// The bound full JID; empty before resource binding.
  virtual const xmpp::Jid& jid() const = 0;
  /// HA: the partition whose failover brought this user here; "" otherwise.
  virtual const std::string& moved_in() const = 0;
  /// XEP-0280: the client asked for copies of its other resources' chats. Thread-safe.
  virtual bool wants_carbons() const { return false; }
  /// RFC 6121 §4.3.2: a presence probe from `prober` (a contact subscribed to this user's
  /// presence, or the user's server on its behalf) reached this resource; it sends its current
  /// presence there if it is available. Thread-safe.
  virtual void answer_probe(const xmpp::Jid& prober) { (void)prober; }
};

}  // namespace tc::broker
