// SPDX-License-Identifier: Apache-2.0
#include "ha/peer_link.h"

#include <array>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "xmpp/stream_parser.h"

namespace tc::broker::ha {

namespace asio = boost::asio;
using asio::ip::tcp;
using xmpp::XmlElement;

namespace {

constexpr std::string_view kNs = "urn:tcbroker:link:1";
constexpr std::size_t kMaxQueuedBytes = 64 * 1024 * 1024;
constexpr auto kRedial = std::chrono::milliseconds(100);

const char* channel_name(PeerLink::Channel c) {
  return c == PeerLink::Channel::Srm ? "srm" : "data";
}

xmpp::ParserLimits link_limits() {
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = 32 * 1024 * 1024;
  limits.max_depth = 64;
  return limits;
}

}  // namespace

struct PeerLink::Connection : std::enable_shared_from_this<Connection> {
  Connection(PeerLink& link, tcp::socket s)
      : owner(link), socket(std::move(s)), parser(link_limits()) {}

  PeerLink& owner;
  tcp::socket socket;
  xmpp::StreamParser parser;
  std::array<char, 16 * 1024> buffer{};
  std::deque<std::string> queue;
  std::size_t queued = 0;
  bool writing = false;
  bool closed = false;
  bool inbound = false;
  bool hello_seen = false;
  Channel channel = Channel::Srm;
  std::string node;  ///< the sending node (inbound, after its hello)
  std::function<void()> on_close;

  void start_reading() {
    auto self = shared_from_this();
    socket.async_read_some(
        asio::buffer(buffer), [self](boost::system::error_code ec, std::size_t n) {
          if (ec || self->closed) {
            self->close();
            return;
          }
          std::vector<xmpp::StreamEvent> events;
          auto fed = self->parser.feed(std::string_view(self->buffer.data(), n), events);
          for (auto& e : events) {
            if (self->closed) {
              return;
            }
            self->on_event(e);
          }
          if (!fed) {
            spdlog::warn("peer link: bad stream from peer: {}", fed.error().message());
            self->close();
            return;
          }
          self->start_reading();
        });
  }

  void on_event(xmpp::StreamEvent& e) {
    using Kind = xmpp::StreamEvent::Kind;
    if (e.kind == Kind::StreamClose) {
      close();
      return;
    }
    if (e.kind != Kind::Stanza) {
      return;
    }
    if (!inbound) {
      return;  // outbound connections only write
    }
    if (!hello_seen) {
      const XmlElement& h = e.element;
      channel = h.attr("channel") == "data" ? Channel::Data : Channel::Srm;
      node = std::string(h.attr("node"));
      // The group's peer on either channel; another group's node (the mesh) on data only.
      const bool known = !node.empty() && (node == owner.peer_name_ ||
                                           (channel == Channel::Data && owner.accept_known_ &&
                                            node != owner.self_ && owner.accept_known_(node)));
      if (h.name() != "hello" || h.xmlns() != kNs || h.attr("secret") != owner.secret_ || !known) {
        spdlog::warn(
            "peer link: refused a connection from {} (not a node of this cluster, or wrong "
            "secret)",
            node);
        close();
        return;
      }
      hello_seen = true;
      return;
    }
    if (owner.on_element_ && !owner.cut_) {
      owner.on_element_(channel, node, std::move(e.element));
    }
  }

  bool send(std::string bytes) {
    if (closed) {
      return false;
    }
    if (queued + bytes.size() > kMaxQueuedBytes) {
      spdlog::error("peer link: {} channel backlog over {} bytes; resetting the connection",
                    channel_name(channel), kMaxQueuedBytes);
      close();
      return false;
    }
    queued += bytes.size();
    queue.push_back(std::move(bytes));
    if (!writing) {
      write_next();
    }
    return true;
  }

  void write_next() {
    if (queue.empty() || closed) {
      writing = false;
      return;
    }
    writing = true;
    // Gather what is queued into one write.
    auto batch = std::make_shared<std::string>();
    while (!queue.empty() && batch->size() < 256 * 1024) {
      *batch += queue.front();
      queued -= queue.front().size();
      queue.pop_front();
    }
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(*batch),
                      [self, batch](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->write_next();
                      });
  }

  void close() {
    if (closed) {
      return;
    }
    closed = true;
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    if (on_close) {
      auto f = std::move(on_close);
      f();
    }
  }
};

PeerLink::PeerLink(asio::io_context& control, std::string self, std::string secret, bool data_only)
    : control_(control),
      self_(std::move(self)),
      secret_(std::move(secret)),
      acceptor_(control),
      data_only_(data_only) {}

PeerLink::~PeerLink() {
  stop();
}

void PeerLink::listen(const std::string& address, std::uint16_t port) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    throw std::runtime_error("ha.address: \"" + address + "\" is not an IP address");
  }
  tcp::endpoint endpoint(ip, port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on the SRM service port " + address + ":" +
                             std::to_string(port) + ": " + ec.message());
  }
  acceptor_.listen();
  accept();
}

std::uint16_t PeerLink::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void PeerLink::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopped_) {
      return;
    }
    if (!ec) {
      if (cut_) {
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        auto c = std::make_shared<Connection>(*this, std::move(socket));
        c->inbound = true;
        std::erase_if(inbound_, [](const auto& w) { return w.expired(); });
        inbound_.push_back(c);
        c->start_reading();
      }
    }
    accept();
  });
}

