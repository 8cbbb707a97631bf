// SPDX-License-Identifier: Apache-2.0
// The node's configuration file (broker/src/config): any bytes either load or are refused with
// a ConfigError that says what is wrong. Any other exception, a crash or a hang is a bug: an
// operator with a typo must get a sentence, not a stack trace.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "broker/config.h"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    const tc::broker::Config config = tc::broker::parse_config(input, "/nonexistent/tc-fuzz");
    if (config.domain.empty()) {
      __builtin_trap();  // a loaded configuration always names its domain
    }
  } catch (const tc::broker::ConfigError& e) {
    if (std::string_view(e.what()).empty()) {
      __builtin_trap();
    }
  }
  return 0;
}
