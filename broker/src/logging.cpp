// SPDX-License-Identifier: Apache-2.0
#include "logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tc::broker {

void setup_logging(const std::string& level, const std::string& format,
                   const std::string& node_name) {
  auto logger = spdlog::stderr_logger_mt(node_name.empty() ? "tc" : node_name);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  if (format == "json") {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","node":"%n","level":"%l","thread":%t,"msg":"%v"})");
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %n %^%-5l%$ %v");
  }
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace tc::broker
