// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "xmpp/jid.h"
#include "xmpp/xml_element.h"

#include "routing/client_stream.h"
#include "routing/stanzas.h"

namespace tc::broker {

/// Where the router sends what concerns users whose sessions live on other nodes of the
/// cluster (implemented by SRM's node-to-node link). Called on any thread.
class RemoteRoutes {
 public:
  virtual ~RemoteRoutes() = default;
  /// A session of this node was bound (`bound_at`: Unix ms of the bind) or ended: the other
  /// nodes learn where `full` lives.
  virtual void announce(const xmpp::Jid& full, std::int64_t bound_at, bool bound) = 0;
  /// Sends a stanza (from and to already set) to `node` for its sessions of `to`. `bounce`:
  /// when `node` has no session for it (or cannot be reached), the sender gets an error.
  virtual void forward_to_user(const std::string& node, const xmpp::Jid& to,
                               const xmpp::XmlElement& stanza, bool bounce) = 0;
};

/// The table of bound client streams (sessions): full JID -> stream on this node, and full JID ->
/// node for the sessions other nodes of the cluster announced (each node is authoritative for its
/// own; the table is resynchronised whenever a link comes back). Thread-safe and read-mostly
/// (a shared_mutex; lookups take it shared). Delivery itself is a post onto the recipient's
/// shard (ClientStream::deliver), so no lock is held while anything is written.
class Router {
 public:
  /// Registers a bound session. When the full JID is taken, the old session is returned so
  /// the caller can close it with <conflict/> (RFC 6120 §7.7.2.2, "override").
  std::shared_ptr<ClientStream> bind(const xmpp::Jid& full,
                                     const std::shared_ptr<ClientStream>& session,
                                     std::int64_t bound_at = 0);
  /// Removes the entry if it still belongs to `session`.
  void unbind(const xmpp::Jid& full, const ClientStream* session);

  std::shared_ptr<ClientStream> find(const xmpp::Jid& full) const;
  /// Every bound session of a bare JID.
  std::vector<std::shared_ptr<ClientStream>> sessions_of(const xmpp::Jid& bare) const;
  /// Every bound session (for shutdown and status).
  std::vector<std::shared_ptr<ClientStream>> all() const;
  std::size_t size() const;

  // ---- component mode (XEP-0114) ----

  /// Every JID outside `local_domain` is reached through `stream`, the link to the front
  /// server whose users join our rooms: find() and sessions_of() answer with it.
  void set_foreign_route(std::string local_domain, std::shared_ptr<ClientStream> stream);
  /// Removes the foreign route if it is still `stream`.
  void clear_foreign_route(const ClientStream* stream);

  // ---- sessions on other nodes ----

  /// Sends announcements through `remote` from now on (null: standalone node).
  void attach_remote(RemoteRoutes* remote) { remote_routes_ = remote; }
  RemoteRoutes* remote_routes() const { return remote_routes_; }

  struct Local {
    xmpp::Jid full;
    std::int64_t bound_at = 0;
  };
  /// Every local session's full JID and bind time (for a resynchronisation).
  std::vector<Local> locals() const;

  /// `node` says it serves `full` since `bound_at`. Returns true when a local session of the
  /// same full JID is the older of the two (the caller closes it with <conflict/>: the newer
  /// session wins across nodes too; equal times go to the greater node name).
  bool remote_bound(const std::string& self, const std::string& node, const xmpp::Jid& full,
                    std::int64_t bound_at);
  void remote_unbound(const std::string& node, const xmpp::Jid& full);
  /// Forgets everything `node` announced (its link went down, or it resynchronises).
  void remote_drop(const std::string& node);

  /// The node serving `full` elsewhere, if any.
  std::optional<std::string> remote_node_of(const xmpp::Jid& full) const;
  /// The other nodes with sessions of `bare`, and those sessions' full JIDs.
  std::vector<std::pair<std::string, xmpp::Jid>> remote_sessions_of(const xmpp::Jid& bare) const;
  std::size_t remote_size() const;

 private:
  struct Entry {
    std::weak_ptr<ClientStream> session;
    std::int64_t bound_at = 0;
  };
  struct Remote {
    std::string node;
    std::int64_t bound_at = 0;
  };

  mutable std::shared_mutex mu_;
  // bare JID string -> resource -> session
  std::map<std::string, std::map<std::string, Entry>, std::less<>> table_;
  std::size_t count_ = 0;
  // bare JID string -> resource -> where another node serves it
  std::map<std::string, std::map<std::string, Remote>, std::less<>> remote_;
  std::size_t remote_count_ = 0;
  RemoteRoutes* remote_routes_ = nullptr;
  std::string local_domain_;
  std::shared_ptr<ClientStream> foreign_;
};

}  // namespace tc::broker
