// SPDX-License-Identifier: Apache-2.0
#include "systemd_notify.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace tc::broker {

namespace {

std::optional<std::uint64_t> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return std::nullopt;
  }
  std::uint64_t n = 0;
  const auto* end = v + std::strlen(v);
  const auto [ptr, ec] = std::from_chars(v, end, n);
  if (ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  const char* socket_name = std::getenv("NOTIFY_SOCKET");
  if (socket_name != nullptr && *socket_name != '\0') {
    path_ = socket_name;
    if (path_.front() == '@') {
      path_.front() = '\0';  // abstract namespace
    }
    if ((path_.front() == '/' || path_.front() == '\0') &&
        path_.size() < sizeof(sockaddr_un::sun_path)) {
      fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    } else {
      spdlog::warn("systemd: NOTIFY_SOCKET '{}' is not a usable socket path; not notifying",
                   socket_name);
    }
  }
  const auto usec = env_number("WATCHDOG_USEC");
  const auto pid = env_number("WATCHDOG_PID");
  if (usec && *usec > 0 && (!pid || *pid == static_cast<std::uint64_t>(::getpid()))) {
    watchdog_ = std::chrono::microseconds(*usec);
  }
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void SystemdNotifier::notify(std::string_view state) {
  if (fd_ < 0) {
    return;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path_.data(), path_.size());
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() +
                                             (path_.front() == '\0' ? 0 : 1));
  const auto sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&address), length);
  if (sent < 0 && !warned_) {
    warned_ = true;
    spdlog::warn("systemd: cannot notify ({}); going on without", std::strerror(errno));
  }
}

}  // namespace tc::broker
