// SPDX-License-Identifier: Apache-2.0
#include "sql_text.h"

#include <algorithm>

namespace tc::storage::sql {
namespace {

std::string placeholder(const columns::Column& column, Placeholders style, int number) {
  // Appended rather than `"$" + std::to_string(n)`: GCC 12 at -O3 reports a false
  // -Wrestrict overlap for that form (and warnings are errors).
  std::string out(1, style == Placeholders::Numbered ? '$' : ':');
  out += style == Placeholders::Numbered ? std::to_string(number) : std::string(column.name);
  return out;
}

/// Whether `name` is one of the comma-separated names of `key`.
bool in_key(std::string_view key, std::string_view name) {
  while (!key.empty()) {
    const auto comma = key.find(',');
    std::string_view part = key.substr(0, comma);
    key = comma == std::string_view::npos ? std::string_view{} : key.substr(comma + 1);
    while (!part.empty() && part.front() == ' ') {
      part.remove_prefix(1);
    }
    if (part == name) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string select_from(const columns::Table& table) {
  return "SELECT " + columns::list(table.columns) + " FROM " + std::string(table.name);
}

std::string insert(std::string_view table, std::span<const columns::Column> columns,
                   Placeholders style) {
  std::string values;
  int number = 1;
  for (const columns::Column& c : columns) {
    if (!values.empty()) {
      values += ", ";
    }
    values += placeholder(c, style, number++);
  }
  return "INSERT INTO " + std::string(table) + " (" + columns::list(columns) + ") VALUES (" +
         values + ")";
}

std::string upsert(const columns::Table& table, Placeholders style) {
  std::string set;
  for (const columns::Column& c : table.columns) {
    if (in_key(table.key, c.name)) {
      continue;
    }
    if (!set.empty()) {
      set += ", ";
    }
    set.append(c.name).append(" = excluded.").append(c.name);
  }
  return insert(table.name, table.columns, style) + " ON CONFLICT (" + std::string(table.key) +
         ") DO UPDATE SET " + set;
}

std::string insert_new(const columns::Table& table, Placeholders style) {
  return insert(table.name, table.columns, style) + " ON CONFLICT (" + std::string(table.key) +
         ") DO NOTHING";
}

std::string assignments(std::span<const columns::Column> columns, Placeholders style, int first) {
  std::string out;
  for (const columns::Column& c : columns) {
    if (!out.empty()) {
      out += ", ";
    }
    out.append(c.name).append(" = ").append(placeholder(c, style, first++));
  }
  return out;
}

std::vector<std::string> lock_order(std::span<const std::string> keys) {
  std::vector<std::string> out(keys.begin(), keys.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace tc::storage::sql
