// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace tc::test {

struct PgLauncherOptions {
  std::string database = "tc";  ///< created at start; url() points at it
  /// fsync=off, full_page_writes=off: fine for tests, which kill processes but never the
  /// machine (a commit still reaches the kernel before it is acknowledged, so stop() loses no
  /// committed data). Set false to measure commit latency for real.
  bool fast = true;
  /// Bound on each initdb / pg_ctl / createdb run (pg_ctl also gets -t with this value).
  std::chrono::seconds timeout{60};
};

/// A throwaway PostgreSQL server for tests: a fresh cluster in a temporary directory, started on
/// a free loopback TCP port with its Unix socket in that directory, trust authentication for the
/// `postgres` superuser. The destructor stops it (immediate mode) and deletes the directory; a
/// watchdog process does the same if the test process dies without running destructors.
///
/// Environment:
///   TC_PG_BIN           directory of initdb/pg_ctl (default: newest /usr/lib/postgresql/<v>/bin,
///                       else PATH)
///   TC_PG_TMPDIR        where clusters go (default: /dev/shm when it has 2 GB free, else
///                       $TMPDIR, else /tmp)
///   TC_PG_NO_TEMPLATE=1 run initdb every time instead of copying a cached template cluster
///                       (kept as <tmpdir>/tc-pg-template-*, built once per PostgreSQL build)
/// When running as root, initdb and pg_ctl run as the `postgres` system user (runuser).
/// Linking the launcher into an ASan binary also installs LeakSanitizer suppressions for leaks
/// inside libpqxx and psqlODBC when the server dies under them (see pg_launcher.cpp).
/// Every method throws std::runtime_error, with the tail of the server log, on failure.
/// Not thread-safe; use from one thread.
class PgLauncher {
 public:
  explicit PgLauncher(PgLauncherOptions options = {});
  ~PgLauncher();
  PgLauncher(const PgLauncher&) = delete;
  PgLauncher& operator=(const PgLauncher&) = delete;

  /// postgresql://postgres@127.0.0.1:<port>/<options.database>
  const std::string& url() const { return url_; }
  /// The URL of another database on this server.
  std::string url(std::string_view database) const;
  /// CREATE DATABASE `name` (createdb). The name must be a plain identifier.
  void create_database(std::string_view name);

  /// Stops the server the hard way (pg_ctl stop -m immediate): clients see the connection drop,
  /// as when the database host dies. The data directory stays.
  void stop();
  /// Starts the server again on the same port and data directory (after crash recovery).
  void start();
  bool running() const { return running_; }

  int port() const { return port_; }
  const std::filesystem::path& directory() const { return dir_; }
  /// The last `bytes` of the server log, for failure messages.
  std::string log_tail(std::size_t bytes = 4096) const;

 private:
  void init_cluster();
  void start_server();
  void start_watchdog();
  /// Runs argv (as `postgres` when needed), bounded by options_.timeout; throws on failure.
  void run(std::vector<std::string> argv, bool as_postgres, std::string_view what);
  std::string tool(std::string_view name) const;
  [[noreturn]] void fail(std::string_view what) const;

  PgLauncherOptions options_;
  std::filesystem::path bin_dir_;
  std::filesystem::path dir_;
  std::filesystem::path data_dir_;
  bool as_root_ = false;
  int port_ = 0;
  std::string url_;
  bool running_ = false;
  int watchdog_fd_ = -1;  // write end of the pipe the watchdog waits on
  pid_t watchdog_pid_ = -1;
};

}  // namespace tc::test
