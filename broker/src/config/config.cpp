// SPDX-License-Identifier: Apache-2.0
#include "broker/config.h"

#include <cctype>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include <toml++/toml.h>

namespace tc::broker {
namespace {

using Setter = std::function<void(const toml::node&, const std::string& name, Config&)>;

template <class Int>
Setter integer(Int Config::*field, std::int64_t min, std::int64_t max) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    const auto v = n.value_exact<std::int64_t>();
    if (!v) {
      throw ConfigError(name, "expected an integer");
    }
    if (*v < min || *v > max) {
      throw ConfigError(name, "must be between " + std::to_string(min) + " and " +
                                  std::to_string(max) + ", got " + std::to_string(*v));
    }
    c.*field = static_cast<Int>(*v);
  };
}

Setter boolean(bool Config::*field) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    const auto v = n.value_exact<bool>();
    if (!v) {
      throw ConfigError(name, "expected true or false");
    }
    c.*field = *v;
  };
}

Setter string(std::string Config::*field, std::function<void(const std::string&)> check = {}) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    const auto v = n.value_exact<std::string>();
    if (!v) {
      throw ConfigError(name, "expected a string");
    }
    if (check) {
      try {
        check(*v);
      } catch (const std::invalid_argument& e) {
        throw ConfigError(name, e.what());
      }
    }
    c.*field = *v;
  };
}

Setter one_of(std::string Config::*field, std::vector<std::string> allowed) {
  return string(field, [allowed](const std::string& v) {
    for (const auto& a : allowed) {
      if (v == a) {
        return;
      }
    }
    std::string list;
    for (const auto& a : allowed) {
      list += (list.empty() ? "" : ", ") + a;
    }
    throw std::invalid_argument("must be one of " + list + ", got \"" + v + "\"");
  });
}

/// Seconds as an integer or a float (sub-second values allowed).
Setter duration(std::chrono::milliseconds Config::*field, double min_s, double max_s) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    std::optional<double> v;
    if (auto i = n.value_exact<std::int64_t>()) {
      v = static_cast<double>(*i);
    } else if (auto d = n.value_exact<double>()) {
      v = *d;
    }
    if (!v) {
      throw ConfigError(name, "expected a number of seconds");
    }
    if (*v < min_s || *v > max_s) {
      throw ConfigError(name, "must be between " + std::to_string(min_s) + " and " +
                                  std::to_string(max_s) + " seconds");
    }
    c.*field = std::chrono::milliseconds(static_cast<std::int64_t>(*v * 1000.0 + 0.5));
  };
}

Setter path(std::filesystem::path Config::*field, const std::filesystem::path& base) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    const auto v = n.value_exact<std::string>();
    if (!v) {
      throw ConfigError(name, "expected a path string");
    }
    std::filesystem::path p(*v);
    c.*field = (v->empty() || p.is_absolute()) ? p : base / p;
  };
}

Setter string_list(std::vector<std::string> Config::*field) {
  return [=](const toml::node& n, const std::string& name, Config& c) {
    const toml::array* array = n.as_array();
    if (array == nullptr) {
      throw ConfigError(name, "expected an array of strings");
    }
    std::vector<std::string> out;
    for (const auto& item : *array) {
      const auto v = item.value_exact<std::string>();
      if (!v || v->empty()) {
        throw ConfigError(name, "expected an array of non-empty strings");
      }
      out.push_back(*v);
    }
    c.*field = std::move(out);
  };
}

void check_not_empty(const std::string& v) {
  if (v.empty()) {
    throw std::invalid_argument("must not be empty");
  }
}

void check_hostname(const std::string& v) {
  check_not_empty(v);
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '.' || c == '-' || c >= 0x80)) {
      throw std::invalid_argument("\"" + v + "\" is not a valid domain name");
    }
  }
}

void check_node_name(const std::string& v) {
  if (v.empty() || v.size() > 128) {
    throw std::invalid_argument("must be 1 to 128 characters");
  }
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.')) {
      throw std::invalid_argument("may hold only letters, digits, '.', '_' and '-'");
    }
  }
}

void check_url_path(const std::string& v) {
  if (v.empty() || v.front() != '/') {
    throw std::invalid_argument("must start with '/', got \"" + v + "\"");
  }
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || ch == '?' || ch == '#') {
      throw std::invalid_argument("\"" + v + "\" is not a plain URL path");
    }
  }
}

void check_websocket_url(const std::string& v) {
  if (!v.empty() && v.rfind("ws://", 0) != 0 && v.rfind("wss://", 0) != 0) {
    throw std::invalid_argument("must start with ws:// or wss://, got \"" + v + "\"");
  }
}

