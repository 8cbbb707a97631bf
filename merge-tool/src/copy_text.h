// SPDX-License-Identifier: Apache-2.0
// PostgreSQL's COPY text format (https://www.postgresql.org/docs/15/sql-copy.html, "Text Format").
#pragma once

#include <string_view>

#include "db.h"

namespace tc::merge {

/// Splits one COPY TO STDOUT text line (with or without its trailing newline) into `row`,
/// undoing the backslash escapes; `\N` is NULL. Returns false on a malformed escape.
bool decode_copy_line(std::string_view line, Row& row);

/// Appends `text` to `out` as one COPY FROM STDIN text field: backslash, tab, newline and
/// carriage return escaped.
void append_copy_field(std::string& out, std::string_view text);

}  // namespace tc::merge
