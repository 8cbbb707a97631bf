// SPDX-License-Identifier: Apache-2.0
#include "storage/columns.h"

namespace tc::storage::columns {

std::string list(std::span<const Column> columns) {
  std::string out;
  for (const Column& c : columns) {
    if (!out.empty()) {
      out += ", ";
    }
    out += c.name;
  }
  return out;
}

}  // namespace tc::storage::columns
