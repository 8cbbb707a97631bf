// SPDX-License-Identifier: Apache-2.0
#include "user_data_sql.h"

#include <algorithm>

namespace tc::storage::sql {
namespace {

/// The three key columns' placeholders: "$1, $2, $3" or ":owner, :kind, :item_key".
struct Keys {
  std::string owner, kind, key;
};

Keys keys(Placeholders style) {
  if (style == Placeholders::Numbered) {
    return {"$1", "$2", "$3"};
  }
  return {":owner", ":kind", ":item_key"};
}

std::string key_condition(Placeholders style, bool with_key) {
  const Keys k = keys(style);
  std::string out = "owner = " + k.owner + " AND kind = " + k.kind;
  if (with_key) {
    out += " AND item_key = " + k.key;
  }
  return out;
}

}  // namespace

std::string user_datum_upsert(schema::Dialect dialect, Placeholders style) {
  const Keys k = keys(style);
  const std::string value = style == Placeholders::Numbered ? "$4" : ":value";
  return "INSERT INTO " + std::string(columns::kUserData.name) + " (" +
         columns::list(columns::kUserDataColumns) + ") VALUES (" + k.owner + ", " + k.kind + ", " +
         k.key + ", " + value + ", " + std::string(schema::now_millis_expression(dialect)) +
         ") ON CONFLICT (" + std::string(columns::kUserData.key) +
         ") DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
}

std::string user_datum_delete(Placeholders style) {
  return "DELETE FROM tc_user_data WHERE " + key_condition(style, true);
}

std::string user_datum_select(Placeholders style) {
  return "SELECT value FROM tc_user_data WHERE " + key_condition(style, true);
}

std::string user_data_list(schema::Dialect dialect, Placeholders style, std::size_t prefix_chars,
                           std::size_t limit) {
  std::string out =
      "SELECT item_key, value, updated_at FROM tc_user_data WHERE " + key_condition(style, false);
  if (prefix_chars > 0) {
    const std::string prefix = style == Placeholders::Numbered ? "$3" : ":prefix";
    out += " AND substr(item_key, 1, " + std::to_string(prefix_chars) + ") = " + prefix;
  }
  // Byte order whatever the database's collation: SQLite's default (BINARY) is bytes already.
  out += dialect == schema::Dialect::Postgresql ? " ORDER BY item_key COLLATE \"C\""
                                                : " ORDER BY item_key";
  if (limit > 0) {
    out += " LIMIT " + std::to_string(limit);
  }
  return out;
}

std::string user_data_count(Placeholders style) {
  return "SELECT COUNT(*) FROM tc_user_data WHERE " + key_condition(style, false);
}

std::size_t utf8_length(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace tc::storage::sql
