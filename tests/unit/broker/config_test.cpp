// SPDX-License-Identifier: Apache-2.0
#include "broker/config.h"

#include <gtest/gtest.h>

namespace tc::broker {
namespace {

Config parse(std::string_view text) {
  return parse_config(text, "/etc/tc");
}

std::string error_setting(std::string_view text) {
  try {
    parse(text);
  } catch (const ConfigError& e) {
    return e.setting();
  }
  return "<no error>";
}

TEST(Config, DefaultsNeedOnlyACertificate) {
  const auto c = parse("[tls]\ncertificate = 'c.pem'\nprivate_key = 'k.pem'\n");
  EXPECT_EQ(c.domain, "localhost");
  EXPECT_EQ(c.client_port, 5222);
  EXPECT_EQ(c.max_stanza_bytes, 256u * 1024u);
  EXPECT_TRUE(c.tls_required);
  EXPECT_FALSE(c.registration);
  EXPECT_EQ(c.tls_certificate, "/etc/tc/c.pem");  // relative to the file's directory
  EXPECT_EQ(c.storage_url, "sqlite:///etc/tc/tcbroker.db");
}

TEST(Config, ReadsEverySection) {
  const auto c = parse(R"(
[node]
name = "node-2"
domain = "chat.example.org"
shards = 3
[client]
address = "0.0.0.0"
port = 15222
max_stanza_bytes = 65536
auth_timeout = 2.5
[tls]
required = false
[auth]
scram_iterations = 10000
registration = true
[storage]
url = "postgresql://tc@localhost/tc"
[log]
level = "debug"
format = "json"
)");
  EXPECT_EQ(c.node_name, "node-2");
  EXPECT_EQ(c.domain, "chat.example.org");
  EXPECT_EQ(c.shards, 3);
  EXPECT_EQ(c.client_address, "0.0.0.0");
  EXPECT_EQ(c.client_port, 15222);
  EXPECT_EQ(c.max_stanza_bytes, 65536u);
  EXPECT_EQ(c.auth_timeout, std::chrono::milliseconds(2500));
  EXPECT_FALSE(c.tls_required);
  EXPECT_EQ(c.scram_iterations, 10000u);
  EXPECT_TRUE(c.registration);
  EXPECT_EQ(c.storage_url, "postgresql://tc@localhost/tc");
  EXPECT_EQ(c.log_format, "json");
}

TEST(Config, UnknownKeysAndSectionsAreNamed) {
  EXPECT_EQ(error_setting("[client]\nprot = 1\n"), "client.prot");
  EXPECT_EQ(error_setting("[clients]\nport = 1\n"), "clients");
  EXPECT_EQ(error_setting("port = 1\n"), "port");
}

TEST(Config, BadValuesAreNamed) {
  const std::string tls = "[tls]\nrequired = false\n";
  EXPECT_EQ(error_setting(tls + "[client]\nport = 70000\n"), "client.port");
  EXPECT_EQ(error_setting(tls + "[client]\nport = \"5222\"\n"), "client.port");
  EXPECT_EQ(error_setting(tls + "[client]\nmax_stanza_bytes = 10\n"), "client.max_stanza_bytes");
  EXPECT_EQ(error_setting(tls + "[log]\nlevel = \"loud\"\n"), "log.level");
  EXPECT_EQ(error_setting(tls + "[node]\ndomain = \"bad domain\"\n"), "node.domain");
  EXPECT_EQ(error_setting(tls + "[node]\nname = \"\"\n"), "node.name");
  EXPECT_EQ(error_setting(tls + "[auth]\nscram_iterations = 10\n"), "auth.scram_iterations");
  EXPECT_EQ(error_setting(tls + "[auth]\nregistration = \"yes\"\n"), "auth.registration");
  EXPECT_EQ(error_setting(tls + "[storage]\nurl = \"\"\n"), "storage.url");
}

TEST(Config, TlsRequiredNeedsACertificate) {
  EXPECT_EQ(error_setting(""), "tls.certificate");
  EXPECT_EQ(error_setting("[tls]\ncertificate = 'c.pem'\n"), "tls.private_key");
}

TEST(Config, SyntaxErrorsSayWhere) {
  try {
    parse("[client\nport = 1\n");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
  }
}

TEST(Config, MissingFileIsAClearError) {
  EXPECT_THROW(load_config("/nonexistent/tcbroker.toml"), ConfigError);
}

TEST(Config, WebSocketSection) {
  const auto c = parse(R"(
[tls]
required = false
[websocket]
enabled = true
address = "0.0.0.0"
port = 5443
path = "/ws"
consider_secure = true
allowed_origins = ["https://chat.example.org", "*"]
public_url = "wss://chat.example.org/ws"
max_message_bytes = 65536
idle_timeout = 30
handshake_timeout = 2.5
max_connections_per_ip = 7
)");
  EXPECT_TRUE(c.websocket_enabled);
  EXPECT_EQ(c.websocket_address, "0.0.0.0");
  EXPECT_EQ(c.websocket_port, 5443);
  EXPECT_EQ(c.websocket_path, "/ws");
  EXPECT_TRUE(c.websocket_consider_secure);
  EXPECT_EQ(c.websocket_allowed_origins.size(), 2u);
  EXPECT_EQ(c.websocket_public_url, "wss://chat.example.org/ws");
  EXPECT_EQ(c.websocket_max_message_bytes, 65536u);
  EXPECT_EQ(c.websocket_idle_timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.websocket_handshake_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c.websocket_max_connections_per_ip, 7u);
  const auto d = parse("[tls]\nrequired = false\n");
  EXPECT_FALSE(d.websocket_enabled);
  EXPECT_EQ(d.websocket_port, 5280);
  EXPECT_EQ(d.websocket_path, "/xmpp-websocket");
}

TEST(Config, WebSocketBadValuesAreNamed) {
  const std::string base = "[tls]\nrequired = false\n[websocket]\n";
  EXPECT_EQ(error_setting(base + "path = 'xmpp'\n"), "websocket.path");
  EXPECT_EQ(error_setting(base + "path = '/a b'\n"), "websocket.path");
  EXPECT_EQ(error_setting(base + "path = '/a?b'\n"), "websocket.path");
  EXPECT_EQ(error_setting(base + "public_url = 'https://x/ws'\n"), "websocket.public_url");
  EXPECT_EQ(error_setting(base + "allowed_origins = ['']\n"), "websocket.allowed_origins");
  EXPECT_EQ(error_setting(base + "max_message_bytes = 10\n"), "websocket.max_message_bytes");
  EXPECT_EQ(error_setting(base + "idle_timeout = 0\n"), "websocket.idle_timeout");
  EXPECT_EQ(error_setting(base + "port = 70000\n"), "websocket.port");
  // wss needs the certificate of [tls].
  EXPECT_EQ(error_setting(base + "tls = true\n"), "websocket.tls");
}

TEST(Config, ComponentSection) {
  const auto c = parse(R"(
[tls]
required = false
[muc]
domain = "conference.example.org"
[component]
enabled = true
server = "xmpp.example.org"
port = 5347
secret = "s3cret"
reconnect_interval = 0.5
)");
  EXPECT_TRUE(c.component_enabled);
  EXPECT_EQ(c.component_server, "xmpp.example.org");
  EXPECT_EQ(c.component_port, 5347);
  EXPECT_EQ(c.component_secret, "s3cret");
  EXPECT_EQ(c.component_reconnect, std::chrono::milliseconds(500));
  const std::string base = "[tls]\nrequired = false\n[component]\n";
  // The front server authenticates the component by its secret: one is required.
  EXPECT_EQ(error_setting(base + "enabled = true\n"), "component.secret");
  EXPECT_EQ(error_setting(base + "port = 0\n"), "component.port");
  EXPECT_EQ(error_setting(base + "reconnect_interval = 0\n"), "component.reconnect_interval");
  EXPECT_EQ(parse(base + "enabled = true\nsecret_file = 'secret'\n").component_secret_file,
            "/etc/tc/secret");
}

}  // namespace
}  // namespace tc::broker
