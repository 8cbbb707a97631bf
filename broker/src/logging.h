// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

namespace tc::broker {

/// Configures spdlog for a process: stderr, the given level ("info", ...) and format
/// ("text" or "json", one JSON object per line).
void setup_logging(const std::string& level, const std::string& format,
                   const std::string& node_name);

}  // namespace tc::broker
