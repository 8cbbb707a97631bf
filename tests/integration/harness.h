// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>

/// Process-level harness for the integration tests: a throwaway directory with a self-signed
/// certificate, a config file and an SQLite database, accounts created with `tcctl`, and a real
/// `tcbroker` process started on an ephemeral port. Nothing here sleeps to synchronise: child
/// exits are awaited through pidfds, the ready file through inotify, and every wait is bounded.
/// Not thread-safe: use each object from the thread that created it (the test body).
namespace tc::integration {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

/// The test environment could not be set up (missing binary, config rejected, server never got
/// ready). GoogleTest reports an exception escaping a test body as a failure of that test.
class HarnessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// $name, or "" when it is unset. The tests never change their environment, so this is safe
/// from any thread.
std::string env_var(const char* name);
/// The description of an errno value (std::strerror is not thread-safe).
std::string errno_message(int err);

/// Paths of the programs under test: $TC_TCBROKER / $TC_TCCTL when set, else the paths CMake
/// compiled in. Throws HarnessError when neither names an executable.
std::filesystem::path tcbroker_path();
std::filesystem::path tcctl_path();

/// mkdtemp() under $TMPDIR (or /tmp); removed with its contents on destruction unless
/// $TC_KEEP_TEMP is set, which helps post-mortems.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tc-integ");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A child started with fork/exec, stdin from /dev/null, stdout and stderr appended to one file.
/// It gets SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG), so a test binary killed
/// by ctest's timeout leaves no server behind. Signals go only to this pid, which stays ours until
/// it is reaped here.
class ChildProcess {
 public:
  /// argv[0] must be a path. Throws HarnessError when fork or exec fails.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& output_file);
  /// SIGKILLs and reaps the child if it is still running.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// True while the child has not exited (reaps it without blocking if it has).
  bool running();
  /// Waits up to `timeout` for the child to exit. Returns its exit code, or 128 + signal number
  /// when a signal killed it (as a shell reports it); nullopt on timeout.
  std::optional<int> wait_for(Millis timeout);
  /// Sends `sig` if the child is still running.
  void signal(int sig);
  /// The pidfd, readable once the child exits; -1 when the kernel has no pidfd_open.
  int pidfd() const { return pidfd_; }

 private:
  void reap(int wait_status);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> exit_code_;
};

struct ProcessResult {
  std::optional<int> exit_code;  ///< nullopt: killed after the timeout
  std::string output;            ///< stdout and stderr, interleaved
};

/// Runs a program to completion, SIGKILLing it after `timeout`. Output goes through
/// `output_file` (kept, so a failed test can point at it).
ProcessResult run_process(const std::vector<std::string>& argv, Millis timeout,
                          const std::filesystem::path& output_file);

/// Reads a whole file; empty when it does not exist.
std::string read_file(const std::filesystem::path& path);

struct Account {
  std::string name;
  std::string password;
};

struct BrokerOptions {
  std::vector<Account> accounts;
  std::string domain = "localhost";
  std::size_t max_stanza_bytes = 262144;
  bool tls_required = true;
  bool registration = false;
  bool allow_plain_without_tls = false;
  /// 4096 is the lowest count RFC 7677 allows; tests need no more.
  int scram_iterations = 4096;
};

/// One running tcbroker with its own directory, certificate, config and SQLite database.
class Broker {
 public:
  static constexpr Millis kReadyTimeout = 30s;
  static constexpr Millis kStopTimeout = 15s;
  static constexpr Millis kToolTimeout = 30s;

  /// Writes cert and config, creates the accounts with tcctl, starts tcbroker and waits for its
  /// ready file. Throws HarnessError, with the server's log, on any failure.
  explicit Broker(BrokerOptions options);
  /// Stops the server (SIGTERM, then SIGKILL after kStopTimeout) if it still runs.
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  const BrokerOptions& options() const { return options_; }
  const std::string& domain() const { return options_.domain; }
  int client_port() const { return client_port_; }
  pid_t pid() const { return process_->pid(); }
  const std::filesystem::path& dir() const { return dir_.path(); }
  const std::filesystem::path& config_path() const { return config_path_; }
  const std::filesystem::path& certificate_path() const { return certificate_path_; }

  /// False once the server process has exited (for whatever reason).
  bool alive() { return process_->running(); }
  /// Everything the server wrote to stdout/stderr so far.
  std::string log() const;

  /// Runs `tcctl --config <config> args...` with a bounded timeout.
  ProcessResult tcctl(const std::vector<std::string>& args) const;

  /// SIGTERM and wait up to `timeout`; returns the exit code (nullopt: still running).
  std::optional<int> stop(Millis timeout = kStopTimeout);

 private:
  void write_certificate();
  void write_config();
  void wait_until_ready();

  BrokerOptions options_;
  TempDir dir_;
  std::filesystem::path config_path_;
  std::filesystem::path certificate_path_;
  std::filesystem::path ready_path_;
  std::filesystem::path log_path_;
  std::optional<ChildProcess> process_;
  int client_port_ = 0;
};

}  // namespace tc::integration
