// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "xmpp/jid.h"

namespace tc::broker {

class Session;

/// The table of bound client sessions of this node: full JID -> session. Thread-safe and
/// read-mostly (a shared_mutex; lookups take it shared). Delivery itself is a post onto the
/// recipient's shard (Session::deliver), so no lock is held while anything is written.
class Router {
 public:
  /// Registers a bound session. When the full JID is taken, the old session is returned so
  /// the caller can close it with <conflict/> (RFC 6120 §7.7.2.2, "override").
  std::shared_ptr<Session> bind(const xmpp::Jid& full, const std::shared_ptr<Session>& session);
  /// Removes the entry if it still belongs to `session`.
  void unbind(const xmpp::Jid& full, const Session* session);

  std::shared_ptr<Session> find(const xmpp::Jid& full) const;
  /// Every bound session of a bare JID.
  std::vector<std::shared_ptr<Session>> sessions_of(const xmpp::Jid& bare) const;
  /// Every bound session (for shutdown and status).
  std::vector<std::shared_ptr<Session>> all() const;
  std::size_t size() const;

 private:
  mutable std::shared_mutex mu_;
  // bare JID string -> resource -> session
  std::map<std::string, std::map<std::string, std::weak_ptr<Session>>, std::less<>> table_;
  std::size_t count_ = 0;
};

}  // namespace tc::broker
