// SPDX-License-Identifier: Apache-2.0
#include "admin/admin_server.h"

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "base/limits.h"

#include "admin/http_codec.h"
#include "net/tokens.h"

namespace tc::broker::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Tcp = asio::ip::tcp;
using net::Awaitable;
using net::kAsTuple;

constexpr std::size_t kMaxConnections = 64;
constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr auto kWriteTimeout = std::chrono::seconds(10);
constexpr auto kBackendTimeout = std::chrono::seconds(30);

/// Waits for a Backend's answer, which may come at once or later, exactly once.
struct PendingAnswer {
  explicit PendingAnswer(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  std::optional<Response> response;
};

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
  Impl(asio::any_io_executor ex, const Config& cfg, Backend& be)
      : executor(ex), config(cfg), backend(&be), acceptor(ex) {}

  asio::any_io_executor executor;
  Config config;
  Backend* backend;
  Tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  bool stopped = false;
  // Control-thread only: the open connections, so that stop() can close them.
  std::set<beast::tcp_stream*> connections;
  std::set<std::shared_ptr<PendingAnswer>> pending;

  // Token file cache: re-read when the file changes, so a rotated token needs no restart.
  std::filesystem::file_time_type token_mtime{};
  std::string file_token;
  /// Wrong tokens per client address (brute-force throttling): 10 a minute.
  FailureThrottle token_failures{kMaxTokenFailures, std::chrono::minutes(1)};

  /// The configured token, or "" with `why` saying how to configure one.
  std::string current_token(std::string& why) {
    if (!config.admin_token.empty()) {
      return config.admin_token;
    }
    if (config.admin_token_file.empty()) {
      why = "no admin token is configured: set [admin] token or token_file in " +
            (config.file.empty() ? std::string("the node's configuration") : config.file.string()) +
            " and restart the node";
      return {};
    }
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(config.admin_token_file, ec);
    if (ec) {
      why = "the admin token file " + config.admin_token_file.string() +
            " cannot be read: " + ec.message();
      return {};
    }
    if (mtime != token_mtime || file_token.empty()) {
      std::ifstream in(config.admin_token_file);
      std::string line;
      std::getline(in, line);
      file_token = std::string(trim_space(line));
      token_mtime = mtime;
    }
    if (file_token.empty()) {
      why = "the admin token file " + config.admin_token_file.string() +
            " is empty: write the token on its first line";
    }
    return file_token;
  }

