// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "base/result.h"

namespace tc::broker::admin {

/// Where an admin API listens: "http://host:port".
struct Endpoint {
  std::string host = "127.0.0.1";
  std::string port = "20075";
  std::string url() const;
};

/// Parses "http://host:port", "http://[::1]:20075", "host:port" or "host" (port 20075).
/// Nullopt when it is not one of those (https is not served).
std::optional<Endpoint> parse_endpoint(std::string_view text);

struct ClientResponse {
  unsigned status = 0;
  std::string body;         ///< as the server sent it
  boost::json::value json;  ///< parsed body; null when it was not JSON
  /// The server's "error" message, or "HTTP <status>" when it gave none.
  std::string error_message() const;
};

/// One synchronous admin API call (tcctl): connect, send, read, close, all within `timeout`.
/// A transport failure (refused, unreachable, timed out) is the error; any HTTP status is a
/// value. `body` null sends no body.
Result<ClientResponse> call_admin(const Endpoint& endpoint, std::string_view token,
                                  std::string_view method, std::string_view target,
                                  const boost::json::value& body = nullptr,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// The `tcctl ha status` table from a GET /api/v1/ha/status body (docs/admin-api.md).
/// Left-aligned columns, two spaces apart, no trailing blanks (tcctl's tables).
void write_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

std::string render_status(const boost::json::value& status);
/// `tcctl cluster status`: one row per node of every group (GET /api/v1/cluster/status).
std::string render_cluster_status(const boost::json::value& status);

}  // namespace tc::broker::admin
