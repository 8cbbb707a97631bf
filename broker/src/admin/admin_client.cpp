// SPDX-License-Identifier: Apache-2.0
#include "admin/admin_client.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "net/tokens.h"

namespace tc::broker::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using Tcp = asio::ip::tcp;

std::string text_of(const json::value* v) {
  if (v == nullptr || v->is_null()) {
    return "";
  }
  if (const auto* s = v->if_string()) {
    return std::string(*s);
  }
  if (const auto* b = v->if_bool()) {
    return *b ? "yes" : "no";
  }
  return json::serialize(*v);
}

const json::value* field(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  return o == nullptr ? nullptr : o->if_contains(key);
}

std::string services_text(const json::value* services) {
  if (services == nullptr || !services->is_object()) {
    return "";
  }
  // Fixed order, then any others the server adds.
  static constexpr std::string_view kOrder[] = {"router", "text-conference", "database",
                                                "authentication"};
  std::string out;
  const auto& o = services->as_object();
  const auto add = [&](std::string_view name, const json::value& state) {
    out += out.empty() ? "" : " ";
    out += std::string(name) + "=" + text_of(&state);
  };
  for (const auto name : kOrder) {
    if (const auto* s = o.if_contains(name)) {
      add(name, *s);
    }
  }
  for (const auto& [name, state] : o) {
    if (std::find(std::begin(kOrder), std::end(kOrder), std::string_view(name)) ==
        std::end(kOrder)) {
      add(name, state);
    }
  }
  return out;
}

}  // namespace

std::string Endpoint::url() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + port;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  if (text.starts_with("http://")) {
    text.remove_prefix(7);
  } else if (text.find("://") != std::string_view::npos) {
    return std::nullopt;
  }
  while (text.ends_with("/")) {
    text.remove_suffix(1);
  }
  Endpoint ep;
  if (text.starts_with("[")) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    ep.host = std::string(text.substr(1, close - 1));
    text.remove_prefix(close + 1);
    if (text.starts_with(":")) {
      ep.port = std::string(text.substr(1));
    } else if (!text.empty()) {
      return std::nullopt;
    }
  } else {
    const auto colon = text.rfind(':');
    ep.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      ep.port = std::string(text.substr(colon + 1));
    }
  }
  if (ep.host.empty() || ep.port.empty() || ep.host.find('/') != std::string::npos ||
      !std::all_of(ep.port.begin(), ep.port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      ep.port.size() > 5 || std::stoul(ep.port) > 65535) {
    return std::nullopt;
  }
  return ep;
}

std::string ClientResponse::error_message() const {
  if (const auto* e = field(json, "error"); e != nullptr && e->is_string()) {
    return std::string(e->as_string());
  }
  return "HTTP " + std::to_string(status);
}

Result<ClientResponse> call_admin(const Endpoint& endpoint, std::string_view token,
                                  std::string_view method, std::string_view target,
                                  const json::value& body, std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  boost::system::error_code failure;
  ClientResponse out;

  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, endpoint.host + ":" + endpoint.port);
  req.set(http::field::user_agent, "tcctl");
  req.set(http::field::accept, "application/json");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + std::string(token));
  }
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(body);
  }
  req.keep_alive(false);
  req.prepare_payload();

  auto exchange = [&]() -> net::Awaitable<void> {
    Tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    auto [rec, results] =
        co_await resolver.async_resolve(endpoint.host, endpoint.port, net::kAsTuple);
    if (rec) {
      failure = rec;
      co_return;
    }
    auto [cec, connected] = co_await stream.async_connect(results, net::kAsTuple);
    if (cec) {
      failure = cec;
      co_return;
    }
    auto [wec, written] = co_await http::async_write(stream, req, net::kAsTuple);
    if (wec) {
      failure = wec;
      co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, net::kAsTuple);
    if (ec) {
      failure = ec;
      co_return;
    }
    const auto res = parser.release();
    out.status = res.result_int();
    out.body = res.body();
    boost::system::error_code jec;
    out.json = json::parse(out.body, jec);
    if (jec) {
      out.json = nullptr;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(Tcp::socket::shutdown_both, ignored);
  };
  asio::co_spawn(ioc, exchange(), asio::detached);
  ioc.run();
  if (failure) {
    return failure;
  }
  return out;
}

