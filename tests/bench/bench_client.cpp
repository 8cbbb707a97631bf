// SPDX-License-Identifier: Apache-2.0
#include "bench_client.h"

#include <algorithm>
#include <charconv>
#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "xmpp/namespaces.h"
#include "xmpp/sasl.h"

namespace tc::bench {

namespace asio = boost::asio;
namespace ns = xmpp::ns;
using asio::ip::tcp;
using xmpp::StreamEvent;
using xmpp::XmlElement;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBufferBytes = std::size_t{64} * 1024;
constexpr std::string_view kBodyTag = "tcb ";

// boost::system::error_category has a protected non-virtual destructor by design (categories
// are never deleted through a base pointer); GCC's -Wnon-virtual-dtor cannot tell.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class BenchCategory final : public boost::system::error_category {
 public:
  static const BenchCategory& instance() {
    static const BenchCategory category;
    return category;
  }

  const char* name() const noexcept override { return "tc-bench"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::StreamClosed:
        return "the server closed the stream";
      case Errc::Refused:
        return "the server refused the request";
      case Errc::BadReply:
        return "unusable reply from the server";
    }
    return "unknown tc-bench error";
  }

 private:
  BenchCategory() = default;

 protected:
  // Never deleted through a base pointer: instance() owns the only one.
  ~BenchCategory() = default;
};
#pragma GCC diagnostic pop

/// Lets an exception escaping a detached coroutine (a bug of ours) end io_context::run()
/// loudly instead of vanishing.
struct RethrowOnError {
  void operator()(const std::exception_ptr& e) const {
    if (e) {
      std::rethrow_exception(e);
    }
  }
};

/// What a bench message body carries: "tcb <stream> <seq> <send time ns> <padding>".
struct BenchBody {
  std::size_t stream = 0;
  std::int64_t seq = 0;
  Clock::time_point sent_at{};
};

template <class T>
bool parse_number(std::string_view& text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end == text.data()) {
    return false;
  }
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  if (!text.empty() && text.front() == ' ') {
    text.remove_prefix(1);
  }
  return true;
}

std::optional<BenchBody> parse_body(std::string_view text) {
  if (text.substr(0, kBodyTag.size()) != kBodyTag) {
    return std::nullopt;
  }
  text.remove_prefix(kBodyTag.size());
  BenchBody body;
  std::int64_t ns = 0;
  if (!parse_number(text, body.stream) || !parse_number(text, body.seq) ||
      !parse_number(text, ns)) {
    return std::nullopt;
  }
  body.sent_at = Clock::time_point(std::chrono::nanoseconds(ns));
  return body;
}

/// Our message ids are "b<stream>-<seq>"; returns the stream.
std::optional<std::size_t> stream_of_id(std::string_view id) {
  if (id.empty() || id.front() != 'b') {
    return std::nullopt;
  }
  id.remove_prefix(1);
  std::size_t stream = 0;
  if (!parse_number(id, stream) || id.empty() || id.front() != '-') {
    return std::nullopt;
  }
  return stream;
}

/// The defined condition of an <error/> child (RFC 6120 §8.3.3), or "unknown".
std::string error_condition(const XmlElement& stanza) {
  const XmlElement* error = stanza.child("error");
  const XmlElement* condition = error != nullptr ? error->first_element() : nullptr;
  return condition != nullptr ? condition->name() : "unknown";
}

bool is_stream_element(const XmlElement& e, std::string_view name) {
  return e.name() == name && e.xmlns() == ns::kStream;
}

std::string stream_header(const std::string& domain) {
  return "<?xml version='1.0'?><stream:stream to='" + xmpp::xml_escape(domain) +
         "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
         "version='1.0'>";
}

}  // namespace

const boost::system::error_category& bench_category() {
  return BenchCategory::instance();
}

boost::system::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), bench_category()};
}

Signal::Signal(const asio::any_io_executor& executor)
    : timer_(executor, asio::steady_timer::time_point::max()) {}

asio::awaitable<void> Signal::wait() {
  timer_.expires_at(asio::steady_timer::time_point::max());
  // Cancellation by notify() is the normal way out; the error code carries no news.
  const auto ignored_result = co_await timer_.async_wait(kAsTuple);
  (void)ignored_result;
}

