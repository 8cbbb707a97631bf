// SPDX-License-Identifier: Apache-2.0
// Backend factories behind open_store(); each is defined only when its driver is built in.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "storage/store.h"

namespace tc::storage {

/// How a SQLite database is opened (native SOCI sqlite3 backend).
struct SqliteOptions {
  std::string path;  ///< file path, or ":memory:"
  /// PRAGMA synchronous: FULL (default) syncs the WAL on every commit, so an archived message
  /// survives power loss before it is broadcast. NORMAL syncs only at checkpoints: still safe
  /// against a process crash, but the last commits may vanish on power loss or an OS crash.
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;  ///< two broker processes share the file; writers wait this long
};

/// libpq URI ("postgresql://..." or "postgres://..."). Connects before returning.
Result<std::unique_ptr<Store>> open_postgresql_store(std::string uri);

/// Native SQLite through SOCI. Opens the file (creating it) and sets the pragmas.
Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

/// An ODBC connection string through SOCI; see soci_store.cpp for the TcDialect key.
Result<std::unique_ptr<Store>> open_odbc_store(std::string_view connection_string);

}  // namespace tc::storage
