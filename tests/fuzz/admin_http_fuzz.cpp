// SPDX-License-Identifier: Apache-2.0
// The admin API's HTTP (broker/src/admin/http_codec): bytes on one admin connection, read as
// the server reads them (Beast's request parser with the server's limits, keep-alive requests
// one after another), each admitted (page, token, throttle, JSON body), decoded into a call and
// answered. The first byte picks how the bytes arrive: all at once, or in pieces of 1..255.
//  - Reading in pieces gives the same answers as reading at once (but for a malformed last
//    header that never ends, see below).
//  - A request that cannot be read is answered 400, 413 or 431, or not at all (the client left).
//  - Only the configured token gets past admission, and only to a call of the API or a 404/405.
//  - Every answer, written and read back by an HTTP client, has its status, a Content-Length
//    equal to its body, WWW-Authenticate on 401, Retry-After on 429, and for JSON errors an
//    object naming the error.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <spdlog/spdlog.h>

#include "admin/http_codec.h"

namespace {

namespace http = boost::beast::http;
using namespace tc::broker::admin;
using tc::FailureThrottle;
using tc::LimitClock;

constexpr std::string_view kToken = "fuzz-token";

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

/// Writes `res` as the server does and reads it back as a client would.
void check_written(const HttpResponse& res, bool head) {
  std::ostringstream out;
  out << res;
  const std::string wire = out.str();
  http::response_parser<http::string_body> reader;
  reader.eager(true);
  reader.skip(head);
  reader.body_limit(16 * 1024 * 1024);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (used < wire.size() && !reader.is_done()) {
    const auto n = reader.put(boost::asio::buffer(wire.data() + used, wire.size() - used), ec);
    used += n;
    if (ec == http::error::need_more && n == 0) {
      break;
    }
    check(!ec || ec == http::error::need_more);
  }
  check(reader.is_done());
  const auto& back = reader.get();
  check(back.result_int() == res.result_int());
  check(back.body() == res.body());
  if (!head) {
    check(back[http::field::content_length] == std::to_string(res.body().size()));
  }
  if (res.result_int() == 401) {
    check(!back[http::field::www_authenticate].empty());
  }
  if (res.result_int() == 429) {
    check(!back[http::field::retry_after].empty());
  }
  if (!head && back[http::field::content_type] == "application/json") {
    boost::system::error_code jec;
    const auto json = boost::json::parse(back.body(), jec);
    check(!jec && json.is_object());
    if (res.result_int() >= 400) {
      const auto* error = json.as_object().if_contains("error");
      check(error != nullptr && error->is_string());
    }
  }
}

/// What came of one connection's bytes: a status per answer, and whether the token was right
/// for each request that reached the API.
std::vector<unsigned> serve(std::string_view bytes, std::size_t piece) {
  FailureThrottle failures(kMaxTokenFailures, std::chrono::minutes(1));
  const Credentials credentials{std::string(kToken), ""};
  const auto now = LimitClock::time_point{} + std::chrono::hours(1);
  std::vector<unsigned> statuses;
  std::string buffer;  // read but not yet parsed, as the server's flat_buffer
  std::size_t offered = 0;
  for (;;) {
    RequestParser parser;
    limit(parser);
    boost::system::error_code ec;
    for (;;) {
      if (!buffer.empty()) {
        const auto used = parser.put(boost::asio::buffer(buffer), ec);
        buffer.erase(0, used);
        if (ec == http::error::need_more) {
          ec = {};
        } else if (ec || parser.is_done()) {
          break;
        } else if (used > 0) {
          continue;  // the header was complete; the body follows in the buffer
        }
      }
      if (offered == bytes.size()) {
        // As http::read at the end of the stream.
        if (!parser.got_some()) {
          ec = http::error::end_of_stream;
        } else {
          parser.put_eof(ec);
        }
        break;
      }
      const auto take =
          piece == 0 ? bytes.size() - offered : std::min(piece, bytes.size() - offered);
      buffer.append(bytes.substr(offered, take));
      offered += take;
    }
    if (!ec && !parser.is_done()) {
      ec = http::error::partial_message;
    }
    if (ec) {
      if (auto refusal = refusal_for(ec)) {
        check(refusal->status == 400 || refusal->status == 413 || refusal->status == 431);
        statuses.push_back(refusal->status);
        check_written(to_http(std::move(*refusal), 11, false, false), false);
      } else {
        check(ec == http::error::end_of_stream || ec == http::error::partial_message);
      }
      return statuses;
    }
    HttpRequest req = parser.release();
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    Response answer;
    auto admitted = admit(req, "192.0.2.1", credentials, failures, now);
    if (auto* refused = std::get_if<Response>(&admitted)) {
      answer = std::move(*refused);
      const auto s = answer.status;
      check(s == 200 || s == 400 || s == 401 || s == 405 || s == 429);
    } else {
      // Past admission only with the token.
      const auto auth = req[http::field::authorization];
      check(trim_space(std::string_view(auth.data(), auth.size())) ==
            "Bearer " + std::string(kToken));
      auto decoded = decode_call(std::get<Request>(admitted));
      if (auto* call = std::get_if<ApiCall>(&decoded)) {
        answer = ok_response("call " + std::to_string(static_cast<int>(call->op)));
        check(req.method() == http::verb::get || req.method() == http::verb::post);
      } else {
        answer = std::move(std::get<Response>(decoded));
        check(answer.status == 404 || answer.status == 405);
      }
    }
    statuses.push_back(answer.status);
    check_written(to_http(std::move(answer), req.version(), keep_alive, head), head);
    if (!keep_alive) {
      return statuses;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // wrong tokens are logged
    return true;
  }();
  (void)quiet;
  if (size < 1) {
    return 0;
  }
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t piece = data[0];
  const auto whole = serve(bytes, 0);
  if (piece != 0) {
    auto pieces = serve(bytes, piece);
    // Beast, once it has asked for more, parses a header again only when its end (or the
    // header limit) has arrived: a malformed last header that never ends is refused 400 when
    // it came at once, and gets no answer (the client left) or 431 when it came in pieces.
    if (pieces.size() + 1 == whole.size() && whole.back() == 400) {
      pieces.push_back(400);
    } else if (!pieces.empty() && pieces.size() == whole.size() && pieces.back() == 431 &&
               whole.back() == 400) {
      pieces.back() = 400;
    }
    check(pieces == whole);
  }
  return 0;
}
