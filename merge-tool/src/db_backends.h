// SPDX-License-Identifier: Apache-2.0
// The driver-specific halves of open_db(); each lives in its own file.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "db.h"

namespace tc::merge {

std::unique_ptr<Db> open_pg(const std::string& url, bool read_only);
std::unique_ptr<Db> open_sqlite(const std::string& path, const std::string& url, bool read_only);
std::unique_ptr<Db> open_odbc(const std::string& connection_string, const std::string& url,
                              bool read_only);
std::unique_ptr<Db> open_oracle(const std::string& connect_string, const std::string& url,
                                bool read_only);

enum class PlaceholderStyle { Dollar, Colon };
/// Rewrites each `?` outside string literals as `$1, $2 ...` or `:p1, :p2 ...`.
std::string translate_placeholders(std::string_view sql, PlaceholderStyle style);

/// The password in a URL replaced by "***" (storage::redact_url).
std::string redact(const std::string& url);

}  // namespace tc::merge
