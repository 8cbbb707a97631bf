// SPDX-License-Identifier: Apache-2.0
// SQL text shared by the backends, built from the column lists of storage/columns.h, with
// placeholders in either backend's style.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/columns.h"

namespace tc::storage::sql {

/// How a backend writes bind placeholders. libpqxx numbers them ($1, $2, ...); SOCI names them
/// (:name) and binds by position, so each name appears once in a statement (SQLite gives a
/// repeated name a single slot).
enum class Placeholders { Numbered, Named };

/// "SELECT a, b, ... FROM table".
std::string select_from(const columns::Table& table);

/// "INSERT INTO table (a, b, ...) VALUES ($1, $2, ...)" or "... VALUES (:a, :b, ...)".
std::string insert(std::string_view table, std::span<const columns::Column> columns,
                   Placeholders style);

/// insert() of every column plus "ON CONFLICT (key) DO UPDATE SET b = excluded.b, ..." for every
/// column outside the key: the row is inserted or replaced. (PostgreSQL 9.5+, SQLite 3.24+.)
std::string upsert(const columns::Table& table, Placeholders style);

/// insert() of every column plus "ON CONFLICT (key) DO NOTHING": a row whose key is taken is left
/// as it is, and the statement's affected-row count says whether this one was inserted.
std::string insert_new(const columns::Table& table, Placeholders style);

/// "a = $first, b = $first+1, ..." or "a = :a, b = :b, ...": the SET list of an UPDATE.
std::string assignments(std::span<const columns::Column> columns, Placeholders style,
                        int first = 1);

/// The keys of a batch write in the order every backend writes them: sorted by bytes, each once.
/// Two transactions writing overlapping batches then take their row locks (PostgreSQL) in the
/// same order, so neither waits on the other while holding a key the other waits on: no
/// deadlock, whatever order the callers listed the keys in.
std::vector<std::string> lock_order(std::span<const std::string> keys);

}  // namespace tc::storage::sql
