// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tc::xmpp {

/// Milliseconds since the Unix epoch, UTC (the same count as storage::UnixMillis).
using UnixMillis = std::int64_t;

/// XEP-0082 DateTime in UTC with milliseconds: "2024-05-01T12:34:56.789Z" (delay stamps,
/// archive results).
std::string xep82_timestamp(UnixMillis at);

/// Parses a XEP-0082 DateTime, CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm), into UTC. Digits
/// of the fraction past the third are ignored. nullopt when malformed.
std::optional<UnixMillis> parse_xep82(std::string_view text);

}  // namespace tc::xmpp
