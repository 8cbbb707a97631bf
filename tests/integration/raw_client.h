// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "harness.h"

namespace tc::integration {

/// A plain TCP client that speaks bytes, for feeding the server what no library would send.
/// Every read has a deadline; nothing blocks without one.
class RawClient {
 public:
  static constexpr Millis kDefaultTimeout = 10s;

  /// Connects to 127.0.0.1:port. Throws HarnessError when the connection is refused or times out.
  explicit RawClient(int port, Millis timeout = kDefaultTimeout);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  /// Writes all of `bytes`. False when the peer has closed or reset the connection.
  bool send(std::string_view bytes);

  /// Reads until `done(received())` holds, the peer closes, or `timeout` passes.
  /// Returns whether `done` held.
  bool read_until(const std::function<bool(const std::string&)>& done,
                  Millis timeout = kDefaultTimeout);
  /// Reads until `text` has been received (anywhere in the transcript).
  bool read_until_contains(std::string_view text, Millis timeout = kDefaultTimeout);
  /// Reads (and keeps) whatever comes until the peer closes the connection (EOF or reset).
  /// False when it is still open after `timeout`.
  bool wait_closed(Millis timeout = kDefaultTimeout);

  /// Everything received so far.
  const std::string& received() const { return received_; }
  bool closed() const { return closed_; }

  /// Sends the opening stream header of a c2s stream to `domain`.
  bool open_stream(const std::string& domain);
  /// open_stream() and then reads up to the end of the first <stream:features/>.
  bool open_stream_and_read_features(const std::string& domain, Millis timeout = kDefaultTimeout);

 private:
  /// One poll + recv; false on timeout.
  bool read_some(Clock::time_point deadline);

  int fd_ = -1;
  std::string received_;
  bool closed_ = false;
};

/// The text of the first <stream:error>...</stream:error> in `transcript`, empty when none.
std::string stream_error_of(const std::string& transcript);

}  // namespace tc::integration