  // Coroutine entry points hold their owner from the moment they are created (a parameter):
  // a shared_from_this() inside would run only when the coroutine first resumes, and a server
  // destroyed before that (a start-up that failed later on) would be used after its free.
  Awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(kAsTuple);
      if (stopped) {
        co_return;
      }
      if (ec) {
        if (ec == asio::error::operation_aborted) {
          co_return;
        }
        continue;  // e.g. EMFILE: keep serving the connections we have
      }
      if (connections.size() >= kMaxConnections) {
        boost::system::error_code ignored;
        socket.close(ignored);  // a flood must not starve the control thread
        continue;
      }
      asio::co_spawn(executor, session(self, std::move(socket)), asio::detached);
    }
  }

  Awaitable<Response> ask_backend(Request request) {
    auto self = shared_from_this();
    auto answer = std::make_shared<PendingAnswer>(executor);
    answer->timer.expires_after(kBackendTimeout);
    pending.insert(answer);
    auto ex = executor;
    try {
      backend->handle(request, [answer, ex](Response r) {
        // Any thread may answer; the result is stored on the control executor.
        asio::post(ex, [answer, r = std::move(r)]() mutable {
          if (!answer->response) {
            answer->response = std::move(r);
            answer->timer.cancel();
          }
        });
      });
    } catch (const std::exception& e) {
      pending.erase(answer);
      co_return error_response(500, std::string("internal error: ") + e.what());
    }
    while (!answer->response && !stopped) {
      auto [ec] = co_await answer->timer.async_wait(kAsTuple);
      if (!ec) {
        break;  // timed out
      }
    }
    pending.erase(answer);
    if (!answer->response) {
      co_return error_response(504, "the node did not answer in time");
    }
    co_return std::move(*answer->response);
  }

  Awaitable<Response> dispatch(const HttpRequest& req, const std::string& client) {
    Credentials credentials;
    credentials.token = current_token(credentials.why_none);
    auto admitted = admit(req, client, credentials, token_failures, LimitClock::now());
    if (auto* refused = std::get_if<Response>(&admitted)) {
      co_return std::move(*refused);
    }
    co_return co_await ask_backend(std::move(std::get<Request>(admitted)));
  }

  /// Half-closes, then reads and drops what the client still sends (bounded), so that closing
  /// with unread data does not reset the connection before the client has read our answer.
  static Awaitable<void> drain(beast::tcp_stream& stream) {
    boost::system::error_code ignored;
    stream.socket().shutdown(Tcp::socket::shutdown_send, ignored);
    stream.expires_after(std::chrono::seconds(2));
    std::array<char, 16 * 1024> sink;
    for (std::size_t total = 0; total < 4 * kMaxBodyBytes;) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kAsTuple);
      if (ec) {
        break;
      }
      total += n;
    }
  }

  Awaitable<void> session([[maybe_unused]] std::shared_ptr<Impl> self, Tcp::socket socket) {
    boost::system::error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    const std::string client = peer_ec ? std::string("?") : peer.address().to_string();
    beast::tcp_stream stream(std::move(socket));
    connections.insert(&stream);
    beast::flat_buffer buffer;
    for (;;) {
      RequestParser parser;
      limit(parser);
      stream.expires_after(kReadTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAsTuple);
      if (stopped) {
        break;
      }
      if (ec) {
        std::optional<Response> refusal = refusal_for(ec);
        if (refusal) {
          // The rest of the stream cannot be trusted: answer, then close.
          auto res = to_http(std::move(*refusal), 11, false, false);
          stream.expires_after(kWriteTimeout);
          auto [wec, wn] = co_await http::async_write(stream, res, kAsTuple);
          if (!wec) {
            co_await drain(stream);
          }
        }
        break;
      }
      HttpRequest req = parser.release();
      const bool keep_alive = req.keep_alive();
      Response answer = co_await dispatch(req, client);
      if (stopped) {
        break;
      }
      auto res =
          to_http(std::move(answer), req.version(), keep_alive, req.method() == http::verb::head);
      stream.expires_after(kWriteTimeout);
      auto [wec, wn] = co_await http::async_write(stream, res, kAsTuple);
      if (wec || !keep_alive || stopped) {
        break;
      }
    }
    connections.erase(&stream);
    boost::system::error_code ignored;
    stream.socket().shutdown(Tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  void stop() {
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (auto* c : connections) {
      c->socket().close(ignored);
    }
    for (const auto& p : pending) {
      p->timer.cancel();
    }
  }
};

AdminServer::AdminServer(boost::asio::any_io_executor executor, const Config& config,
                         Backend& backend)
    : impl_(std::make_shared<Impl>(executor, config, backend)) {}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  const std::string where =
      impl_->config.admin_address + ":" + std::to_string(impl_->config.admin_port);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(impl_->config.admin_address, ec);
  if (ec) {
    throw std::runtime_error("admin.address: \"" + impl_->config.admin_address +
                             "\" is not an IP address");
  }
  const Tcp::endpoint endpoint{address, impl_->config.admin_port};
  auto& acceptor = impl_->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); !ec) {
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (acceptor.bind(endpoint, ec); !ec) {
      acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
  }
  if (ec) {
    throw std::runtime_error("cannot listen for the admin API on " + where + ": " + ec.message());
  }
  impl_->bound_port = acceptor.local_endpoint().port();
  impl_->stopped = false;
  asio::co_spawn(impl_->executor, impl_->accept_loop(impl_), asio::detached);
}

void AdminServer::stop() {
  if (impl_) {
    impl_->stop();
  }
}

std::uint16_t AdminServer::port() const {
  return impl_->bound_port;
}

}  // namespace tc::broker::admin
