// SPDX-License-Identifier: Apache-2.0
// tcctl: administration of a tcbroker node and its database.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <unistd.h>

#include "broker/config.h"
#include "storage/errc.h"
#include "storage/store.h"

#include "accounts.h"

namespace {

using tc::broker::Config;

/// Thrown for refusals that end tcctl with a message and a non-zero exit.
struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::unique_ptr<tc::storage::Store> open_store(const Config& config) {
  auto store = tc::storage::open_store(config.storage_url);
  if (!store) {
    throw Refused("cannot open the database " + tc::storage::redact_url(config.storage_url) + ": " +
                  store.error().message());
  }
  if (auto migrated = (*store)->migrate(); !migrated) {
    throw Refused("cannot prepare the database " + tc::storage::redact_url(config.storage_url) +
                  ": " + migrated.error().message());
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcctl: administer a tcbroker node and its database"};
  app.require_subcommand(1);
  // --config and --json may come anywhere, also after the subcommand ("users list --json").
  app.fallthrough();
  std::string config_path = "tcbroker.toml";
  bool json = false;
  app.add_option("-c,--config", config_path, "node configuration (TOML)");
  app.add_flag("--json", json, "machine-readable output");

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

  CLI11_PARSE(app, argc, argv);

  try {
    Config config;
    try {
      config = tc::broker::load_config(config_path);
    } catch (const tc::broker::ConfigError& e) {
      throw Refused("configuration error in " + config_path + ": " + e.what());
    }
    auto store = open_store(config);
    if (add->parsed()) {
      const auto user = username_of(name);
      if (if_missing && store->load_account(user)) {
        std::cout << "account " << user << "@" << config.domain << " exists\n";
        return 0;
      }
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
      std::cout << "deleted " << user << "@" << config.domain << "\n";
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
    }
  } catch (const Refused& e) {
    std::cerr << "tcctl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
