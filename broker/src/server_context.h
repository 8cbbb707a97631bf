// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "broker/config.h"

#include "muc/muc_service.h"
#include "routing/router.h"
#include "shard/cpu_pool.h"

namespace tc::broker {

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
};

/// What every session on every shard shares. Built once by Server; outlives all sessions.
struct ServerContext {
  Config config;
  std::unique_ptr<boost::asio::ssl::context> tls;  ///< null when no certificate configured
  Router router;
  std::unique_ptr<muc::MucService> muc;  ///< the text-conference service
  std::unique_ptr<CpuPool> cpu;          ///< PBKDF2 and other CPU-heavy work
  Metrics metrics;
  std::atomic<bool> shutting_down{false};
};

}  // namespace tc::broker