BenchClient::BenchClient(RunContext& run, ThreadStats& stats, const asio::any_io_executor& executor,
                         std::size_t index)
    : run_(run),
      stats_(stats),
      executor_(executor),
      index_(index),
      user_(run.plan.user(index)),
      socket_(executor),
      read_buffer_(kReadBufferBytes),
      write_wake_(executor) {
  for (const auto& m : run_.plan.memberships(index_)) {
    room_index_[m.room] = rooms_.size();
    Room room;
    room.room = m.room;
    room.occupant = m.occupant;
    room.jid = run_.plan.room_jid(m.room);
    room.last_seq.assign(run_.plan.senders(), -1);
    rooms_.push_back(std::move(room));
    if (m.occupant < run_.plan.senders()) {
      Stream& stream = streams_.emplace_back(executor_);
      stream.stream = run_.plan.stream_of(m.room, m.occupant);
      stream.room = rooms_.size() - 1;
      stream_index_[stream.stream] = &stream;
    }
  }
}

BenchClient::~BenchClient() = default;

// ---- setup ----

asio::awaitable<Result<void>> BenchClient::setup() {
  const auto began = Clock::now();
  step_ = "connect";
  const auto connect_error_result = co_await socket_.async_connect(run_.endpoint, kAsTuple);
  const auto connect_error = std::get<0>(connect_error_result);
  if (connect_error) {
    co_return connect_error;
  }
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  asio::co_spawn(executor_, write_loop(), RethrowOnError{});

  step_ = "stream";
  if (auto opened = co_await open_stream(); !opened) {
    co_return opened;
  }
  if (run_.options.register_accounts) {
    step_ = "register";
    if (auto registered = co_await register_account(); !registered) {
      co_return registered;
    }
  }
  step_ = "auth";
  if (auto authenticated = co_await authenticate(); !authenticated) {
    co_return authenticated;
  }
  // RFC 6120 §6.4.6: a new stream after SASL success.
  step_ = "stream-restart";
  parser_.reset();
  if (auto opened = co_await open_stream(); !opened) {
    co_return opened;
  }
  step_ = "bind";
  if (auto bound = co_await bind(); !bound) {
    co_return bound;
  }
  step_ = "join";
  if (auto joined = co_await join_rooms(); !joined) {
    co_return joined;
  }
  stats_.setup.add(Clock::now() - began);
  step_.clear();
  asio::co_spawn(executor_, read_loop(), RethrowOnError{});
  co_return Result<void>();
}

asio::awaitable<Result<StreamEvent>> BenchClient::next_event() {
  while (next_event_ >= events_.size()) {
    if (!parse_status_) {
      co_return parse_status_.error();
    }
    events_.clear();
    next_event_ = 0;
    const auto ec_n_result = co_await socket_.async_read_some(asio::buffer(read_buffer_), kAsTuple);
    const auto ec = std::get<0>(ec_n_result);
    const auto n = std::get<1>(ec_n_result);
    if (ec) {
      co_return ec;
    }
    parse_status_ = parser_.feed(std::string_view(read_buffer_.data(), n), events_);
  }
  co_return std::move(events_[next_event_++]);
}

asio::awaitable<Result<XmlElement>> BenchClient::next_stanza() {
  while (true) {
    auto event = co_await next_event();
    if (!event) {
      co_return event.error();
    }
    if (event->kind == StreamEvent::Kind::StreamOpen) {
      continue;
    }
    if (event->kind == StreamEvent::Kind::StreamClose) {
      co_return make_error_code(Errc::StreamClosed);
    }
    if (is_stream_element(event->element, "error")) {
      const XmlElement* condition = event->element.first_element();
      detail_ = "stream error " + (condition != nullptr ? condition->name() : std::string("?"));
      co_return make_error_code(Errc::StreamClosed);
    }
    co_return std::move(event->element);
  }
}

asio::awaitable<Result<void>> BenchClient::open_stream() {
  send(stream_header(run_.options.domain));
  auto features = co_await next_stanza();
  if (!features) {
    co_return features.error();
  }
  if (!is_stream_element(*features, "features")) {
    detail_ = "expected <stream:features/>, got <" + features->name() + "/>";
    co_return make_error_code(Errc::BadReply);
  }
  co_return Result<void>();
}

