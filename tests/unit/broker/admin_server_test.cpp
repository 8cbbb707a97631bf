// SPDX-License-Identifier: Apache-2.0
#include "admin/admin_server.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "admin/admin_client.h"
#include "admin/http_codec.h"

namespace tc::broker::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

/// Echoes the request; "/api/v1/late" answers from a timer, "/metrics" answers text, unknown
/// targets 404 as the SRM backend does.
class FakeBackend : public Backend {
 public:
  explicit FakeBackend(asio::any_io_executor ex) : executor_(ex) {}

  void handle(const Request& request, Respond respond) override {
    ++calls;
    if (request.target == "/metrics") {
      Response r;
      r.text = "tc_up 1\n";
      r.content_type = "text/plain; version=0.0.4";
      respond(std::move(r));
      return;
    }
    if (request.target == "/api/v1/ha/status") {
      Response r;
      r.body = json::parse(kStatus);
      respond(std::move(r));
      return;
    }
    Response r;
    r.body = json::object{{"method", request.method},
                          {"target", request.target},
                          {"query", request.query},
                          {"body", request.body}};
    if (request.target == "/api/v1/late") {
      auto timer = std::make_shared<asio::steady_timer>(executor_, std::chrono::milliseconds(20));
      timer->async_wait([timer, respond, r](boost::system::error_code) { respond(r); });
      return;
    }
    if (request.target == "/api/v1/conflict") {
      respond(
          Response{409, json::object{{"error", "node1 is not in a state that allows it"}}, {}, {}});
      return;
    }
    if (!request.target.starts_with("/api/v1/echo")) {
      respond(Response{404, json::object{{"error", "no such endpoint"}}, {}, {}});
      return;
    }
    respond(std::move(r));
  }

  static constexpr const char* kStatus = R"({
    "group": {"name": "g1", "description": "pair one", "ha_enabled": true,
              "assignment_mode": "balanced"},
    "nodes": [
      {"name": "node1", "self": true, "state": "Idle", "reason": "On Admin Request",
       "reachable": true, "lease_epoch": 3, "partitions": [], "rooms_hosted": 0,
       "users_connected": 0,
       "services": {"router": "stopped", "text-conference": "stopped",
                    "database": "running", "authentication": "running"}},
      {"name": "node2", "self": false, "state": "Running in Backup Mode",
       "reason": "On Admin Request", "reachable": true, "lease_epoch": 4,
       "partitions": ["node1", "node2"], "rooms_hosted": 12, "users_connected": 40,
       "services": {"router": "running", "text-conference": "running",
                    "database": "running", "authentication": "running"}}],
    "cause": "manual failover done",
    "recommended_action": "fall back node1 when ready",
    "allowed": {"failover": [], "fallback": ["node1"], "recover": false},
    "warnings": ["node1 has critical services stopped"],
    "settings": {"heartbeat_interval": "15"}})";

  std::atomic<int> calls{0};

 private:
  asio::any_io_executor executor_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  void start(Config config) {
    config.admin_address = "127.0.0.1";
    config.admin_port = 0;
    server_ = std::make_unique<AdminServer>(ioc_.get_executor(), config, backend_);
    server_->start();
    endpoint_.port = std::to_string(server_->port());
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void start_with_token() {
    Config c;
    c.admin_token = "s3cret";
    start(c);
  }
  void TearDown() override {
    if (server_) {
      asio::post(ioc_, [this] { server_->stop(); });
    }
    work_.reset();
    if (thread_.joinable()) {
      thread_.join();
    }
    server_.reset();
  }
  ClientResponse call(std::string_view token, std::string_view method, std::string_view target,
                      const json::value& body = nullptr) {
    auto r = call_admin(endpoint_, token, method, target, body);
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : ClientResponse{};
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ioc_);
  FakeBackend backend_{ioc_.get_executor()};
  std::unique_ptr<AdminServer> server_;
  std::thread thread_;
  Endpoint endpoint_;
};

TEST_F(AdminServerTest, RefusesWithoutTokenOrWithAWrongOne) {
  start_with_token();
  auto none = call("", "GET", "/api/v1/echo");
  EXPECT_EQ(none.status, 401u);
  EXPECT_NE(none.error_message().find("bearer"), std::string::npos) << none.body;
  auto wrong = call("s3cres", "GET", "/api/v1/echo");
  EXPECT_EQ(wrong.status, 401u);
  EXPECT_EQ(wrong.error_message(), "wrong admin token");
  auto longer = call("s3cret-and-more", "GET", "/metrics");
  EXPECT_EQ(longer.status, 401u);
  EXPECT_EQ(backend_.calls, 0);
}

