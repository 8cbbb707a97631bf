// SPDX-License-Identifier: Apache-2.0
#pragma once

// Completion tokens in one place (STYLE.md 3.6): Boost 1.81 already has asio::as_tuple.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tc::broker::net {

namespace asio = boost::asio;

/// `co_await op(..., kAsTuple)` yields (error_code, results...) as values instead of throwing.
inline constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

template <class T>
using Awaitable = asio::awaitable<T>;

}  // namespace tc::broker::net
