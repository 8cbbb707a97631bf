// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace tc::broker {

/// A bad configuration: `setting()` names the offending key ("client.port").
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string setting, const std::string& message)
      : std::runtime_error(setting.empty() ? message : setting + ": " + message),
        setting_(std::move(setting)) {}
  const std::string& setting() const { return setting_; }

 private:
  std::string setting_;
};

/// Node-local settings, one TOML file per node. Every field has a default that works on one
/// machine; docs/operator-guide.md lists them all.
struct Config {
  std::filesystem::path file;  ///< where it was loaded from ("" for defaults)

  // [node]
  std::string node_name = "node1";
  std::string domain = "localhost";
  int shards = 0;  ///< data-plane threads; 0 = one per core

  // [client]
  std::string client_address = "127.0.0.1";
  std::uint16_t client_port = 5222;
  std::size_t max_stanza_bytes = 256 * 1024;
  std::size_t max_depth = 48;
  std::size_t max_attributes = 64;
  std::size_t max_write_queue_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds auth_timeout{60'000};
  std::size_t max_connections = 100'000;
  /// Per connection, with back-pressure (reading pauses; nothing is refused); 0 = unlimited.
  std::size_t max_stanzas_per_second = 200;
  std::size_t max_bytes_per_second = 1024 * 1024;
  /// Open client connections from one address (loopback not counted); 0 = unlimited.
  std::size_t max_connections_per_ip = 100;
  /// Nothing read for this long: a ping (XEP-0199); nothing for as long again: the stream
  /// ends (connection-timeout). 0 = never.
  std::chrono::milliseconds idle_timeout{300'000};
  /// XEP-0198: how long a lost connection's session waits to be resumed (its rooms, presence
  /// and unacknowledged stanzas kept) before it ends. 0 = resumption not offered.
  std::chrono::milliseconds resume_timeout{300'000};

  // [tls]
  bool tls_required = true;
  std::filesystem::path tls_certificate;  ///< PEM; "" = no STARTTLS offered
  std::filesystem::path tls_private_key;

  // [auth]
  std::uint32_t scram_iterations = 4096;
  bool allow_plain_without_tls = false;  ///< only honoured on loopback connections
  bool registration = false;             ///< XEP-0077 in-band registration
  /// Login throttling: after this many failed logins from one address within
  /// auth_failure_window, its further attempts are refused until the oldest is that old.
  std::size_t auth_max_failures = 5;  ///< 0 = never throttle
  std::chrono::milliseconds auth_failure_window{60'000};

  // [muc] the text-conference service (XEP-0045 rooms, XEP-0313 archive)
  std::string muc_domain;  ///< "" = "conference." + domain
  std::size_t muc_max_rooms = 100'000;
  std::size_t muc_max_persistent_rooms = 100'000;
  bool muc_persistent_admin_only = false;  ///< only service admins may make rooms persistent
  std::vector<std::string> muc_admins;     ///< bare JIDs of service administrators
  bool muc_default_persistent = true;      ///< new rooms are persistent unless configured
  std::size_t muc_default_history = 20;    ///< default discussion history sent on join
  std::size_t muc_max_history = 200;       ///< most history messages kept for joiners
  std::size_t muc_mam_max_page = 100;      ///< most messages one archive query returns
  std::size_t muc_default_max_users = 200;
  std::size_t muc_max_rooms_per_user = 200;  ///< rooms one connection may be in; 0 = no limit
  bool muc_archive_presence = false;         ///< archive joins and leaves too
  int muc_retention_days = 0;                ///< 0 = keep the archive forever
  int muc_retention_min_days = 1;            ///< range owners may choose per room
  int muc_retention_max_days = 3650;
  std::chrono::milliseconds muc_retention_interval{3'600'000};
  std::size_t muc_presence_broadcast_cap = 0;    ///< 0 = no cap (see operator guide)
  std::size_t muc_max_vcard_bytes = 128 * 1024;  ///< largest room vCard (XEP-0054), serialised

  // [im] users' own data: rosters, offline messages, PEP, private storage, vCards, message
  // archives (RFC 6121, XEP-0160, XEP-0163, XEP-0049, XEP-0054, XEP-0313)
  std::size_t im_max_roster_items = 1000;          ///< contacts one user may have
  std::size_t im_max_offline_messages = 1000;      ///< kept per user while it is offline; 0 = off
  std::size_t im_max_vcard_bytes = 128 * 1024;     ///< largest vCard, serialised
  std::size_t im_max_pep_item_bytes = 128 * 1024;  ///< largest PEP item or private fragment
  std::size_t im_max_pep_items = 1000;             ///< items one PEP node keeps, at most
  std::size_t im_max_pep_nodes = 200;              ///< PEP nodes one user may have
  std::size_t im_mam_max_page = 100;  ///< most messages one query of a user's archive returns

  /// The conference domain actually served.
  std::string conference_domain() const {
    return muc_domain.empty() ? "conference." + domain : muc_domain;
  }

  // [websocket] XMPP over WebSocket (RFC 7395) for web clients, and XEP-0156 discovery
  bool websocket_enabled = false;
  std::string websocket_address = "127.0.0.1";
  std::uint16_t websocket_port = 5280;  ///< 0 = any free port (tests)
  std::string websocket_path = "/xmpp-websocket";
  bool websocket_tls = false;  ///< wss:// with [tls]'s certificate on this port
  /// Plain ws:// that a TLS-terminating reverse proxy fronts: counts as encrypted.
  bool websocket_consider_secure = false;
  /// Origins (e.g. "https://chat.example.com") allowed besides the same origin; "*" = any.
  std::vector<std::string> websocket_allowed_origins;
  std::string websocket_public_url;  ///< host-meta's URL; "" = from the request's Host
  std::size_t websocket_max_message_bytes = 256 * 1024;
  std::chrono::milliseconds websocket_idle_timeout{60'000};  ///< ping at half, close at full
  std::chrono::milliseconds websocket_handshake_timeout{10'000};
  std::size_t websocket_max_connections_per_ip = 100;

  // [component] XEP-0114: the rooms served to another XMPP server's users, as its component
  // named muc.domain (both nodes of a pair dial it; the front server takes one at a time)
  bool component_enabled = false;
  std::string component_server = "127.0.0.1";
  std::uint16_t component_port = 5347;
  std::string component_secret;                 ///< "" = read component_secret_file
  std::filesystem::path component_secret_file;  ///< one line
  std::chrono::milliseconds component_reconnect{1'000};

  // [storage]
  std::string storage_url = "sqlite://tcbroker.db";  ///< this node's group's database

  // [cluster] cluster-wide state: groups, nodes, settings, accounts, which group hosts which
  // room (docs/architecture.md, "Cluster"). "" = the group's database (one group).
  std::string cluster_url;
  /// Where cluster-wide state lives: cluster.url, else storage.url.
  const std::string& cluster_store_url() const {
    return cluster_url.empty() ? storage_url : cluster_url;
  }

  // [admin] the HTTP/JSON admin API and web page (SRM's admin RPC port)
  std::string admin_address = "127.0.0.1";  ///< loopback by default
  std::uint16_t admin_port = 20075;         ///< 0 = any free port (tests)
  std::string admin_token;                  ///< bearer token; "" = read admin_token_file
  std::filesystem::path admin_token_file;   ///< one line; "" with no token = API refuses all

  // [ha] node-local SRM settings; the cluster-wide ones live in the database (tcctl group)
  std::string srm_address = "127.0.0.1";  ///< where the SRM service port listens
  std::uint16_t srm_port = 22001;         ///< heartbeats and the node-to-node link; 0 = any
  std::string advertised_host;            ///< host named in see-other-host; "" = client.address
  std::chrono::milliseconds relogin_min{120'000};  ///< client re-login lower limit
  std::chrono::milliseconds relogin_max{537'000};  ///< client re-login upper limit

  // [log]
  std::string log_level = "info";
  std::string log_format = "text";  ///< "text" or "json"
};

/// Loads and validates a TOML file. Throws ConfigError naming the setting on an unknown key,
/// a wrong type or a bad value, and on an unreadable or unparsable file. Relative paths in
/// the file are resolved against the file's directory.
Config load_config(const std::filesystem::path& file);

/// Validates a parsed TOML document given as text (for tests). `base_dir` resolves paths.
Config parse_config(std::string_view toml_text, const std::filesystem::path& base_dir);

}  // namespace tc::broker
