// SPDX-License-Identifier: Apache-2.0
// Value conversions shared by every backend, so each dialect stores the same text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "storage/records.h"

namespace tc::storage::codec {

/// RFC 4648 base64 with padding; SCRAM salts and keys are stored this way in every dialect.
std::string base64_encode(std::string_view bytes);
/// std::nullopt when `text` is not valid padded base64.
std::optional<std::string> base64_decode(std::string_view text);

/// "owner" / "admin" / "member" / "outcast"; "" for Affiliation::None (never stored).
std::string_view affiliation_text(Affiliation affiliation);
/// std::nullopt for any other text.
std::optional<Affiliation> parse_affiliation(std::string_view text);

/// Presence kinds that ArchiveQuery::include_presence and recent_messages() leave out.
inline constexpr std::string_view kPresenceKindsSql = "('join', 'leave')";

}  // namespace tc::storage::codec
