// SPDX-License-Identifier: Apache-2.0
// The admin API's HTTP, without sockets: the request parser's limits, the answer to a request
// that cannot be read, authentication, the routes of the API and the response as written. The
// server (admin_server.cpp) runs these on its connections; the `admin_http` fuzz target runs
// them on arbitrary bytes. No coroutines here (clang's ASan cannot build those).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "base/limits.h"

#include "admin/admin_server.h"

namespace tc::broker::admin {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
inline constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
/// Wrong tokens a minute from one address before it is refused without a comparison.
inline constexpr std::size_t kMaxTokenFailures = 10;

/// `text` with each byte that starts no well-formed UTF-8 sequence replaced by U+FFFD (JSON
/// must be UTF-8; an error message may quote a path the client sent in another encoding).
std::string valid_utf8(std::string text);

/// `s` without leading blanks and trailing blanks and line ends.
std::string_view trim_space(std::string_view s);

/// Applies the limits every admin request is read with (64 KiB body, 16 KiB header).
void limit(RequestParser& parser);

/// The answer to a request that failed to read with `ec` (413, 431 or 400), after which the
/// connection is closed; nullopt when the client went away (nothing to answer).
std::optional<Response> refusal_for(const boost::system::error_code& ec);

/// The token requests must carry, or none with `why_none` saying how to configure one.
struct Credentials {
  std::string token;
  std::string why_none;
};

/// What a read request becomes before the backend sees it: the web page (a Response), a
/// refusal (401 no or wrong token, 429 an address throttled by `failures`, 400 a body that is
/// not JSON, 405 the page with another method), or the authenticated Request.
std::variant<Request, Response> admit(const HttpRequest& req, const std::string& client,
                                      const Credentials& credentials, FailureThrottle& failures,
                                      LimitClock::time_point now);

/// One call of the API (docs/admin-api.md), decoded from an authenticated Request.
struct ApiCall {
  enum class Op {
    HaStatus,
    Rooms,
    ClusterStatus,
    Metrics,
    Failover,
    Fallback,
    Recover,
    ServiceStop,
    ServiceStart,
    Link,
  };
  Op op = Op::HaStatus;
  std::string node;     ///< failover, fallback, services: the body's "node" ("" = any)
  std::string service;  ///< services: the body's "service"
  std::string group;    ///< recover: the body's "group"
  bool cut = false;     ///< link: the body's "cut"
};

/// The call `request` names, or 404/405 for a path or method the API does not have.
std::variant<ApiCall, Response> decode_call(const Request& request);

/// `r` as written on the connection: JSON (or its text), Content-Length, Cache-Control,
/// WWW-Authenticate on 401, Retry-After when set; no body for HEAD.
HttpResponse to_http(Response r, unsigned version, bool keep_alive, bool head);

}  // namespace tc::broker::admin