asio::awaitable<Result<void>> BenchClient::register_account() {
  XmlElement iq("iq", ns::kClient);
  iq.set_attr("type", "set").set_attr("id", "reg");
  auto& query = iq.add_child("query", ns::kRegister);
  query.add_child("username", ns::kRegister).add_text(user_);
  query.add_child("password", ns::kRegister).add_text(run_.options.password);
  send(iq.to_string(ns::kClient));
  while (true) {
    auto reply = co_await next_stanza();
    if (!reply) {
      co_return reply.error();
    }
    if (reply->name() != "iq" || reply->attr("id") != "reg") {
      continue;
    }
    if (reply->attr("type") == "result") {
      co_return Result<void>();
    }
    const std::string condition = error_condition(*reply);
    // XEP-0077: <conflict/> when the name is taken, which is the account of an earlier run.
    if (condition == "conflict") {
      co_return Result<void>();
    }
    detail_ = condition;
    co_return make_error_code(Errc::Refused);
  }
}

asio::awaitable<Result<void>> BenchClient::authenticate() {
  std::string plain;
  plain.push_back('\0');
  plain += user_;
  plain.push_back('\0');
  plain += run_.options.password;
  XmlElement auth("auth", ns::kSasl);
  auth.set_attr("mechanism", "PLAIN");
  auth.add_text(xmpp::base64_encode(plain));
  send(auth.to_string(ns::kClient));
  auto reply = co_await next_stanza();
  if (!reply) {
    co_return reply.error();
  }
  if (reply->name() == "success") {
    co_return Result<void>();
  }
  const XmlElement* condition = reply->first_element();
  detail_ = reply->name() + (condition != nullptr ? " " + condition->name() : std::string());
  co_return make_error_code(Errc::Refused);
}

asio::awaitable<Result<void>> BenchClient::bind() {
  XmlElement iq("iq", ns::kClient);
  iq.set_attr("type", "set").set_attr("id", "bind");
  iq.add_child("bind", ns::kBind);
  send(iq.to_string(ns::kClient));
  while (true) {
    auto reply = co_await next_stanza();
    if (!reply) {
      co_return reply.error();
    }
    if (reply->name() != "iq" || reply->attr("id") != "bind") {
      continue;
    }
    if (reply->attr("type") != "result") {
      detail_ = error_condition(*reply);
      co_return make_error_code(Errc::Refused);
    }
    const XmlElement* bound = reply->child("bind", ns::kBind);
    if (bound == nullptr || bound->child_text("jid", ns::kBind).empty()) {
      detail_ = "bind result without a JID";
      co_return make_error_code(Errc::BadReply);
    }
    co_return Result<void>();
  }
}

asio::awaitable<Result<void>> BenchClient::join_rooms() {
  // All joins go out at once; the server answers each room independently.
  std::string joins;
  for (const auto& room : rooms_) {
    XmlElement presence("presence", ns::kClient);
    presence.set_attr("to", room.jid + "/" + user_);
    presence.add_child("x", ns::kMuc).add_child("history", ns::kMuc).set_attr("maxstanzas", "0");
    presence.append_to(joins, ns::kClient);
  }
  send(joins);
  std::size_t waiting = rooms_.size();
  while (waiting > 0) {
    auto stanza = co_await next_stanza();
    if (!stanza) {
      co_return stanza.error();
    }
    if (stanza->name() != "presence") {
      continue;  // the subject, or a message from an earlier run's straggler
    }
    const std::string_view from = stanza->attr("from");
    const auto slash = from.find('/');
    if (slash == std::string_view::npos || from.substr(slash + 1) != user_) {
      continue;  // another occupant's presence
    }
    const auto it = std::find_if(rooms_.begin(), rooms_.end(),
                                 [&](const Room& r) { return r.jid == from.substr(0, slash); });
    if (it == rooms_.end()) {
      continue;
    }
    if (stanza->attr("type") == "error") {
      detail_ = it->jid + ": " + error_condition(*stanza);
      co_return make_error_code(Errc::Refused);
    }
    // XEP-0045 §7.2.3: the self-presence carries status code 110.
    const XmlElement* x = stanza->child("x", ns::kMucUser);
    bool self = false;
    if (x != nullptr) {
      for (const XmlElement* status : x->children("status", ns::kMucUser)) {
        self = self || status->attr("code") == "110";
      }
    }
    if (self && !it->joined) {
      it->joined = true;
      --waiting;
    }
  }
  co_return Result<void>();
}