std::map<std::string, std::map<std::string, Setter>> schema(const std::filesystem::path& base) {
  using C = Config;
  return {
      {"node",
       {{"name", string(&C::node_name, check_node_name)},
        {"domain", string(&C::domain, check_hostname)},
        {"shards", integer(&C::shards, 0, 256)}}},
      {"client",
       {{"address", string(&C::client_address, check_not_empty)},
        {"port", integer(&C::client_port, 0, 65535)},
        {"max_stanza_bytes", integer(&C::max_stanza_bytes, 1024, 64 * 1024 * 1024)},
        {"max_depth", integer(&C::max_depth, 4, 1024)},
        {"max_attributes", integer(&C::max_attributes, 4, 4096)},
        {"max_write_queue_bytes", integer(&C::max_write_queue_bytes, 64 * 1024, 1LL << 32)},
        {"auth_timeout", duration(&C::auth_timeout, 0.1, 3600)},
        {"max_connections", integer(&C::max_connections, 1, 10'000'000)},
        {"max_stanzas_per_second", integer(&C::max_stanzas_per_second, 0, 10'000'000)},
        {"max_bytes_per_second", integer(&C::max_bytes_per_second, 0, 1LL << 40)},
        {"max_connections_per_ip", integer(&C::max_connections_per_ip, 0, 10'000'000)},
        {"idle_timeout", duration(&C::idle_timeout, 0, 86'400)},
        {"resume_timeout", duration(&C::resume_timeout, 0, 86'400)}}},
      {"tls",
       {{"required", boolean(&C::tls_required)},
        {"certificate", path(&C::tls_certificate, base)},
        {"private_key", path(&C::tls_private_key, base)}}},
      {"auth",
       {{"scram_iterations", integer(&C::scram_iterations, 4096, 10'000'000)},
        {"allow_plain_without_tls", boolean(&C::allow_plain_without_tls)},
        {"registration", boolean(&C::registration)},
        {"max_failures", integer(&C::auth_max_failures, 0, 1'000'000)},
        {"failure_window", duration(&C::auth_failure_window, 0.1, 86'400)}}},
      {"muc",
       {{"domain", string(&C::muc_domain, check_hostname)},
        {"max_rooms", integer(&C::muc_max_rooms, 1, 100'000'000)},
        {"max_persistent_rooms", integer(&C::muc_max_persistent_rooms, 0, 100'000'000)},
        {"persistent_rooms_admin_only", boolean(&C::muc_persistent_admin_only)},
        {"admins", string_list(&C::muc_admins)},
        {"default_persistent", boolean(&C::muc_default_persistent)},
        {"default_history", integer(&C::muc_default_history, 0, 10'000)},
        {"max_history", integer(&C::muc_max_history, 0, 10'000)},
        {"mam_max_page", integer(&C::muc_mam_max_page, 1, 10'000)},
        {"default_max_users", integer(&C::muc_default_max_users, 1, 1'000'000)},
        {"max_rooms_per_user", integer(&C::muc_max_rooms_per_user, 0, 1'000'000)},
        {"archive_presence", boolean(&C::muc_archive_presence)},
        {"retention_days", integer(&C::muc_retention_days, 0, 36'500)},
        {"retention_min_days", integer(&C::muc_retention_min_days, 1, 36'500)},
        {"retention_max_days", integer(&C::muc_retention_max_days, 1, 36'500)},
        {"retention_interval", duration(&C::muc_retention_interval, 0.05, 86'400 * 7)},
        {"presence_broadcast_cap", integer(&C::muc_presence_broadcast_cap, 0, 10'000'000)},
        {"max_vcard_bytes", integer(&C::muc_max_vcard_bytes, 0, 64 * 1024 * 1024)}}},
      {"im",
       {{"max_roster_items", integer(&C::im_max_roster_items, 1, 1'000'000)},
        {"max_offline_messages", integer(&C::im_max_offline_messages, 0, 1'000'000)},
        {"max_vcard_bytes", integer(&C::im_max_vcard_bytes, 1024, 64 * 1024 * 1024)},
        {"max_pep_item_bytes", integer(&C::im_max_pep_item_bytes, 1024, 64 * 1024 * 1024)},
        {"max_pep_items", integer(&C::im_max_pep_items, 1, 1'000'000)},
        {"max_pep_nodes", integer(&C::im_max_pep_nodes, 1, 1'000'000)},
        {"mam_max_page", integer(&C::im_mam_max_page, 1, 10'000)}}},
      {"websocket",
       {{"enabled", boolean(&C::websocket_enabled)},
        {"address", string(&C::websocket_address, check_not_empty)},
        {"port", integer(&C::websocket_port, 0, 65535)},
        {"path", string(&C::websocket_path, check_url_path)},
        {"tls", boolean(&C::websocket_tls)},
        {"consider_secure", boolean(&C::websocket_consider_secure)},
        {"allowed_origins", string_list(&C::websocket_allowed_origins)},
        {"public_url", string(&C::websocket_public_url, check_websocket_url)},
        {"max_message_bytes", integer(&C::websocket_max_message_bytes, 1024, 64 * 1024 * 1024)},
        {"idle_timeout", duration(&C::websocket_idle_timeout, 1, 86'400)},
        {"handshake_timeout", duration(&C::websocket_handshake_timeout, 0.1, 600)},
        {"max_connections_per_ip", integer(&C::websocket_max_connections_per_ip, 1, 10'000'000)}}},
      {"component",
       {{"enabled", boolean(&C::component_enabled)},
        {"server", string(&C::component_server, check_not_empty)},
        {"port", integer(&C::component_port, 1, 65535)},
        {"secret", string(&C::component_secret, nullptr)},
        {"secret_file", path(&C::component_secret_file, base)},
        {"reconnect_interval", duration(&C::component_reconnect, 0.05, 3600)}}},
      {"storage", {{"url", string(&C::storage_url, check_not_empty)}}},
      {"cluster", {{"url", string(&C::cluster_url, nullptr)}}},
      {"admin",
       {{"address", string(&C::admin_address, check_not_empty)},
        {"port", integer(&C::admin_port, 0, 65535)},
        {"token", string(&C::admin_token, nullptr)},
        {"token_file", path(&C::admin_token_file, base)}}},
      {"ha",
       {{"address", string(&C::srm_address, check_not_empty)},
        {"port", integer(&C::srm_port, 0, 65535)},
        {"advertised_host", string(&C::advertised_host, nullptr)},
        {"relogin_min", duration(&C::relogin_min, 0, 86'400)},
        {"relogin_max", duration(&C::relogin_max, 0, 86'400)}}},
      {"log",
       {{"level", one_of(&C::log_level, {"trace", "debug", "info", "warn", "error", "off"})},
        {"format", one_of(&C::log_format, {"text", "json"})}}},
  };
}

/// Relative SQLite paths are relative to the config file, like every other path in it.
void resolve_sqlite_url(std::string& url, const std::filesystem::path& base) {
  constexpr std::string_view kSqlite = "sqlite://";
  if (std::string_view(url).substr(0, kSqlite.size()) != kSqlite) {
    return;
  }
  const std::string rest = url.substr(kSqlite.size());
  if (rest.empty() || rest.front() == '/' || rest.front() == ':') {
    return;
  }
  url = std::string(kSqlite) + (base / rest).string();
}

}  // namespace

Config parse_config(std::string_view toml_text, const std::filesystem::path& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "line " << e.source().begin.line << ", column " << e.source().begin.column << ": "
        << e.description();
    throw ConfigError("", "not valid TOML: " + msg.str());
  }
  Config config;
  const auto sections = schema(base_dir);
  for (const auto& [section_name, section_node] : root) {
    const std::string section(section_name.str());
    const auto known = sections.find(section);
    if (known == sections.end()) {
      throw ConfigError(section, "unknown section");
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      throw ConfigError(section, "expected a table ([" + section + "])");
    }
    for (const auto& [key_name, value] : *table) {
      const std::string key(key_name.str());
      const std::string name = section + "." + key;
      const auto setter = known->second.find(key);
      if (setter == known->second.end()) {
        throw ConfigError(name, "unknown setting");
      }
      setter->second(value, name, config);
    }
  }
  if (config.tls_certificate.empty() != config.tls_private_key.empty()) {
    throw ConfigError("tls.private_key", "tls.certificate and tls.private_key go together");
  }
  if (config.tls_required && config.tls_certificate.empty()) {
    throw ConfigError("tls.certificate",
                      "TLS is required (tls.required = true) but no certificate is configured");
  }
  if (config.websocket_tls && config.tls_certificate.empty()) {
    throw ConfigError("websocket.tls", "wss needs tls.certificate and tls.private_key");
  }
  if (config.component_enabled && config.component_secret.empty() &&
      config.component_secret_file.empty()) {
    throw ConfigError("component.secret",
                      "component mode needs the secret shared with the front server "
                      "(component.secret or component.secret_file)");
  }
  if (config.muc_retention_min_days > config.muc_retention_max_days) {
    throw ConfigError("muc.retention_min_days", "must not exceed muc.retention_max_days");
  }
  if (config.muc_default_history > config.muc_max_history) {
    throw ConfigError("muc.default_history", "must not exceed muc.max_history");
  }
  if (config.conference_domain() == config.domain) {
    throw ConfigError("muc.domain", "must differ from node.domain");
  }
  if (config.relogin_min > config.relogin_max) {
    throw ConfigError("ha.relogin_min", "must not exceed ha.relogin_max");
  }
  resolve_sqlite_url(config.storage_url, base_dir);
  resolve_sqlite_url(config.cluster_url, base_dir);
  return config;
}

Config load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ConfigError("", "cannot read configuration file " + file.string());
  }
  std::ostringstream text;
  text << in.rdbuf();
  const auto base = std::filesystem::absolute(file).parent_path();
  Config config = parse_config(text.str(), base);
  config.file = std::filesystem::absolute(file);
  return config;
}

}  // namespace tc::broker