TEST_F(AdminServerTest, TenWrongTokensAMinuteLockTheAddressOut) {
  start_with_token();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(call("guess" + std::to_string(i), "GET", "/api/v1/echo").status, 401u) << i;
  }
  // The eleventh attempt is refused without a comparison, even with the right token.
  auto locked = call("s3cret", "GET", "/api/v1/echo");
  EXPECT_EQ(locked.status, 429u) << locked.body;
  EXPECT_NE(locked.error_message().find("too many wrong admin tokens"), std::string::npos)
      << locked.body;
  EXPECT_NE(locked.error_message().find("try again in"), std::string::npos) << locked.body;
  EXPECT_EQ(backend_.calls, 0);
  // The web page needs no token and stays reachable.
  EXPECT_EQ(call("", "GET", "/").status, 200u);
}

TEST_F(AdminServerTest, NoTokenConfiguredSaysHowToSetOne) {
  start(Config{});
  auto r = call("anything", "GET", "/api/v1/ha/status");
  EXPECT_EQ(r.status, 401u);
  EXPECT_NE(r.error_message().find("token_file"), std::string::npos) << r.body;
  EXPECT_EQ(backend_.calls, 0);
}

TEST_F(AdminServerTest, ReadsTheFirstLineOfTheTokenFile) {
  const auto file =
      std::filesystem::temp_directory_path() / ("tc-admin-token-" + std::to_string(::getpid()));
  std::ofstream(file) << "from-file\r\nsecond line\n";
  Config c;
  c.admin_token_file = file;
  start(c);
  EXPECT_EQ(call("from-file", "GET", "/api/v1/echo").status, 200u);
  EXPECT_EQ(call("second line", "GET", "/api/v1/echo").status, 401u);
  std::filesystem::remove(file);
  EXPECT_EQ(call("from-file", "GET", "/api/v1/echo").status, 401u);
}

TEST_F(AdminServerTest, JsonRoundTrip) {
  start_with_token();
  const json::value body = json::object{{"node", "node1"}, {"n", 3}, {"list", json::array{1, 2}}};
  auto r = call("s3cret", "POST", "/api/v1/echo/x?verbose=1", body);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json.at("method"), "POST");
  EXPECT_EQ(r.json.at("target"), "/api/v1/echo/x");
  EXPECT_EQ(r.json.at("query"), "verbose=1");
  EXPECT_EQ(r.json.at("body"), body);
  auto empty = call("s3cret", "GET", "/api/v1/echo");
  EXPECT_TRUE(empty.json.at("body").is_null());
}

TEST_F(AdminServerTest, BackendDecidesStatusAndMayAnswerLater) {
  start_with_token();
  EXPECT_EQ(call("s3cret", "GET", "/api/v1/late").status, 200u);
  auto c = call("s3cret", "POST", "/api/v1/conflict", json::object{});
  EXPECT_EQ(c.status, 409u);
  EXPECT_EQ(c.error_message(), "node1 is not in a state that allows it");
  EXPECT_EQ(call("s3cret", "GET", "/api/v1/nothing").status, 404u);
}

