// SPDX-License-Identifier: Apache-2.0
// tcctl: administration of a tcbroker node and its database.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <unistd.h>

#include "broker/config.h"
#include "storage/errc.h"
#include "storage/store.h"

#include "accounts.h"
#include "admin/admin_client.h"
#include "ha/cluster_settings.h"

namespace {

using tc::broker::Config;

/// Thrown for refusals that end tcctl with a message and a non-zero exit.
struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The cluster database (cluster.url, else storage.url): accounts, groups, nodes and settings
/// are cluster-wide state.
std::unique_ptr<tc::storage::Store> open_store(const Config& config) {
  const std::string& url = config.cluster_store_url();
  auto store = tc::storage::open_store(url);
  if (!store) {
    throw Refused("cannot open the database " + tc::storage::redact_url(url) + ": " +
                  store.error().message());
  }
  if (auto migrated = (*store)->migrate(); !migrated) {
    throw Refused("cannot prepare the database " + tc::storage::redact_url(url) + ": " +
                  migrated.error().message());
  }
  return std::move(*store);
}

std::string read_password(const std::string& given, const std::string& username) {
  if (!given.empty()) {
    return given;
  }
  if (::isatty(STDIN_FILENO)) {
    std::cerr << "password for " << username << ": " << std::flush;
  }
  std::string line;
  std::getline(std::cin, line);
  if (line.empty()) {
    throw Refused("a password is required (--password or one line on standard input)");
  }
  return line;
}

std::string username_of(const std::string& given) {
  auto name = tc::broker::normalize_username(given);
  if (!name) {
    throw Refused("\"" + given + "\" is not a valid username (it must be a valid JID localpart)");
  }
  return *name;
}

/// SPEC.md section 1: states in which a node counts as failed over (no new users then).
bool failed_over_state(std::string_view state) {
  static const std::set<std::string_view> kStates = {
      "Failed Over", "Failed Over with Critical Services not Running",
      "Idle",        "Running in Backup Mode",
      "Taking Over", "Failing Over",
      "Taking Back", "Falling Back"};
  return kStates.contains(state);
}

void refuse_if_failed_over(tc::storage::Store& store) {
  auto nodes = store.list_nodes();
  if (!nodes) {
    throw Refused("cannot check the nodes' states before adding a user: " +
                  nodes.error().message());
  }
  for (const auto& n : *nodes) {
    if (failed_over_state(n.state)) {
      throw Refused("new users cannot be added while a node is failed over: " + n.node + " is \"" +
                    n.state + "\" (fall back first; see tcctl ha status)");
    }
  }
}

std::string storage_message(const boost::system::error_code& ec) {
  if (ec == tc::storage::Errc::Unsupported) {
    return "this database backend does not support it yet (needs schema version 3)";
  }
  return ec.message();
}

/// Prints rows as left-aligned columns with two spaces between them.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  tc::broker::admin::write_table(std::cout, rows);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) {
    out += out.empty() ? "" : std::string(sep);
    out += i;
  }
  return out;
}

std::vector<tc::storage::GroupRecord> load_groups(tc::storage::Store& store) {
  auto groups = store.list_groups();
  if (!groups) {
    throw Refused("cannot read the redundancy groups: " + storage_message(groups.error()));
  }
  return std::move(*groups);
}

std::vector<std::pair<std::string, std::string>> load_settings(tc::storage::Store& store) {
  auto rows = store.list_settings();
  if (!rows) {
    throw Refused("cannot read the cluster settings: " + storage_message(rows.error()));
  }
  return std::move(*rows);
}

/// Checks the settings as they would be after a change (e.g. heartbeat_interval must stay
/// below heartbeat_timeout) before anything is written.
void check_settings(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string bad_key;
  std::string message;
  if (!tc::broker::ha::ClusterSettings::from_pairs(rows, &bad_key, &message)) {
    throw Refused("refused: " + message);
  }
}

