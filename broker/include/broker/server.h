// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "broker/config.h"

namespace tc::broker {

/// One tcbroker node: the client listener, the data-plane shards and their store workers.
/// Lifecycle: construct, start() (may throw std::runtime_error with a clear message), then
/// run() blocks until stop() is called or SIGINT/SIGTERM arrives.
class Server {
 public:
  explicit Server(Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Opens and migrates the store, loads TLS, binds the client listener.
  void start();
  /// Serves until stop(); returns after a clean shutdown.
  void run();
  /// Thread-safe; may be called from a signal handler context via asio::signal_set.
  void stop();

  /// The bound client port (useful when the config asked for port 0).
  std::uint16_t client_port() const;

  /// Writes {"client_port": N, "pid": P} atomically to `path` (for tests and scripts).
  void write_ready_file(const std::filesystem::path& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tc::broker