TEST_F(AdminServerTest, MetricsAreText) {
  start_with_token();
  auto r = call("s3cret", "GET", "/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "tc_up 1\n");
}

TEST_F(AdminServerTest, BadJsonIs400) {
  start_with_token();
  // call_admin always sends valid JSON, so write the request by hand.
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  http::request<http::string_body> req{http::verb::post, "/api/v1/echo", 11};
  req.set(http::field::authorization, "Bearer s3cret");
  req.set(http::field::host, "localhost");
  req.body() = "{\"node\": ";
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(s, buffer, res);
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_NE(res.body().find("not valid JSON"), std::string::npos) << res.body();
  EXPECT_EQ(backend_.calls, 0);
}

TEST_F(AdminServerTest, OversizeBodyIs413) {
  start_with_token();
  json::object big;
  big["blob"] = std::string(70 * 1024, 'x');
  auto r = call("s3cret", "POST", "/api/v1/echo", big);
  EXPECT_EQ(r.status, 413u) << r.body;
  EXPECT_EQ(backend_.calls, 0);
  big["blob"] = std::string(60 * 1024, 'x');  // under the limit
  EXPECT_EQ(call("s3cret", "POST", "/api/v1/echo", big).status, 200u);
}

TEST_F(AdminServerTest, WebPageNeedsNoToken) {
  start_with_token();
  for (const char* path : {"/", "/index.html"}) {
    auto r = call("", "GET", path);
    EXPECT_EQ(r.status, 200u);
    EXPECT_NE(r.body.find("<!DOCTYPE html>"), std::string::npos);
    EXPECT_NE(r.body.find("/api/v1/ha/status"), std::string::npos);
    EXPECT_NE(r.body.find("sessionStorage"), std::string::npos);
  }
  EXPECT_EQ(backend_.calls, 0);
}

TEST_F(AdminServerTest, ConcurrentKeepAliveClients) {
  start_with_token();
  constexpr int kClients = 8;
  constexpr int kRequests = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      asio::io_context ioc;
      beast::tcp_stream stream(ioc);
      stream.connect(asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"), server_->port()});
      beast::flat_buffer buffer;
      for (int i = 0; i < kRequests; ++i) {
        http::request<http::string_body> req{http::verb::post, "/api/v1/echo", 11};
        req.set(http::field::authorization, "Bearer s3cret");
        req.set(http::field::host, "localhost");
        req.keep_alive(true);
        req.body() = json::serialize(json::object{{"client", c}, {"i", i}});
        req.prepare_payload();
        http::write(stream, req);
        http::response<http::string_body> res;
        http::read(stream, buffer, res);
        const auto v = json::parse(res.body());
        if (res.result_int() == 200 && res.keep_alive() && v.at("body").at("client") == c &&
            v.at("body").at("i") == i) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_EQ(ok, kClients * kRequests);
}

TEST_F(AdminServerTest, StatusTableRendersEveryNode) {
  start_with_token();
  auto r = call("s3cret", "GET", "/api/v1/ha/status");
  ASSERT_EQ(r.status, 200u);
  const auto table = render_status(r.json);
  EXPECT_NE(table.find("group g1  HA on  assignment balanced"), std::string::npos) << table;
  EXPECT_NE(table.find("NAME"), std::string::npos);
  EXPECT_NE(table.find("REACHABLE"), std::string::npos);
  EXPECT_NE(table.find("node1*"), std::string::npos) << table;
  EXPECT_NE(table.find("Running in Backup Mode"), std::string::npos);
  EXPECT_NE(table.find("router=running text-conference=running"), std::string::npos) << table;
  EXPECT_NE(table.find("cause: manual failover done"), std::string::npos);
  EXPECT_NE(table.find("recommended action: fall back node1 when ready"), std::string::npos);
  EXPECT_NE(table.find("warning: node1 has critical services stopped"), std::string::npos);
}

TEST_F(AdminServerTest, ConnectionRefusedIsATransportError) {
  start_with_token();
  Endpoint nowhere;
  nowhere.port = "1";
  EXPECT_FALSE(call_admin(nowhere, "x", "GET", "/api/v1/ha/status"));
}

#ifdef TC_TCCTL_PATH
/// Runs tcctl with `args` in /tmp (so no tcbroker.toml is picked up); stdout+stderr and the
/// exit code.
std::pair<std::string, int> tcctl(const std::string& args) {
  const std::string cmd =
      std::string("cd /tmp && env -u TCCTL_TOKEN ") + TC_TCCTL_PATH + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) {
    out += buf;
  }
  const int status = p != nullptr ? ::pclose(p) : -1;
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST_F(AdminServerTest, TcctlHaStatusAgainstAFakeNode) {
  start_with_token();
  const std::string admin = "--admin http://127.0.0.1:" + std::to_string(server_->port());
  auto [table, rc] = tcctl("ha status " + admin + " --token s3cret");
  EXPECT_EQ(rc, 0) << table;
  EXPECT_NE(table.find("group g1  HA on"), std::string::npos) << table;
  EXPECT_NE(table.find("node2"), std::string::npos) << table;
  EXPECT_NE(table.find("recommended action: fall back node1 when ready"), std::string::npos);

  auto [raw, jrc] = tcctl("ha status --json " + admin + " --token s3cret");
  EXPECT_EQ(jrc, 0);
  EXPECT_EQ(json::parse(raw), json::parse(FakeBackend::kStatus));

  auto [denied, drc] = tcctl("ha status " + admin + " --token nope");
  EXPECT_EQ(drc, 1);
  EXPECT_NE(denied.find("wrong admin token"), std::string::npos) << denied;

  auto [refused, frc] = tcctl("ha failover node1 " + admin + " --token s3cret");
  EXPECT_EQ(frc, 1);  // the fake backend has no such route: its 404 message is shown
  EXPECT_NE(refused.find("no such endpoint"), std::string::npos) << refused;

  auto [down, nrc] = tcctl("ha status --admin http://127.0.0.1:1 --token s3cret");
  EXPECT_EQ(nrc, 2);
  EXPECT_NE(down.find("http://127.0.0.1:1"), std::string::npos) << down;
}
#endif

TEST(AdminEndpoint, Parses) {
  auto a = parse_endpoint("http://10.0.0.5:20075");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, "20075");
  auto b = parse_endpoint("http://[::1]:9000/");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->url(), "http://[::1]:9000");
  auto c = parse_endpoint("node2");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, "20075");
  EXPECT_FALSE(parse_endpoint("https://node2:1"));
  EXPECT_FALSE(parse_endpoint("node2:99999"));
  EXPECT_FALSE(parse_endpoint("node2:http"));
}

