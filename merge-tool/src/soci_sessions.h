// SPDX-License-Identifier: Apache-2.0
// SOCI session factories. SOCI's SQLite header wraps <sqlite3.h> in a namespace, so the code that
// needs both SOCI's backend class and the real SQLite API is split: soci_sessions.cpp sees SOCI's
// view and hands out the native handle as an opaque pointer.
#pragma once

#include <memory>
#include <string>

#include <soci/session.h>

namespace tc::merge {

/// Opens a SQLite database through SOCI's sqlite3 backend. `read_only` opens without
/// SQLITE_OPEN_CREATE, so a missing source file is an error rather than a new empty database.
std::unique_ptr<soci::session> open_soci_sqlite(const std::string& path, bool read_only);
/// The session's sqlite3* (as void*; cast it where <sqlite3.h> is included).
void* native_sqlite_handle(soci::session& session);

/// Opens an ODBC connection through SOCI's odbc backend (unixODBC driver manager).
std::unique_ptr<soci::session> open_soci_odbc(const std::string& connection_string);
/// The session's SQLHDBC (as void*).
void* native_odbc_handle(soci::session& session);

}  // namespace tc::merge