void validate_group(const tc::storage::GroupRecord& g) {
  if (!tc::broker::ha::valid_group_name(g.name)) {
    throw Refused("\"" + g.name +
                  "\" is not a valid group name (1-128 characters of A-Z a-z 0-9 _ -)");
  }
  if (!tc::broker::ha::valid_group_description(g.description)) {
    throw Refused(
        "the description is not valid (up to 128 printable characters, none of \" % & / < >)");
  }
  if (g.nodes.empty() || g.nodes.size() > 2) {
    throw Refused("a redundancy group has one or two nodes (--nodes A[,B])");
  }
  for (const auto& n : g.nodes) {
    if (n.empty() || n.find_first_of(" \t,") != std::string::npos) {
      throw Refused("\"" + n + "\" is not a node name");
    }
  }
  if (g.nodes.size() == 2 && g.nodes[0] == g.nodes[1]) {
    throw Refused("the two nodes of a group must differ (" + g.nodes[0] + " twice)");
  }
}

/// What `tcctl ha` and `tcctl service` talk to, and with which token.
struct AdminTarget {
  tc::broker::admin::Endpoint endpoint;
  std::string token;
};

std::string first_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.pop_back();
  }
  return line;
}

AdminTarget admin_target(const Config& config, const std::string& admin_url,
                         const std::string& token) {
  AdminTarget t;
  if (!admin_url.empty()) {
    auto ep = tc::broker::admin::parse_endpoint(admin_url);
    if (!ep) {
      throw Refused("--admin \"" + admin_url + "\" is not http://host:port");
    }
    t.endpoint = *ep;
  } else {
    // A wildcard listen address is reached on loopback.
    t.endpoint.host = config.admin_address == "0.0.0.0" ? "127.0.0.1"
                      : config.admin_address == "::"    ? "::1"
                                                        : config.admin_address;
    t.endpoint.port = std::to_string(config.admin_port);
  }
  if (!token.empty()) {
    t.token = token;
  } else if (const char* env = std::getenv("TCCTL_TOKEN"); env != nullptr && *env != '\0') {
    t.token = env;
  } else if (!config.admin_token.empty()) {
    t.token = config.admin_token;
  } else if (!config.admin_token_file.empty()) {
    t.token = first_line(config.admin_token_file);
  }
  return t;
}

/// One admin API call: prints the server's JSON (--json) or `render(body)`; returns the exit
/// code (0; 1 for a non-2xx answer; 2 when the node cannot be reached).
int call_api(const AdminTarget& target, std::string_view method, std::string_view path,
             const boost::json::value& body, bool json,
             const std::function<std::string(const boost::json::value&)>& render) {
  auto res = tc::broker::admin::call_admin(target.endpoint, target.token, method, path, body);
  if (!res) {
    std::cerr << "tcctl: cannot reach the admin API at " << target.endpoint.url() << ": "
              << res.error().message()
              << " (is the node running? set [admin] address/port, or use --admin)\n";
    return 2;
  }
  if (res->status < 200 || res->status >= 300) {
    std::cerr << "tcctl: " << res->error_message();
    if (res->status == 401) {
      std::cerr << " (give the token with --token, TCCTL_TOKEN, or [admin] token/token_file)";
    }
    std::cerr << "\n";
    return 1;
  }
  if (json) {
    std::cout << res->body << (res->body.ends_with("\n") ? "" : "\n");
  } else {
    std::cout << render(res->json);
  }
  return 0;
}

/// `tcctl rooms`: the node's live rooms with their partition, lease epoch and occupants.
std::string render_rooms(const boost::json::value& v) {
  std::vector<std::vector<std::string>> rows{{"ROOM", "NODE", "PARTITION", "EPOCH", "OCCUPANTS"}};
  std::string node;
  std::size_t occupants = 0;
  const auto* o = v.if_object();
  if (o != nullptr) {
    if (const auto* n = o->if_contains("node"); n != nullptr && n->is_string()) {
      node = std::string(n->as_string());
    }
    if (const auto* d = o->if_contains("details"); d != nullptr && d->is_array()) {
      for (const auto& room : d->as_array()) {
        const auto* r = room.if_object();
        if (r == nullptr) {
          continue;
        }
        auto text = [r](const char* key) -> std::string {
          const auto* f = r->if_contains(key);
          if (f == nullptr) {
            return "";
          }
          return f->is_string() ? std::string(f->as_string()) : boost::json::serialize(*f);
        };
        if (const auto* c = r->if_contains("occupants"); c != nullptr && c->is_number()) {
          occupants += c->to_number<std::size_t>();
        }
        rows.push_back({text("jid"), node, text("partition"), text("epoch"), text("occupants")});
      }
    }
  }
  std::ostringstream out;
  tc::broker::admin::write_table(out, rows);
  out << rows.size() - 1 << " room(s) live on " << (node.empty() ? "the node" : node) << ", "
      << occupants << " occupant(s)\n";
  return out.str();
}

