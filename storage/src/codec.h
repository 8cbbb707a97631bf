// SPDX-License-Identifier: Apache-2.0
// Value conversions shared by every backend, so each dialect stores the same text.
#pragma once

#include <cstdint>
#include <limits>
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

/// Archive query bounds with every optional filled in with a neutral value, so a backend can bind
/// one fixed statement: seq > after_seq AND seq < before_seq AND created_at BETWEEN start AND end.
struct ArchiveBounds {
  std::int64_t after_seq = 0;  // seqs start at 1
  std::int64_t before_seq = std::numeric_limits<std::int64_t>::max();
  UnixMillis start = std::numeric_limits<UnixMillis>::min();
  UnixMillis end = std::numeric_limits<UnixMillis>::max();
  bool backward = false;  // page from the newest end (RSM <before/>)
};

/// Bounds for `query` without the cursors (which a backend resolves to seqs itself).
ArchiveBounds archive_bounds(const ArchiveQuery& query);

/// query_archive() reports ArchivePage::count only up to this many matches: counting is a scan
/// of the whole window, and a client paging a million-message room must not pay for it on every
/// page. Beyond the cap the count is left empty (XEP-0059 makes it optional).
inline constexpr std::size_t kMaxCount = 10000;

/// Presence kinds that ArchiveQuery::include_presence and recent_messages() leave out.
inline constexpr std::string_view kPresenceKindsSql = "('join', 'leave')";

}  // namespace tc::storage::codec
