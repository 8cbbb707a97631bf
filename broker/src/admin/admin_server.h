// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include "broker/config.h"

namespace tc::broker::admin {

/// One authenticated admin request, body already parsed (null when empty).
struct Request {
  std::string method;  ///< "GET", "POST", "PUT", "DELETE"
  std::string target;  ///< path without the query string, e.g. "/api/v1/ha/status"
  std::string query;   ///< raw query string without '?'
  boost::json::value body;
};

/// The answer. JSON unless `text` is set (then `content_type`, e.g. Prometheus metrics).
struct Response {
  unsigned status = 200;
  boost::json::value body;
  std::string text;
  std::string content_type;
  unsigned retry_after_seconds = 0;  ///< > 0: sent as Retry-After (429)
};

/// {"error": message} with an HTTP error status.
Response error_response(unsigned status, std::string message);
/// 200 {"ok": true, "message": message}.
Response ok_response(std::string message);

using Respond = std::function<void(Response)>;

/// What the admin API serves (implemented by SRM). Called on the control executor; may
/// answer later (asynchronously), exactly once.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual void handle(const Request& request, Respond respond) = 0;
};

/// HTTP/1.1 admin server (Boost.Beast) on the admin RPC port: bearer-token authentication,
/// JSON in and out, the web page at "/". Runs on the control executor.
class AdminServer {
 public:
  AdminServer(boost::asio::any_io_executor executor, const Config& config, Backend& backend);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Binds and starts accepting. Throws std::runtime_error naming the address on failure.
  void start();
  /// Stops accepting and closes open connections. Call on the control executor's thread, or
  /// while it is not running (the destructor calls it).
  void stop();
  /// The bound port (useful when the config asked for port 0).
  std::uint16_t port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  ///< shared with the connection coroutines it spawns
};

}  // namespace tc::broker::admin