// ---- the run ----

void BenchClient::start_sending() {
  for (auto& stream : streams_) {
    run_.shared.senders_active.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(executor_, send_loop(stream), RethrowOnError{});
  }
}

void BenchClient::close() {
  closing_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  write_wake_.notify();
  for (auto& stream : streams_) {
    stream.wake.notify();
    stream.pace.cancel();
  }
}

std::vector<BenchClient::StreamTotals> BenchClient::stream_totals() const {
  std::vector<StreamTotals> out;
  for (const auto& s : streams_) {
    out.push_back({s.stream, s.sent, s.committed, s.refused});
  }
  return out;
}

asio::awaitable<void> BenchClient::send_loop(Stream& stream) {
  const BenchOptions& options = run_.options;
  auto next = run_.start;
  Clock::duration period{};
  if (options.rate > 0) {
    period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0) /
                                                         options.rate);
    // Spread the senders over one period instead of firing them all at once.
    next += period * static_cast<Clock::rep>(stream.stream) /
            static_cast<Clock::rep>(run_.plan.streams());
  }
  const auto stopped = [&] {
    return closing_ || run_.shared.stop_sending.load(std::memory_order_relaxed) ||
           (options.duration_s <= 0 && stream.sent >= options.messages);
  };
  while (!stopped()) {
    if (options.rate > 0) {
      stream.pace.expires_at(next);
      const auto ignored_result = co_await stream.pace.async_wait(kAsTuple);
      (void)ignored_result;
      next += period;
    } else {
      while (stream.in_flight >= options.window && !closing_) {
        co_await stream.wake.wait();
      }
    }
    if (stopped()) {
      break;
    }
    send_message(stream);
  }
  run_.shared.senders_active.fetch_sub(1, std::memory_order_relaxed);
}

void BenchClient::send_message(Stream& stream) {
  const auto seq = stream.sent;
  const auto now = Clock::now();
  const auto stamp =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::string body = std::string(kBodyTag) + std::to_string(stream.stream) + " " +
                     std::to_string(seq) + " " + std::to_string(stamp) + " ";
  if (body.size() < run_.options.body_bytes) {
    body.append(run_.options.body_bytes - body.size(), 'x');
  }
  // Built by hand: the body is plain ASCII and this is the hot path of the sender.
  std::string stanza;
  stanza.reserve(body.size() + 128);
  stanza += "<message to='";
  stanza += rooms_[stream.room].jid;
  stanza += "' type='groupchat' id='b";
  stanza += std::to_string(stream.stream);
  stanza += '-';
  stanza += std::to_string(seq);
  stanza += "'><body>";
  stanza += body;
  stanza += "</body></message>";
  send(stanza);
  ++stream.sent;
  ++stream.in_flight;
  ++stats_.sent;
  run_.shared.in_flight.fetch_add(1, std::memory_order_relaxed);
}

void BenchClient::send(std::string_view bytes) {
  pending_.append(bytes);
  write_wake_.notify();
}

asio::awaitable<void> BenchClient::write_loop() {
  while (true) {
    while (pending_.empty() && !closing_) {
      co_await write_wake_.wait();
    }
    if (closing_) {
      break;
    }
    writing_.swap(pending_);
    const auto ec_n_result = co_await asio::async_write(socket_, asio::buffer(writing_), kAsTuple);
    const auto ec = std::get<0>(ec_n_result);
    const auto n = std::get<1>(ec_n_result);
    (void)n;
    writing_.clear();
    if (ec) {
      on_connection_lost("write", ec);
      break;
    }
  }
}

asio::awaitable<void> BenchClient::read_loop() {
  while (!closing_) {
    auto event = co_await next_event();
    if (!event) {
      on_connection_lost("read", event.error());
      break;
    }
    if (event->kind == StreamEvent::Kind::StreamClose) {
      on_connection_lost("read", make_error_code(Errc::StreamClosed));
      break;
    }
    if (event->kind == StreamEvent::Kind::Stanza) {
      on_stanza(event->element);
    }
  }
}