void PeerLink::set_peer(std::string peer_name, std::string endpoint) {
  if (peer_name == peer_name_ && endpoint == peer_endpoint_) {
    return;
  }
  peer_name_ = std::move(peer_name);
  peer_endpoint_ = std::move(endpoint);
  ++generation_;
  for (auto& c : out_) {
    if (c) {
      c->on_close = nullptr;
      c->close();
      c.reset();
    }
  }
  if (!peer_endpoint_.empty()) {
    if (!data_only_) {
      dial(Channel::Srm);
    }
    dial(Channel::Data);
  }
}

void PeerLink::dial(Channel channel) {
  if (stopped_ || peer_endpoint_.empty()) {
    return;
  }
  const auto generation = generation_;
  auto retry = [this, channel, generation] {
    auto timer = std::make_shared<asio::steady_timer>(control_, kRedial);
    timer->async_wait([this, channel, generation, timer](boost::system::error_code ec) {
      if (!ec && generation == generation_ && !stopped_) {
        dial(channel);
      }
    });
  };
  if (cut_) {
    retry();
    return;
  }
  const auto colon = peer_endpoint_.rfind(':');
  if (colon == std::string::npos) {
    spdlog::error("peer link: bad SRM endpoint \"{}\" for {}", peer_endpoint_, peer_name_);
    return;
  }
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(peer_endpoint_.substr(0, colon), ec);
  const int port = std::atoi(peer_endpoint_.c_str() + colon + 1);
  if (ec || port <= 0 || port > 65535) {
    spdlog::error("peer link: bad SRM endpoint \"{}\" for {}", peer_endpoint_, peer_name_);
    return;
  }
  auto socket = std::make_shared<tcp::socket>(control_);
  // A dial across a cut network waits for SYN retransmissions (1 s, 3 s, 7 s, ...): abandon it
  // after connect_timeout_ and dial afresh, so the link returns soon after the network does.
  auto deadline = std::make_shared<asio::steady_timer>(control_, connect_timeout_);
  deadline->async_wait([socket](boost::system::error_code waited) {
    if (!waited) {
      boost::system::error_code ignored;
      socket->cancel(ignored);
    }
  });
  socket->async_connect(
      tcp::endpoint(ip, static_cast<std::uint16_t>(port)),
      [this, socket, channel, generation, retry, deadline](boost::system::error_code e) {
        deadline->cancel();
        if (generation != generation_ || stopped_) {
          return;
        }
        if (e || cut_) {
          retry();
          return;
        }
        boost::system::error_code ignored;
        socket->set_option(tcp::no_delay(true), ignored);
        auto c = std::make_shared<Connection>(*this, std::move(*socket));
        c->channel = channel;
        const auto i = static_cast<std::size_t>(channel);
        out_[i] = c;
        c->on_close = [this, channel, generation, retry] {
          if (generation != generation_) {
            return;
          }
          out_[static_cast<std::size_t>(channel)].reset();
          if (on_state_) {
            on_state_(channel, false);
          }
          retry();
        };
        XmlElement hello("hello", std::string(kNs));
        hello.set_attr("node", self_).set_attr("channel", channel_name(channel));
        hello.set_attr("secret", secret_);
        c->send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>" +
            hello.to_string());
        // Reading only notices the peer closing (it never writes on this
        // connection).
        c->start_reading();
        spdlog::info("peer link: {} channel to {} at {} is up", channel_name(channel), peer_name_,
                     peer_endpoint_);
        if (on_state_) {
          on_state_(channel, true);
        }
      });
}

bool PeerLink::send(Channel channel, const XmlElement& element) {
  return send_raw(channel, element.to_string("jabber:client"));
}

bool PeerLink::send_raw(Channel channel, std::string xml) {
  auto& c = out_[static_cast<std::size_t>(channel)];
  if (!c || cut_) {
    return false;
  }
  return c->send(std::move(xml));
}

bool PeerLink::up(Channel channel) const {
  return !cut_ && out_[static_cast<std::size_t>(channel)] != nullptr;
}

void PeerLink::set_cut(bool cut) {
  cut_ = cut;
  if (!cut) {
    return;
  }
  for (auto& c : out_) {
    if (c) {
      c->close();  // on_close resets it and retries (dial waits while cut)
    }
  }
  for (auto& w : inbound_) {
    if (auto c = w.lock()) {
      c->close();
    }
  }
  inbound_.clear();
}

void PeerLink::reset() {
  for (auto& c : out_) {
    if (c) {
      c->close();  // on_close resets it, reports the channel down and dials again
    }
  }
  for (auto& w : inbound_) {
    if (auto c = w.lock()) {
      c->close();
    }
  }
  inbound_.clear();
}

void PeerLink::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  ++generation_;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& c : out_) {
    if (c) {
      c->on_close = nullptr;
      c->close();
      c.reset();
    }
  }
  for (auto& w : inbound_) {
    if (auto c = w.lock()) {
      c->close();
    }
  }
  inbound_.clear();
}

}  // namespace tc::broker::ha
