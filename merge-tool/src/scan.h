// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <memory>
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

/// Opens another connection to the same database (read-only for a source), used to read large
/// values while a stream is still in progress on the first.
using Reconnect = std::function<std::unique_ptr<Db>()>;

/// The tc_archive rows of one room with seq > `after`, in seq order, as "seq, stanza_id,
/// sender_nick, sender_jid, kind, stanza_xml, created_at". Memory is bounded in bytes whatever a
/// stanza's size: on PostgreSQL a stanza of kLargeValue bytes or more is left out of the COPY
/// stream (libpq would hold it twice over, and keep its buffer that large for good) and read
/// once its row has arrived, in pieces of at most 1M characters, over a second connection
/// (`reconnect`, opened on first use, kept in `side`). While the sink runs on a row with a
/// large stanza, the stanza's bytes (twice over where the driver keeps its own copy) are held
/// from the process's ByteBudget, so parallel workers hold one large stanza at a time. The sink
/// must not keep a large stanza past its return.
void scan_archive(Db& db, std::unique_ptr<Db>& side, const Reconnect& reconnect,
                  std::size_t page_rows, const std::string& room_jid, long long after,
                  const RowSink& sink);

}  // namespace tc::merge
