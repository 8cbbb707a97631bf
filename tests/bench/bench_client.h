// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/result.h"
#include "xmpp/stream_parser.h"
#include "xmpp/xml_element.h"

#include "bench_plan.h"

namespace tc::bench {

/// Why a client failed: its own category, so setup failures read well in the report.
enum class Errc {
  StreamClosed = 1,  ///< the server closed the stream (or sent a stream error)
  Refused,           ///< the server answered a request with an error or a SASL failure
  BadReply,          ///< a reply we cannot use (no features, bind without a JID, ...)
};
const boost::system::error_category& bench_category();
boost::system::error_code make_error_code(Errc e);

/// A one-waiter wake-up on the waiter's executor: the waiter loops `while (!cond) co_await
/// wait();`, anyone on the same thread calls notify() after changing cond.
class Signal {
 public:
  explicit Signal(const boost::asio::any_io_executor& executor);
  void notify() { timer_.cancel(); }
  boost::asio::awaitable<void> wait();

 private:
  boost::asio::steady_timer timer_;
};

/// One XMPP client connection: logs in, joins its rooms, sends for its sender slots and
/// checks what arrives. Everything runs on the executor given at construction (one I/O
/// thread), so nothing here is locked; the coroutines it spawns hold `this`, so the object
/// must outlive its io_context's run().
class BenchClient {
 public:
  /// Totals of one sender slot, read after the I/O threads have stopped.
  struct StreamTotals {
    std::size_t stream = 0;
    std::uint64_t sent = 0;
    std::uint64_t committed = 0;
    std::uint64_t refused = 0;
  };

  BenchClient(RunContext& run, ThreadStats& stats, const boost::asio::any_io_executor& executor,
              std::size_t index);
  ~BenchClient();
  BenchClient(const BenchClient&) = delete;
  BenchClient& operator=(const BenchClient&) = delete;

  /// Connects, registers (when asked), logs in with PLAIN, binds and joins every room of the
  /// plan, waiting for each self-presence (status 110); then keeps reading in the
  /// background. On failure failed_step() names the step and failure_detail() what the
  /// server said, when it said anything.
  boost::asio::awaitable<Result<void>> setup();
  const std::string& failed_step() const { return step_; }
  const std::string& failure_detail() const { return detail_; }

  /// Starts one sending coroutine per sender slot this client holds.
  void start_sending();
  /// Closes the connection; pending coroutines end soon after.
  void close();

  std::vector<StreamTotals> stream_totals() const;

 private:
  struct Room {
    std::size_t room = 0;
    std::size_t occupant = 0;
    std::string jid;
    bool joined = false;
    std::vector<std::int64_t> last_seq;  ///< per sender of the room, -1 before the first
  };
  struct Stream {
    explicit Stream(const boost::asio::any_io_executor& executor)
        : wake(executor), pace(executor) {}
    std::size_t stream = 0;
    std::size_t room = 0;  ///< index into rooms_
    std::uint64_t sent = 0;
    std::uint64_t committed = 0;
    std::uint64_t refused = 0;
    std::uint64_t in_flight = 0;
    Signal wake;  ///< a reflection or refusal freed a window slot
    boost::asio::steady_timer pace;
  };

  boost::asio::awaitable<Result<xmpp::StreamEvent>> next_event();
  /// The next top-level stanza; a stream close or stream error is an Errc::StreamClosed.
  boost::asio::awaitable<Result<xmpp::XmlElement>> next_stanza();
  boost::asio::awaitable<Result<void>> open_stream();
  boost::asio::awaitable<Result<void>> register_account();
  boost::asio::awaitable<Result<void>> authenticate();
  boost::asio::awaitable<Result<void>> bind();
  boost::asio::awaitable<Result<void>> join_rooms();

  boost::asio::awaitable<void> write_loop();
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> send_loop(Stream& stream);

  void send(std::string_view bytes);
  void send_message(Stream& stream);
  void on_stanza(const xmpp::XmlElement& stanza);
  void on_groupchat(const xmpp::XmlElement& message);
  void on_message_error(const xmpp::XmlElement& message);
  /// Records a lost connection (unless we are closing) and wakes every waiter.
  void on_connection_lost(std::string_view what, const boost::system::error_code& ec);
  void count_error(const std::string& kind) { ++stats_.errors[kind]; }

  RunContext& run_;
  ThreadStats& stats_;
  boost::asio::any_io_executor executor_;
  std::size_t index_;
  std::string user_;
  boost::asio::ip::tcp::socket socket_;
  xmpp::StreamParser parser_;
  std::vector<char> read_buffer_;
  std::vector<xmpp::StreamEvent> events_;
  std::size_t next_event_ = 0;
  Result<void> parse_status_;  ///< a parse error, reported once the events before it are used
  std::string pending_;        ///< bytes queued behind the write in flight
  std::string writing_;
  Signal write_wake_;
  bool closing_ = false;  ///< close() was called or the connection was lost
  std::string step_;
  std::string detail_;
  std::vector<Room> rooms_;
  std::unordered_map<std::size_t, std::size_t> room_index_;  ///< plan room -> rooms_ index
  std::deque<Stream> streams_;
  std::unordered_map<std::size_t, Stream*> stream_index_;  ///< plan stream -> streams_ entry
};

}  // namespace tc::bench

namespace boost::system {
template <>
struct is_error_code_enum<tc::bench::Errc> : std::true_type {};
}  // namespace boost::system
