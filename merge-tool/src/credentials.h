// SPDX-License-Identifier: Apache-2.0
// Passwords are never stored: a job keeps its URLs redacted ("***"), and validate/merge put the
// password back from --source-a-password / $TC_MERGE_PASSWORD_A (and _B, _TARGET) or leave it
// to the driver (libpq's ~/.pgpass or $PGPASSFILE, an ODBC DSN's stored password).
#pragma once

#include <optional>
#include <string>

namespace tc::merge {

/// `url` with its password set to `password`:
///  - postgresql://user:***@host/db  -> the *** replaced (percent-encoded);
///  - ...?password=*** (query form)  -> likewise;
///  - odbc://...;PWD=***;...         -> the *** replaced ({braced} when needed);
///  - no *** in the URL              -> password added (postgresql: password= parameter,
///                                      odbc: ;PWD=...), unless `password` is nullopt.
/// With `password` nullopt, every *** placeholder is removed, so the driver's own sources apply.
std::string with_password(const std::string& url, const std::optional<std::string>& password);

/// The value of an environment variable, nullopt when unset.
std::optional<std::string> env(const char* name);

}  // namespace tc::merge
