// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <system_error>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace tc {

/// The one fallible-return type of the project (STYLE.md 3.5): a value or an error_code.
/// `Result<void>` is success-or-error.
template <class T>
using Result = boost::system::result<T>;

using ErrorCode = boost::system::error_code;

}  // namespace tc
