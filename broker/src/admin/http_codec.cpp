// SPDX-License-Identifier: Apache-2.0
#include "admin/http_codec.h"

#include <boost/beast/http/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "admin/web_page.h"

namespace tc::broker::admin {
namespace {

namespace http = boost::beast::http;

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Compare digests so that neither the content nor the length leaks through timing.
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

std::string body_string(const boost::json::value& body, std::string_view key) {
  if (const auto* o = body.if_object()) {
    if (const auto* v = o->if_contains(key); v != nullptr && v->is_string()) {
      return std::string(v->as_string());
    }
  }
  return {};
}

/// The length of the well-formed UTF-8 sequence (RFC 3629) at the start of `s`, 0 if none.
std::size_t utf8_sequence(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i < s.size() && b(i) >= lo && b(i) <= hi;
  };
  const unsigned c = b(0);
  if (c < 0x80) {
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    return cont(1) ? 2 : 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    const unsigned hi = c == 0xED ? 0x9F : 0xBF;  // no surrogates
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;  // nothing past U+10FFFF
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string valid_utf8(std::string text) {
  const std::string_view in(text);
  std::size_t i = 0;
  for (std::size_t n; i < in.size() && (n = utf8_sequence(in.substr(i))) != 0;) {
    i += n;
  }
  if (i == in.size()) {
    return text;
  }
  std::string out(in.substr(0, i));
  while (i < in.size()) {
    if (const std::size_t n = utf8_sequence(in.substr(i)); n != 0) {
      out.append(in.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER for each stray byte
      ++i;
    }
  }
  return out;
}

Response error_response(unsigned status, std::string message) {
  Response r;
  r.status = status;
  // Messages quote what the client sent (a path, a token's address), which need not be UTF-8;
  // JSON must be.
  r.body = boost::json::object{{"error", valid_utf8(std::move(message))}};
  return r;
}

Response ok_response(std::string message) {
  Response r;
  r.body = boost::json::object{{"ok", true}, {"message", std::move(message)}};
  return r;
}

std::string_view trim_space(std::string_view s) {
  while (!s.empty() &&
         (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  return s;
}

void limit(RequestParser& parser) {
  parser.body_limit(kMaxBodyBytes);
  parser.header_limit(kMaxHeaderBytes);
}

std::optional<Response> refusal_for(const boost::system::error_code& ec) {
  if (ec == http::error::body_limit) {
    return error_response(413, "the body is larger than 64 KiB");
  }
  if (ec == http::error::header_limit) {
    return error_response(431, "the request header is too large");
  }
  if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return error_response(400, "malformed HTTP request: " + ec.message());
  }
  return std::nullopt;
}

std::variant<Request, Response> admit(const HttpRequest& req, const std::string& client,
                                      const Credentials& credentials, FailureThrottle& failures,
                                      LimitClock::time_point now) {
  const std::string_view full(req.target().data(), req.target().size());
  const auto qpos = full.find('?');
  const std::string_view path = full.substr(0, qpos);
  if (path == "/" || path == "/index.html") {
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return error_response(405, "the page only answers GET");
    }
    Response page;
    page.text = std::string(web_page());
    page.content_type = "text/html; charset=utf-8";
    return page;
  }
  if (credentials.token.empty()) {
    return error_response(401, credentials.why_none);
  }
  const auto auth = req[http::field::authorization];
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view given(auth.data(), auth.size());
  if (given.size() <= kBearer.size() || given.substr(0, kBearer.size()) != kBearer) {
    return error_response(401, "missing bearer token (send Authorization: Bearer TOKEN)");
  }
  // Brute force: an address that sent kMaxTokenFailures wrong tokens within a minute is
  // refused without a comparison until the oldest of them is a minute old.
  if (const auto wait = failures.blocked_for(client, now); wait.count() > 0) {
    const auto seconds = static_cast<unsigned>((wait.count() + 999) / 1000);
    Response r = error_response(429, "too many wrong admin tokens from " + client +
                                         "; try again in " + std::to_string(seconds) + " s");
    r.retry_after_seconds = seconds;
    return r;
  }
  if (!constant_time_equal(trim_space(given.substr(kBearer.size())), credentials.token)) {
    failures.failed(client, now);
    spdlog::warn("admin API: wrong token from {}", client);
    return error_response(401, "wrong admin token");
  }
  Request request;
  request.method = std::string(req.method_string());
  request.target = std::string(path);
  if (qpos != std::string_view::npos) {
    request.query = std::string(full.substr(qpos + 1));
  }
  if (!trim_space(req.body()).empty()) {
    boost::system::error_code ec;
    request.body = boost::json::parse(req.body(), ec);
    if (ec) {
      return error_response(400, "the body is not valid JSON: " + ec.message());
    }
  }
  return request;
}

std::variant<ApiCall, Response> decode_call(const Request& request) {
  const std::string& t = request.target;
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  using Op = ApiCall::Op;
  ApiCall call;
  if (get && t == "/api/v1/ha/status") {
    call.op = Op::HaStatus;
  } else if (get && t == "/api/v1/rooms") {
    call.op = Op::Rooms;
  } else if (get && t == "/api/v1/cluster/status") {
    call.op = Op::ClusterStatus;
  } else if (get && t == "/metrics") {
    call.op = Op::Metrics;
  } else if (post && (t == "/api/v1/ha/failover" || t == "/api/v1/ha/fallback")) {
    call.op = t == "/api/v1/ha/failover" ? Op::Failover : Op::Fallback;
    call.node = body_string(request.body, "node");
  } else if (post && t == "/api/v1/ha/recover") {
    call.op = Op::Recover;
    call.group = body_string(request.body, "group");
  } else if (post && (t == "/api/v1/services/stop" || t == "/api/v1/services/start")) {
    call.op = t == "/api/v1/services/stop" ? Op::ServiceStop : Op::ServiceStart;
    call.node = body_string(request.body, "node");
    call.service = body_string(request.body, "service");
  } else if (post && t == "/api/v1/ha/link") {
    call.op = Op::Link;
    if (const auto* o = request.body.if_object()) {
      if (const auto* v = o->if_contains("cut"); v != nullptr && v->is_bool()) {
        call.cut = v->as_bool();
      }
    }
  } else if (t.rfind("/api/v1/", 0) == 0 || t == "/metrics") {
    return error_response(get || post ? 404 : 405, "no such endpoint: " + request.method + " " + t);
  } else {
    return error_response(404, "no such endpoint: " + t);
  }
  return call;
}

HttpResponse to_http(Response r, unsigned version, bool keep_alive, bool head) {
  HttpResponse res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "tcbroker-admin");
  res.set(http::field::cache_control, "no-store");
  if (!r.text.empty() || !r.content_type.empty()) {
    res.set(http::field::content_type,
            r.content_type.empty() ? "text/plain; charset=utf-8" : r.content_type);
    res.body() = std::move(r.text);
  } else {
    res.set(http::field::content_type, "application/json");
    res.body() = boost::json::serialize(r.body.is_null() ? boost::json::value(boost::json::object{})
                                                         : r.body) +
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

}  // namespace tc::broker::admin
