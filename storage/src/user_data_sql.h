// SPDX-License-Identifier: Apache-2.0
// SQL text for tc_user_data (users' own data, schema v5), shared by the PostgreSQL and SOCI
// backends.
#pragma once

#include <string>
#include <string_view>

#include "schema/migrations.h"
#include "sql_text.h"

namespace tc::storage::sql {

/// Sets one datum, stamped with the database clock: "... ON CONFLICT DO UPDATE".
std::string user_datum_upsert(schema::Dialect dialect, Placeholders style);
/// Deletes one datum.
std::string user_datum_delete(Placeholders style);
/// The value of one datum.
std::string user_datum_select(Placeholders style);
/// key, value, updated_at of one owner's kind, keys starting with a prefix of `prefix_chars`
/// characters (0: any), ordered by key bytes, at most `limit` rows (0: all).
std::string user_data_list(schema::Dialect dialect, Placeholders style, std::size_t prefix_chars,
                           std::size_t limit);
/// COUNT(*) of one owner's kind.
std::string user_data_count(Placeholders style);

/// How many characters a UTF-8 string has (what SQL's substr counts).
std::size_t utf8_length(std::string_view text);

}  // namespace tc::storage::sql
