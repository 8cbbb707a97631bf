// SPDX-License-Identifier: Apache-2.0
#include "soci_sessions.h"

#include <soci/odbc/soci-odbc.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace tc::merge {

std::unique_ptr<soci::session> open_soci_sqlite(const std::string& path, bool read_only) {
  // SOCI's connect-string parser takes quoted values, with \" for a quote inside.
  std::string quoted;
  for (const char c : path) {
    if (c == '"' || c == '\\') {
      quoted.push_back('\\');
    }
    quoted.push_back(c);
  }
  std::string params = "db=\"" + quoted + "\" timeout=30";
  if (read_only) {
    params += " readonly=1";
  }
  return std::make_unique<soci::session>(soci::sqlite3, params);
}

void* native_sqlite_handle(soci::session& session) {
  return static_cast<soci::sqlite3_session_backend*>(session.get_backend())->conn_;
}

std::unique_ptr<soci::session> open_soci_odbc(const std::string& connection_string) {
  return std::make_unique<soci::session>(soci::odbc, connection_string);
}

void* native_odbc_handle(soci::session& session) {
  return static_cast<soci::odbc_session_backend*>(session.get_backend())->hdbc_;
}

}  // namespace tc::merge