void write_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()), 0);
    for (std::size_t i = 0; i < r.size(); ++i) {
      widths[i] = std::max(widths[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) {
        line += std::string(widths[i] - r[i].size() + 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out << line << "\n";
  }
}

std::string render_cluster_status(const json::value& status) {
  std::ostringstream out;
  std::size_t groups = 0;
  if (const auto* g = field(status, "groups"); g != nullptr && g->is_array()) {
    groups = g->as_array().size();
  }
  out << "cluster of " << groups << " group(s), asked " << text_of(field(status, "self"))
      << " (group " << text_of(field(status, "group")) << ")\n\n";
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"GROUP", "NODE", "STATE", "REASON", "LINKED", "USERS", "ROOMS", "PARTITIONS", "CLIENTS"});
  std::uint64_t users = 0;
  std::uint64_t rooms = 0;
  if (const auto* nodes = field(status, "nodes"); nodes != nullptr && nodes->is_array()) {
    for (const auto& n : nodes->as_array()) {
      std::string name = text_of(field(n, "node"));
      if (const auto* self = field(n, "self");
          self != nullptr && self->is_bool() && self->as_bool()) {
        name += "*";
      }
      std::string partitions;
      if (const auto* p = field(n, "partitions"); p != nullptr && p->is_array()) {
        for (const auto& v : p->as_array()) {
          partitions += (partitions.empty() ? "" : ",") + text_of(&v);
        }
      }
      if (const auto* u = field(n, "users_connected"); u != nullptr && u->is_number()) {
        users += u->to_number<std::uint64_t>();
      }
      if (const auto* r = field(n, "rooms_hosted"); r != nullptr && r->is_number()) {
        rooms += r->to_number<std::uint64_t>();
      }
      rows.push_back({text_of(field(n, "group")), name, text_of(field(n, "state")),
                      text_of(field(n, "reason")), text_of(field(n, "linked")),
                      text_of(field(n, "users_connected")), text_of(field(n, "rooms_hosted")),
                      partitions.empty() ? "-" : partitions, text_of(field(n, "client_endpoint"))});
    }
  }
  write_table(out, rows);
  out << "(* = the node that answered; other groups' nodes as their last ping said, or the "
         "registry when not linked)\n"
      << users << " user session(s), " << rooms << " live room(s) in the cluster\n";
  return out.str();
}

std::string render_status(const json::value& status) {
  std::ostringstream out;
  const json::value empty;
  const auto* group = field(status, "group");
  const json::value& g = group != nullptr ? *group : empty;
  const auto* ha = field(g, "ha_enabled");
  out << "group " << text_of(field(g, "name")) << "  HA "
      << (ha != nullptr && ha->is_bool() && ha->as_bool() ? "on" : "off") << "  assignment "
      << text_of(field(g, "assignment_mode"));
  if (const auto d = text_of(field(g, "description")); !d.empty()) {
    out << "  (" << d << ")";
  }
  out << "\n\n";

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "STATE", "REASON", "REACHABLE", "EPOCH", "ROOMS", "USERS", "SERVICES"});
  if (const auto* nodes = field(status, "nodes"); nodes != nullptr && nodes->is_array()) {
    for (const auto& n : nodes->as_array()) {
      std::string name = text_of(field(n, "name"));
      if (const auto* self = field(n, "self");
          self != nullptr && self->is_bool() && self->as_bool()) {
        name += "*";
      }
      rows.push_back({name, text_of(field(n, "state")), text_of(field(n, "reason")),
                      text_of(field(n, "reachable")), text_of(field(n, "lease_epoch")),
                      text_of(field(n, "rooms_hosted")), text_of(field(n, "users_connected")),
                      services_text(field(n, "services"))});
    }
  }
  write_table(out, rows);
  out << "(* = the node that answered)\n\n";
  out << "cause: " << text_of(field(status, "cause")) << "\n";
  out << "recommended action: " << text_of(field(status, "recommended_action")) << "\n";
  if (const auto* w = field(status, "warnings"); w != nullptr && w->is_array()) {
    for (const auto& warning : w->as_array()) {
      out << "warning: " << text_of(&warning) << "\n";
    }
  }
  return out.str();
}

}  // namespace tc::broker::admin
