// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <system_error>

#include <boost/system/error_code.hpp>

namespace tc::storage {

/// Errors every backend reports; no driver exception ever leaves storage/src.
enum class Errc {
  Ok = 0,
  NotFound = 1,    ///< no such account / room / message
  AlreadyExists,   ///< unique key taken (account name, room JID)
  Unavailable,     ///< connection lost or cannot connect; callers retry with backoff
  QueryFailed,     ///< the database refused a statement
  SchemaTooNew,    ///< the database's schema is newer than this build knows
  SchemaMismatch,  ///< the database holds something that is not our schema
  BadUrl,          ///< store URL not understood
  StaleEpoch,      ///< a fenced write from a writer that no longer holds the lease
  Unsupported,     ///< backend not built in
};

const boost::system::error_category& storage_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), storage_category()};
}

}  // namespace tc::storage

namespace boost::system {
template <>
struct is_error_code_enum<tc::storage::Errc> : std::true_type {};
}  // namespace boost::system