// Found by the admin_http fuzzer: a 404 quoting a path in Latin-1 was not JSON (not UTF-8).
TEST(AdminHttp, ErrorsQuotingBytesThatAreNotUtf8AreStillJson) {
  EXPECT_EQ(valid_utf8("a\xE9z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(valid_utf8("\xC3\xA9 \xF0\x9F\x98\x80"), "\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"),                           // a surrogate
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80").substr(0, 3), "\xEF\xBF\xBD");  // past U+10FFFF
  const auto res =
      to_http(error_response(404, "no such endpoint: /api/v1/\xE9t\xE9"), 11, true, false);
  boost::system::error_code ec;
  const auto body = json::parse(res.body(), ec);
  ASSERT_FALSE(ec) << res.body();
  EXPECT_EQ(body.at("error").as_string(), "no such endpoint: /api/v1/\xEF\xBF\xBDt\xEF\xBF\xBD");
}

TEST(AdminHttp, DecodesEachCallOfTheApi) {
  const auto decode = [](std::string method, std::string target, json::value body = nullptr) {
    return decode_call(Request{std::move(method), std::move(target), "", std::move(body)});
  };
  using Op = ApiCall::Op;
  EXPECT_EQ(std::get<ApiCall>(decode("GET", "/api/v1/ha/status")).op, Op::HaStatus);
  EXPECT_EQ(std::get<ApiCall>(decode("GET", "/api/v1/rooms")).op, Op::Rooms);
  EXPECT_EQ(std::get<ApiCall>(decode("GET", "/api/v1/cluster/status")).op, Op::ClusterStatus);
  EXPECT_EQ(std::get<ApiCall>(decode("GET", "/metrics")).op, Op::Metrics);
  const auto failover = std::get<ApiCall>(decode("POST", "/api/v1/ha/failover", {{"node", "n1"}}));
  EXPECT_EQ(failover.op, Op::Failover);
  EXPECT_EQ(failover.node, "n1");
  const auto stop = std::get<ApiCall>(
      decode("POST", "/api/v1/services/stop", {{"node", "n2"}, {"service", "router"}}));
  EXPECT_EQ(stop.op, Op::ServiceStop);
  EXPECT_EQ(stop.service, "router");
  EXPECT_EQ(std::get<ApiCall>(decode("POST", "/api/v1/ha/recover", {{"group", "g"}})).group, "g");
  EXPECT_TRUE(std::get<ApiCall>(decode("POST", "/api/v1/ha/link", {{"cut", true}})).cut);
  EXPECT_FALSE(std::get<ApiCall>(decode("POST", "/api/v1/ha/link", {{"cut", "yes"}})).cut);
  EXPECT_EQ(std::get<Response>(decode("GET", "/api/v1/ha/failover")).status, 404u);
  EXPECT_EQ(std::get<Response>(decode("DELETE", "/api/v1/ha/status")).status, 405u);
  EXPECT_EQ(std::get<Response>(decode("GET", "/etc/passwd")).status, 404u);
}

}  // namespace
}  // namespace tc::broker::admin