std::string render_ok(const boost::json::value& v) {
  if (const auto* o = v.if_object()) {
    if (const auto* m = o->if_contains("message"); m != nullptr && m->is_string()) {
      return std::string(m->as_string()) + "\n";
    }
  }
  return "ok\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcctl: administer a tcbroker node and its database"};
  app.require_subcommand(1);
  // Global options may come anywhere, also after the subcommand ("users list --json").
  app.fallthrough();
  std::string config_path = "tcbroker.toml";
  bool json = false;
  std::string admin_url;
  std::string token;
  auto* config_opt = app.add_option("-c,--config", config_path, "node configuration (TOML)");
  app.add_flag("--json", json, "machine-readable output");
  app.add_option("--admin", admin_url,
                 "admin API of a running node, http://host:port (default: from the config)");
  app.add_option("--token", token, "admin API token (default: TCCTL_TOKEN, then the config)");

  // ---- users: direct to the database ----
  auto* users = app.add_subcommand("users", "manage accounts in the node's database");
  users->require_subcommand(1);
  std::string name;
  std::string password;
  bool if_missing = false;
  auto* add = users->add_subcommand("add", "create an account");
  add->add_option("name", name, "username (JID localpart)")->required();
  add->add_option("-p,--password", password, "password (else one line read from stdin)");
  add->add_flag("--if-missing", if_missing, "succeed quietly when the account exists");
  auto* del = users->add_subcommand("del", "delete an account");
  del->add_option("name", name, "username")->required();
  auto* passwd = users->add_subcommand("passwd", "set a new password");
  passwd->add_option("name", name, "username")->required();
  passwd->add_option("-p,--password", password, "password (else one line read from stdin)");
  auto* list = users->add_subcommand("list", "list accounts");

  // ---- group: redundancy groups, direct to the database ----
  auto* group = app.add_subcommand("group", "manage redundancy groups in the shared database");
  group->require_subcommand(1);
  std::vector<std::string> nodes;
  std::string description;
  std::string ha_switch;
  const auto add_group_options = [&](CLI::App* cmd, bool creating) {
    cmd->add_option("name", name, "group name (1-128 of A-Z a-z 0-9 _ -)")->required();
    auto* n = cmd->add_option("--nodes", nodes, "one or two node names, primary first: A[,B]")
                  ->delimiter(',');
    if (creating) {
      n->required();
    }
    cmd->add_option("--description", description,
                    "up to 128 printable characters, none of \" % & / < >");
    cmd->add_option("--ha", ha_switch, "high availability on or off (default off)")
        ->check(CLI::IsMember({"on", "off"}));
  };
  auto* group_add = group->add_subcommand("add", "create a redundancy group");
  add_group_options(group_add, true);
  auto* group_set = group->add_subcommand("set", "change a redundancy group");
  add_group_options(group_set, false);
  auto* group_del = group->add_subcommand("del", "delete a redundancy group");
  group_del->add_option("name", name, "group name")->required();
  auto* group_list = group->add_subcommand("list", "list redundancy groups");

  // ---- settings: cluster-wide SRM parameters, direct to the database ----
  auto* settings = app.add_subcommand("settings", "cluster-wide SRM settings (tc_settings)");
  settings->require_subcommand(1);
  std::string key;
  std::string value;
  auto* settings_list = settings->add_subcommand("list", "show every setting and its value");
  auto* settings_set = settings->add_subcommand("set", "set a setting (validated)");
  settings_set->add_option("key", key, "setting name")->required();
  settings_set->add_option("value", value, "new value")->required();
  auto* settings_unset = settings->add_subcommand("unset", "return a setting to its default");
  settings_unset->add_option("key", key, "setting name")->required();
  std::string keys_help = "keys:\n";
  for (const auto& [k, help] : tc::broker::ha::setting_keys()) {
    keys_help += "  " + k + ": " + help + "\n";
  }
  settings->footer(keys_help);

  // ---- ha and service: through the admin API of a running node ----
  auto* ha = app.add_subcommand("ha", "redundancy group status and operations (admin API)");
  ha->require_subcommand(1);
  std::string node;
  auto* ha_status = ha->add_subcommand("status", "nodes, states, reasons, recommended action");
  auto* ha_failover = ha->add_subcommand("failover", "fail NODE over to its peer");
  ha_failover->add_option("node", node, "node to fail over")->required();
  auto* ha_fallback = ha->add_subcommand("fallback", "move NODE's users and rooms back to it");
  ha_fallback->add_option("node", node, "node to fall back to")->required();
  auto* ha_recover = ha->add_subcommand("recover", "recover GROUP from Running in Failed Mode");
  ha_recover->add_option("group", name, "group name")->required();

  auto* service = app.add_subcommand("service", "stop or start a critical service (admin API)");
  service->require_subcommand(1);
  const auto service_names =
      CLI::IsMember({"router", "text-conference", "database", "authentication"});
  auto* service_stop = service->add_subcommand("stop", "stop a critical service on a node");
  service_stop->add_option("name", name, "router, text-conference, database or authentication")
      ->required()
      ->check(service_names);
  service_stop->add_option("--node", node, "node name")->required();
  auto* service_start = service->add_subcommand("start", "start a critical service on a node");
  service_start->add_option("name", name, "router, text-conference, database or authentication")
      ->required()
      ->check(service_names);
  service_start->add_option("--node", node, "node name")->required();

  auto* rooms = app.add_subcommand(
      "rooms", "the rooms live on a node: partition, lease epoch, occupants (admin API)");

  auto* cluster =
      app.add_subcommand("cluster", "the whole cluster: every group and node (admin API)");
  cluster->require_subcommand(1);
  auto* cluster_status =
      cluster->add_subcommand("status", "every group and node: state, reason, users, rooms");

  CLI11_PARSE(app, argc, argv);

  try {
    Config config;
    const bool api_command =
        ha->parsed() || service->parsed() || rooms->parsed() || cluster->parsed();
    // API commands need no config file when --admin is given (or the defaults fit).
    if (!api_command || config_opt->count() > 0 || std::filesystem::exists(config_path)) {
      try {
        config = tc::broker::load_config(config_path);
      } catch (const tc::broker::ConfigError& e) {
        throw Refused("configuration error in " + config_path + ": " + e.what());
      }
    }
    if (api_command) {
      const auto target = admin_target(config, admin_url, token);
      const boost::json::value none = nullptr;
      if (ha_status->parsed()) {
        return call_api(target, "GET", "/api/v1/ha/status", none, json,
                        tc::broker::admin::render_status);
      }
      if (rooms->parsed()) {
        return call_api(target, "GET", "/api/v1/rooms", none, json, render_rooms);
      }
      if (cluster_status->parsed()) {
        return call_api(target, "GET", "/api/v1/cluster/status", none, json,
                        tc::broker::admin::render_cluster_status);
      }
      if (ha_failover->parsed() || ha_fallback->parsed()) {
        const std::string path = ha_failover->parsed() ? "failover" : "fallback";
        return call_api(target, "POST", "/api/v1/ha/" + path, boost::json::object{{"node", node}},
                        json, render_ok);
      }
      if (ha_recover->parsed()) {
        return call_api(target, "POST", "/api/v1/ha/recover", boost::json::object{{"group", name}},
                        json, render_ok);
      }
      const std::string path = service_stop->parsed() ? "stop" : "start";
      return call_api(target, "POST", "/api/v1/services/" + path,
                      boost::json::object{{"node", node}, {"service", name}}, json, render_ok);
    }

    auto store = open_store(config);
    if (add->parsed()) {
      const auto user = username_of(name);
      if (if_missing && store->load_account(user)) {
        std::cout << "account " << user << "@" << config.domain << " exists\n";
        return 0;
      }
      refuse_if_failed_over(*store);
      auto account =
          tc::broker::make_account(user, read_password(password, user), config.scram_iterations);
      if (!account) {
        throw Refused("the password is not acceptable (empty or not valid under SASLprep)");
      }
      if (auto created = store->create_account(*account); !created) {
        if (created.error() == tc::storage::Errc::AlreadyExists) {
          throw Refused("account " + user + "@" + config.domain + " already exists");
        }
        throw Refused("cannot create " + user + ": " + created.error().message());
      }
      std::cout << "created " << user << "@" << config.domain << "\n";
    } else if (del->parsed()) {
      const auto user = username_of(name);
      if (auto deleted = store->delete_account(user); !deleted) {
        throw Refused(deleted.error() == tc::storage::Errc::NotFound
                          ? "no account " + user + "@" + config.domain
                          : "cannot delete " + user + ": " + deleted.error().message());
      }
      // Its roster, offline messages, PEP, vCard and archive go with it (a new account of the
      // same name starts empty).
      auto removed = store->delete_user_data_of(user + "@" + config.domain);
      if (!removed) {
        throw Refused("deleted " + user + "@" + config.domain +
                      ", but not its data (run again to retry): " + removed.error().message());
      }
      std::cout << "deleted " << user << "@" << config.domain << " (" << *removed
                << " stored items)\n";
    } else if (passwd->parsed()) {
      const auto user = username_of(name);
      if (!store->load_account(user)) {
        throw Refused("no account " + user + "@" + config.domain);
      }
      auto account =
          tc::broker::make_account(user, read_password(password, user), config.scram_iterations);
      if (!account) {
        throw Refused("the password is not acceptable (empty or not valid under SASLprep)");
      }
      if (auto updated = store->update_account(*account); !updated) {
        throw Refused("cannot update " + user + ": " + updated.error().message());
      }
      std::cout << "password changed for " << user << "@" << config.domain << "\n";
    } else if (list->parsed()) {
      auto names = store->list_accounts();
      if (!names) {
        throw Refused("cannot list accounts: " + names.error().message());
      }
      if (json) {
        boost::json::array out;
        for (const auto& n : *names) {
          out.emplace_back(boost::json::object{{"username", n}, {"jid", n + "@" + config.domain}});
        }
        std::cout << boost::json::serialize(out) << "\n";
      } else {
        std::cout << "JID\n";
        for (const auto& n : *names) {
          std::cout << n << "@" << config.domain << "\n";
        }
        std::cout << "(" << names->size() << " account" << (names->size() == 1 ? "" : "s") << ")\n";
      }
    } else if (group_add->parsed() || group_set->parsed()) {
      if (!tc::broker::ha::valid_group_name(name)) {
        throw Refused("\"" + name +
                      "\" is not a valid group name (1-128 characters of A-Z a-z 0-9 _ -)");
      }
      if (group_add->parsed()) {
        validate_group({.name = name, .description = description, .nodes = nodes});
      }
      const auto groups = load_groups(*store);
      const auto found =
          std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.name == name; });
      tc::storage::GroupRecord g;
      if (group_add->parsed()) {
        if (found != groups.end()) {
          throw Refused("group " + name + " already exists (change it with tcctl group set)");
        }
        g.name = name;
      } else {
        if (found == groups.end()) {
          throw Refused("no group " + name + " (create it with tcctl group add)");
        }
        g = *found;
      }
      if (group_add->parsed() || !nodes.empty()) {
        g.nodes = nodes;
      }
      if (group_add->parsed() || group_set->get_option("--description")->count() > 0) {
        g.description = description;
      }
      if (!ha_switch.empty()) {
        g.ha_enabled = ha_switch == "on";
      }
      validate_group(g);
      for (const auto& other : groups) {
        for (const auto& n : g.nodes) {
          if (other.name != g.name &&
              std::find(other.nodes.begin(), other.nodes.end(), n) != other.nodes.end()) {
            throw Refused("node " + n + " already belongs to group " + other.name +
                          " (a node belongs to at most one group)");
          }
        }
      }
      if (auto saved = store->save_group(g); !saved) {
        throw Refused(saved.error() == tc::storage::Errc::AlreadyExists
                          ? "a node of " + g.name + " already belongs to another group"
                          : "cannot save group " + g.name + ": " + storage_message(saved.error()));
      }
      std::cout << (group_add->parsed() ? "created" : "updated") << " group " << g.name
                << " (nodes " << join(g.nodes, ", ") << "; HA " << (g.ha_enabled ? "on" : "off")
                << ")\n";
      if (g.ha_enabled && g.nodes.size() == 1) {
        std::cout << "note: a group of one node has no peer to fail over to\n";
      }
      if (g.ha_enabled) {
        std::cout << "check tcctl ha status for warnings before relying on failover\n";
      }
    } else if (group_del->parsed()) {
      if (auto deleted = store->delete_group(name); !deleted) {
        throw Refused(deleted.error() == tc::storage::Errc::NotFound
                          ? "no group " + name
                          : "cannot delete group " + name + ": " +
                                storage_message(deleted.error()));
      }
      std::cout << "deleted group " << name << "\n";
    } else if (group_list->parsed()) {
      const auto groups = load_groups(*store);
      if (json) {
        boost::json::array out;
        for (const auto& g : groups) {
          boost::json::array ns;
          for (const auto& n : g.nodes) {
            ns.emplace_back(n);
          }
          out.emplace_back(boost::json::object{{"name", g.name},
                                               {"description", g.description},
                                               {"ha_enabled", g.ha_enabled},
                                               {"nodes", std::move(ns)}});
        }
        std::cout << boost::json::serialize(out) << "\n";
      } else {
        std::vector<std::vector<std::string>> rows{{"NAME", "HA", "NODES", "DESCRIPTION"}};
        for (const auto& g : groups) {
          rows.push_back({g.name, g.ha_enabled ? "on" : "off", join(g.nodes, ","), g.description});
        }
        print_table(rows);
        std::cout << "(" << groups.size() << " group" << (groups.size() == 1 ? "" : "s") << ")\n";
      }
    } else if (settings_list->parsed()) {
      const auto rows = load_settings(*store);
      std::string bad_key;
      std::string message;
      auto effective = tc::broker::ha::ClusterSettings::from_pairs(rows, &bad_key, &message);
      const auto values =
          effective ? effective->to_pairs() : tc::broker::ha::ClusterSettings{}.to_pairs();
      const auto stored = [&](const std::string& k) -> const std::string* {
        for (const auto& [rk, rv] : rows) {
          if (rk == k) {
            return &rv;
          }
        }
        return nullptr;
      };
      if (json) {
        boost::json::object out;
        for (const auto& [k, v] : values) {
          const auto* sv = stored(k);
          out[k] =
              boost::json::object{{"value", sv != nullptr ? *sv : v}, {"default", sv == nullptr}};
        }
        std::cout << boost::json::serialize(out) << "\n";
      } else {
        std::vector<std::vector<std::string>> table{{"KEY", "VALUE", "SOURCE"}};
        for (const auto& [k, v] : values) {
          const auto* sv = stored(k);
          table.push_back({k, sv != nullptr ? *sv : v, sv != nullptr ? "set" : "default"});
        }
        print_table(table);
      }
      if (!effective) {
        std::cerr << "tcctl: warning: stored setting " << bad_key << " is not valid: " << message
                  << " (fix it with tcctl settings set or unset)\n";
        return 1;
      }
    } else if (settings_set->parsed()) {
      std::string message;
      auto normal = tc::broker::ha::normalize_setting(key, value, &message);
      if (!normal) {
        throw Refused(message);
      }
      auto rows = load_settings(*store);
      std::erase_if(rows, [&](const auto& r) { return r.first == key; });
      rows.emplace_back(key, *normal);
      check_settings(rows);
      if (auto set = store->set_setting(key, *normal); !set) {
        throw Refused("cannot set " + key + ": " + storage_message(set.error()));
      }
      std::cout << key << " = " << *normal
                << " (SRM on each node reads it at its next start or reload)\n";
    } else if (settings_unset->parsed()) {
      const auto& keys = tc::broker::ha::setting_keys();
      if (std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return k.first == key; })) {
        std::string message;
        (void)tc::broker::ha::normalize_setting(key, "", &message);
        throw Refused(message);
      }
      auto rows = load_settings(*store);
      std::erase_if(rows, [&](const auto& r) { return r.first == key; });
      check_settings(rows);
      std::string fallback;
      for (const auto& [k, v] : tc::broker::ha::ClusterSettings{}.to_pairs()) {
        if (k == key) {
          fallback = v;
        }
      }
      if (auto deleted = store->delete_setting(key); !deleted) {
        if (deleted.error() != tc::storage::Errc::NotFound) {
          throw Refused("cannot unset " + key + ": " + storage_message(deleted.error()));
        }
        std::cout << key << " was not set; the default " << fallback << " applies\n";
      } else {
        std::cout << key << " unset; the default " << fallback << " applies\n";
      }
    }
  } catch (const Refused& e) {
    std::cerr << "tcctl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
