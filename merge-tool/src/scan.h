// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <vector>

#include "db.h"

namespace tc::merge {

/// An ORDER BY column of a scan and where it sits in the selected columns.
struct ScanKey {
  std::string column;
  std::size_t index = 0;
  bool integer = false;
};

/// Runs "SELECT <columns> FROM <from> [WHERE <where>] ORDER BY <keys>" over the whole result
/// with bounded memory: one COPY stream on PostgreSQL, keyset pages of `page_rows` elsewhere
/// ((k1 > ?) OR (k1 = ? AND k2 > ?) ... after the last row seen). The keys must be unique.
void scan_rows(Db& db, std::size_t page_rows, const std::string& columns, const std::string& from,
               const std::string& where, const std::vector<Param>& where_params,
               const std::vector<ScanKey>& keys, const RowSink& sink);

}  // namespace tc::merge
