// SPDX-License-Identifier: Apache-2.0
// tcbroker: one node of the persistent-chat broker.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "broker/config.h"
#include "broker/server.h"

#include "logging.h"

int main(int argc, char** argv) {
  CLI::App app{"tcbroker: persistent-chat high-availability XMPP broker node"};
  std::string config_path;
  std::string ready_file;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "node configuration (TOML)")->required();
  app.add_option("--ready-file", ready_file,
                 "write {\"client_port\":N,\"pid\":P} here once listening");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);

  tc::broker::Config config;
  try {
    config = tc::broker::load_config(config_path);
  } catch (const tc::broker::ConfigError& e) {
    std::cerr << "tcbroker: configuration error in " << config_path << ": " << e.what() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "configuration OK\n";
    return 0;
  }
  tc::broker::setup_logging(config.log_level, config.log_format, config.node_name);
  try {
    tc::broker::Server server(config);
    server.start();
    if (!ready_file.empty()) {
      server.write_ready_file(ready_file);
    }
    server.run();
  } catch (const tc::broker::ConfigError& e) {
    spdlog::critical("configuration error: {}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
  return 0;
}