void BenchClient::on_connection_lost(std::string_view what, const boost::system::error_code& ec) {
  if (closing_) {
    return;
  }
  count_error("connection lost (" + std::string(what) + "): " + ec.message());
  run_.shared.disconnects.fetch_add(1, std::memory_order_relaxed);
  close();
}

void BenchClient::on_stanza(const XmlElement& stanza) {
  if (stanza.name() == "message") {
    const std::string_view type = stanza.attr("type");
    if (type == "groupchat") {
      on_groupchat(stanza);
    } else if (type == "error") {
      on_message_error(stanza);
    }
  } else if (stanza.name() == "presence") {
    if (stanza.attr("type") == "error") {
      count_error("presence error: " + error_condition(stanza));
    }
  } else if (stanza.name() == "iq") {
    const std::string_view type = stanza.attr("type");
    if (type == "get" && stanza.child("ping", ns::kPing) != nullptr) {
      XmlElement pong("iq", ns::kClient);
      pong.set_attr("type", "result").set_attr("id", std::string(stanza.attr("id")));
      pong.set_attr("to", std::string(stanza.attr("from")));
      send(pong.to_string(ns::kClient));
    }
  } else if (is_stream_element(stanza, "error")) {
    const XmlElement* condition = stanza.first_element();
    count_error("stream error: " + (condition != nullptr ? condition->name() : std::string("?")));
  }
}

void BenchClient::on_groupchat(const XmlElement& message) {
  const auto now = Clock::now();
  const XmlElement* body_element = message.child("body", ns::kClient);
  if (body_element == nullptr) {
    return;  // subject changes, chat states
  }
  const auto body = parse_body(body_element->text());
  if (!body || body->stream >= run_.plan.streams()) {
    return;  // not ours
  }
  const std::size_t room = run_.plan.room_of_stream(body->stream);
  const std::size_t sender = run_.plan.occupant_of_stream(body->stream);
  const auto found = room_index_.find(room);
  const std::string_view from = message.attr("from");
  if (found == room_index_.end() || from.substr(0, from.find('/')) != rooms_[found->second].jid) {
    ++stats_.unexpected;
    return;
  }
  Room& r = rooms_[found->second];
  if (r.occupant == sender) {
    // The reflection of our own message: the server has committed it (the durability rule).
    const auto stream_it = stream_index_.find(body->stream);
    if (stream_it == stream_index_.end() || stream_it->second->in_flight == 0) {
      ++stats_.unexpected;
      return;
    }
    Stream& stream = *stream_it->second;
    ++stream.committed;
    --stream.in_flight;
    stream.wake.notify();
    ++stats_.committed;
    stats_.commit.add(now - body->sent_at);
    stats_.last_commit = now;
    run_.shared.in_flight.fetch_sub(1, std::memory_order_relaxed);
    run_.shared.expected_deliveries.fetch_add(run_.plan.occupants() - 1, std::memory_order_relaxed);
    run_.shared.progress.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto& last = r.last_seq[sender];
  if (body->seq != last + 1) {
    ++stats_.out_of_order;
  }
  last = body->seq;
  ++stats_.delivered;
  stats_.delivery.add(now - body->sent_at);
  stats_.last_delivery = now;
  run_.shared.deliveries.fetch_add(1, std::memory_order_relaxed);
  run_.shared.progress.fetch_add(1, std::memory_order_relaxed);
}

void BenchClient::on_message_error(const XmlElement& message) {
  const auto stream_id = stream_of_id(message.attr("id"));
  const auto it = stream_id ? stream_index_.find(*stream_id) : stream_index_.end();
  count_error("message error: " + error_condition(message));
  if (it == stream_index_.end() || it->second->in_flight == 0) {
    return;
  }
  Stream& stream = *it->second;
  ++stream.refused;
  --stream.in_flight;
  stream.wake.notify();
  ++stats_.refused;
  run_.shared.in_flight.fetch_sub(1, std::memory_order_relaxed);
  run_.shared.progress.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace tc::bench
