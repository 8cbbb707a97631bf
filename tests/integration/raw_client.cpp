// SPDX-License-Identifier: Apache-2.0
#include "raw_client.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tc::integration {
namespace {

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

}  // namespace

RawClient::RawClient(int port, Millis timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    throw HarnessError("socket: " + errno_message(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      const std::string why = errno_message(errno);
      ::close(fd_);
      throw HarnessError("connect 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
    pollfd p{fd_, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd_);
      throw HarnessError("connect 127.0.0.1:" + std::to_string(port) +
                         " failed or timed out: " + errno_message(err));
    }
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool RawClient::send(std::string_view bytes) {
  const auto deadline = Clock::now() + kDefaultTimeout;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      const int left = remaining_ms(deadline);
      if (left == 0 || ::poll(&p, 1, left) == 0) {
        return false;  // the server stopped reading: as good as closed for a test
      }
      continue;
    }
    return false;  // EPIPE / ECONNRESET
  }
  return true;
}

bool RawClient::read_some(Clock::time_point deadline) {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, remaining_ms(deadline));
  if (ready <= 0) {
    return ready < 0 && errno == EINTR;  // timeout: false; EINTR: try again
  }
  char buffer[16384];
  const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n > 0) {
    received_.append(buffer, static_cast<std::size_t>(n));
  } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    closed_ = true;  // EOF, or a reset (the server closed with our bytes still unread)
  }
  return true;
}

bool RawClient::read_until(const std::function<bool(const std::string&)>& done, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done(received_)) {
    if (closed_ || !read_some(deadline)) {
      return done(received_);
    }
  }
  return true;
}

bool RawClient::read_until_contains(std::string_view text, Millis timeout) {
  return read_until([text](const std::string& got) { return got.find(text) != std::string::npos; },
                    timeout);
}

bool RawClient::wait_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_) {
    if (!read_some(deadline)) {
      return false;
    }
  }
  return true;
}

bool RawClient::open_stream(const std::string& domain) {
  return send("<?xml version='1.0'?><stream:stream to='" + domain +
              "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
              "version='1.0'>");
}

bool RawClient::open_stream_and_read_features(const std::string& domain, Millis timeout) {
  if (!open_stream(domain)) {
    return false;
  }
  // The features element may be empty-element or carry children; both end one of these ways.
  return read_until(
      [](const std::string& got) {
        const auto start = got.find("<stream:features");
        if (start == std::string::npos) {
          return false;
        }
        const auto close = got.find("</stream:features>", start);
        const auto tag_end = got.find('>', start);
        return close != std::string::npos ||
               (tag_end != std::string::npos && got[tag_end - 1] == '/');
      },
      timeout);
}

std::string stream_error_of(const std::string& transcript) {
  const auto start = transcript.find("<stream:error");
  if (start == std::string::npos) {
    return {};
  }
  const std::string end_tag = "</stream:error>";
  const auto end = transcript.find(end_tag, start);
  if (end == std::string::npos) {
    return transcript.substr(start);
  }
  return transcript.substr(start, end + end_tag.size() - start);
}

}  // namespace tc::integration
