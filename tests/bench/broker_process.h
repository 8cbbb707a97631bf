// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <sys/types.h>

namespace tc::bench {

/// The spawned server could not be set up. tc-bench reports it and exits non-zero
/// (an edge of the tool, where STYLE.md 3.5 allows exceptions).
class BrokerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BrokerProcessOptions {
  std::filesystem::path broker;  ///< the tcbroker executable
  /// "sqlite" (a database file in the temporary directory) or a storage URL
  /// (postgresql://..., sqlite:///abs/path).
  std::string store = "sqlite";
  std::string domain = "localhost";
  int shards = 0;                  ///< [node] shards; 0 = the server's default (one per core)
  std::size_t max_room_users = 0;  ///< raises [muc] default_max_users when above its default
  std::string log_level = "warn";  ///< the server logs every login at "info"
  bool keep_dir = false;           ///< leave the temporary directory for a post-mortem
  std::chrono::seconds ready_timeout{60};
};

/// One tcbroker started by tc-bench: a temporary directory with a generated config (plain
/// TCP on loopback, PLAIN allowed without TLS, in-band registration on, port 0) and, for
/// "sqlite", its database. The child gets SIGKILL if tc-bench dies (PR_SET_PDEATHSIG).
/// Construct before any other thread starts (it forks). Not thread-safe.
class BrokerProcess {
 public:
  /// Writes the config, starts the server and waits for its ready file. Throws BrokerError,
  /// with the tail of the server log, when it cannot start or is not ready in time.
  explicit BrokerProcess(BrokerProcessOptions options);
  /// Stops the server (stop()) if it still runs, then removes the directory unless kept.
  ~BrokerProcess();
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  int client_port() const { return client_port_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& storage_url() const { return storage_url_; }

  /// SIGTERM, then SIGKILL after `grace`. Returns the exit status as a shell reports it
  /// (128 + signal when killed by one). Idempotent.
  int stop(std::chrono::seconds grace = std::chrono::seconds(20));
  /// The last `bytes` of the server's stdout and stderr.
  std::string log_tail(std::size_t bytes = 4096) const;

 private:
  void write_config();
  void start();
  void wait_until_ready();
  /// Reaps the child without blocking; true when it has exited (exit_status_ is then set).
  bool reap(bool block);

  BrokerProcessOptions options_;
  std::filesystem::path dir_;
  std::filesystem::path config_path_;
  std::filesystem::path ready_path_;
  std::filesystem::path log_path_;
  std::string storage_url_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  int client_port_ = 0;
};

}  // namespace tc::bench
