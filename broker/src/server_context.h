// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/ssl/context.hpp>

#include "base/limits.h"
#include "broker/config.h"

#include "routing/router.h"
#include "shard/cpu_pool.h"

namespace tc::broker {

// Named only: the context sits below the rooms and the SRM (scripts/check-layering).
namespace muc {
class MucService;
}
namespace ha {
class ClusterView;
}

/// Counters exported at /metrics and by `tcctl status`. Relaxed atomics: approximate is fine.
struct Metrics {
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> auth_success{0};
  std::atomic<std::uint64_t> auth_failure{0};
  std::atomic<std::uint64_t> stanzas_in{0};
  std::atomic<std::uint64_t> stream_errors{0};
  std::atomic<std::uint64_t> slow_consumers{0};
  std::atomic<std::uint64_t> internal_errors{0};
  std::atomic<std::uint64_t> throttled{0};         ///< reads paused by a rate limit
  std::atomic<std::uint64_t> refused_per_ip{0};    ///< connections over max_connections_per_ip
  std::atomic<std::uint64_t> logins_throttled{0};  ///< SASL attempts refused after failures
};

/// XEP-0198: the sessions of this node that may be resumed, by resumption id. Thread-safe.
class ResumptionTable {
 public:
  struct Entry {
    std::weak_ptr<ClientStream> stream;
    std::string username;  ///< only its owner may resume it
    /// Set while the session hibernates (its connection is gone): the table keeps it alive.
    std::shared_ptr<ClientStream> hibernating;
  };
  void put(const std::string& id, Entry entry) {
    std::lock_guard lock(mu_);
    entries_[id] = std::move(entry);
  }
  std::optional<Entry> find(const std::string& id) const {
    std::lock_guard lock(mu_);
    const auto it = entries_.find(id);
    return it == entries_.end() ? std::nullopt : std::optional(it->second);
  }
  /// Removes `id` if it still names `stream`.
  void erase(const std::string& id, const ClientStream* stream) {
    std::shared_ptr<ClientStream> released;  // destroyed after the lock is let go
    std::lock_guard lock(mu_);
    const auto it = entries_.find(id);
    if (it != entries_.end()) {
      const auto current = it->second.stream.lock();
      if (!current || current.get() == stream) {
        released = std::move(it->second.hibernating);
        entries_.erase(it);
      }
    }
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

/// What every session on every shard shares. Built once by Server; outlives all sessions.
struct ServerContext {
  ServerContext();
  ~ServerContext();  // out of line: the rooms' service is only named here
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  Config config;
  Router router;
  std::unique_ptr<muc::MucService> muc;  ///< the text-conference service
  std::unique_ptr<CpuPool> cpu;          ///< PBKDF2 and other CPU-heavy work
  Metrics metrics;
  std::atomic<bool> shutting_down{false};
  /// Open client connections per address (client.max_connections_per_ip).
  AddressCounter client_addresses;
  /// Failed logins per address (auth.max_failures within auth.failure_window); built by
  /// Server::start from the configuration.
  std::unique_ptr<FailureThrottle> login_throttle;
  /// Sessions waiting to be resumed, or resumable later (XEP-0198).
  ResumptionTable resumable;

  // HA
  ha::ClusterView* cluster = nullptr;    ///< partition holders (null only in unit tests)
  std::atomic<bool> auth_serving{true};  ///< the authentication critical service runs
  std::uint16_t client_port_bound = 0;
  std::string admin_url;

  /// The TLS context new handshakes use (null when no certificate is configured). SIGHUP
  /// swaps it; a connection keeps the context it started with (OpenSSL counts references).
  std::shared_ptr<boost::asio::ssl::context> tls_context() const {
    std::lock_guard lock(tls_mutex_);
    return tls_;
  }
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> tls) {
    std::lock_guard lock(tls_mutex_);
    tls_ = std::move(tls);
  }

  /// What a moved client is told: where to go and when to log in again (SPEC.md section 2).
  std::string relogin_text(const std::string& node) const {
    return "your users and rooms are served by " +
           (node.empty() ? std::string("another node") : node) +
           " now; log in again after a random delay of " +
           std::to_string(config.relogin_min.count()) + " to " +
           std::to_string(config.relogin_max.count()) + " ms";
  }
  /// The same window as an application-specific stream error condition.
  std::string relogin_xml() const {
    return "<relogin xmlns='urn:tcbroker:ha:1' min-ms='" +
           std::to_string(config.relogin_min.count()) + "' max-ms='" +
           std::to_string(config.relogin_max.count()) + "'/>";
  }

 private:
  mutable std::mutex tls_mutex_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace tc::broker
