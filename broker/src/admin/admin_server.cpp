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
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "base/limits.h"

#include "admin/web_page.h"
#include "net/tokens.h"

namespace tc::broker::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Tcp = asio::ip::tcp;
using net::Awaitable;
using net::kAsTuple;

constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
constexpr std::size_t kMaxConnections = 64;
constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr auto kWriteTimeout = std::chrono::seconds(10);
constexpr auto kBackendTimeout = std::chrono::seconds(30);

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Compare digests so that neither the content nor the length leaks through timing.
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  return s;
}

/// Waits for a Backend's answer, which may come at once or later, exactly once.
struct PendingAnswer {
  explicit PendingAnswer(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  std::optional<Response> response;
};

}  // namespace

Response error_response(unsigned status, std::string message) {
  Response r;
  r.status = status;
  r.body = boost::json::object{{"error", std::move(message)}};
  return r;
}

Response ok_response(std::string message) {
  Response r;
  r.body = boost::json::object{{"ok", true}, {"message", std::move(message)}};
  return r;
}

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
  static constexpr std::size_t kMaxTokenFailures = 10;
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
      file_token = std::string(trim(line));
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
    const std::string_view full(req.target().data(), req.target().size());
    const auto qpos = full.find('?');
    const std::string_view path = full.substr(0, qpos);
    if (path == "/" || path == "/index.html") {
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        co_return error_response(405, "the page only answers GET");
      }
      Response page;
      page.text = std::string(web_page());
      page.content_type = "text/html; charset=utf-8";
      co_return page;
    }
    std::string why;
    const std::string token = current_token(why);
    if (token.empty()) {
      co_return error_response(401, why);
    }
    const auto auth = req[http::field::authorization];
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view given(auth.data(), auth.size());
    if (given.size() <= kBearer.size() || given.substr(0, kBearer.size()) != kBearer) {
      co_return error_response(401, "missing bearer token (send Authorization: Bearer TOKEN)");
    }
    // Brute force: an address that sent kMaxTokenFailures wrong tokens within a minute is
    // refused without a comparison until the oldest of them is a minute old.
    const auto now = LimitClock::now();
    if (const auto wait = token_failures.blocked_for(client, now); wait.count() > 0) {
      Response r =
          error_response(429, "too many wrong admin tokens from " + client + "; try again in " +
                                  std::to_string((wait.count() + 999) / 1000) + " s");
      r.retry_after_seconds = static_cast<unsigned>((wait.count() + 999) / 1000);
      co_return r;
    }
    if (!constant_time_equal(trim(given.substr(kBearer.size())), token)) {
      token_failures.failed(client, now);
      spdlog::warn("admin API: wrong token from {}", client);
      co_return error_response(401, "wrong admin token");
    }
    Request request;
    request.method = std::string(req.method_string());
    request.target = std::string(path);
    if (qpos != std::string_view::npos) {
      request.query = std::string(full.substr(qpos + 1));
    }
    if (!trim(req.body()).empty()) {
      boost::system::error_code ec;
      request.body = boost::json::parse(req.body(), ec);
      if (ec) {
        co_return error_response(400, "the body is not valid JSON: " + ec.message());
      }
    }
    co_return co_await ask_backend(std::move(request));
  }

  static HttpResponse to_http(Response r, unsigned version, bool keep_alive, bool head) {
    HttpResponse res{static_cast<http::status>(r.status), version};
    res.set(http::field::server, "tcbroker-admin");
    res.set(http::field::cache_control, "no-store");
    if (!r.text.empty() || !r.content_type.empty()) {
      res.set(http::field::content_type,
              r.content_type.empty() ? "text/plain; charset=utf-8" : r.content_type);
      res.body() = std::move(r.text);
    } else {
      res.set(http::field::content_type, "application/json");
      res.body() = boost::json::serialize(
                       r.body.is_null() ? boost::json::value(boost::json::object{}) : r.body) +
                   "\n";
    }
    if (r.status == 401) {
      res.set(http::field::www_authenticate, "Bearer realm=\"tcbroker\"");
    }
    if (r.retry_after_seconds > 0) {
      res.set(http::field::retry_after, std::to_string(r.retry_after_seconds));
    }
    res.keep_alive(keep_alive);
    res.prepare_payload();
    if (head) {
      res.body().clear();
    }
    return res;
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
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxBodyBytes);
      parser.header_limit(kMaxHeaderBytes);
      stream.expires_after(kReadTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAsTuple);
      if (stopped) {
        break;
      }
      if (ec) {
        std::optional<Response> refusal;
        if (ec == http::error::body_limit) {
          refusal = error_response(413, "the body is larger than 64 KiB");
        } else if (ec == http::error::header_limit) {
          refusal = error_response(431, "the request header is too large");
        } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal = error_response(400, "malformed HTTP request: " + ec.message());
        }
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
