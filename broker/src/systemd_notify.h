// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tc::broker {

/// systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram
/// per state change to the AF_UNIX socket named by $NOTIFY_SOCKET ("@name" is abstract).
/// Without $NOTIFY_SOCKET (not under systemd, or Type= is not notify) every call is a no-op.
/// The watchdog interval comes from $WATCHDOG_USEC, honoured only when $WATCHDOG_PID is unset
/// or names this process. Used from the control thread only.
class SystemdNotifier {
 public:
  /// Reads the environment once.
  SystemdNotifier();
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  /// Sends newline-separated assignments ("READY=1\nSTATUS=serving"). Failures are logged
  /// once and otherwise ignored: a lost notification must never stop the server.
  void notify(std::string_view state);
  /// How often systemd expects WATCHDOG=1 (null when no watchdog is configured).
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_; }

 private:
  int fd_ = -1;
  std::string path_;  ///< sockaddr_un path; a leading '\0' for the abstract namespace
  std::optional<std::chrono::microseconds> watchdog_;
  bool warned_ = false;
};

}  // namespace tc::broker
