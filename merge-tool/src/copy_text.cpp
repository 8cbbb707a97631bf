// SPDX-License-Identifier: Apache-2.0
#include "copy_text.h"

namespace tc::merge {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

}  // namespace

bool decode_copy_line(std::string_view line, Row& row) {
  if (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
  }
  std::size_t used = 0;
  std::size_t i = 0;
  for (;;) {
    // One field: up to the next unescaped tab or the end of the line.
    if (used == row.size()) {
      row.emplace_back();
    }
    Value& field = row[used++];
    if (line.substr(i, 2) == "\\N" && (i + 2 == line.size() || line[i + 2] == '\t')) {
      field.reset();
      i += 2;
    } else {
      std::string& out = field.emplace();
      while (i < line.size() && line[i] != '\t') {
        const char c = line[i++];
        if (c != '\\') {
          out.push_back(c);
          continue;
        }
        if (i >= line.size()) {
          return false;
        }
        const char e = line[i++];
        switch (e) {
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'v':
            out.push_back('\v');
            break;
          case 'x': {
            int value = 0;
            int digits = 0;
            while (digits < 2 && i < line.size() && hex_value(line[i]) >= 0) {
              value = value * 16 + hex_value(line[i++]);
              ++digits;
            }
            if (digits == 0) {
              return false;
            }
            out.push_back(static_cast<char>(value));
            break;
          }
          default:
            if (e >= '0' && e <= '7') {
              int value = e - '0';
              for (int digits = 1;
                   digits < 3 && i < line.size() && line[i] >= '0' && line[i] <= '7'; ++digits) {
                value = value * 8 + (line[i++] - '0');
              }
              out.push_back(static_cast<char>(value));
            } else {
              out.push_back(e);  // "\\" and any other escaped character stand for themselves
            }
        }
      }
    }
    if (i >= line.size()) {
      break;
    }
    ++i;  // the tab
  }
  row.resize(used);
  return true;
}

void append_copy_field(std::string& out, std::string_view text) {
  std::size_t plain = 0;  // text[plain, i) needs no escape
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char* escaped = c == '\\'   ? "\\\\"
                          : c == '\t' ? "\\t"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                                      : nullptr;
    if (escaped != nullptr) {
      out.append(text.substr(plain, i - plain));
      out.append(escaped, 2);
      plain = i + 1;
    }
  }
  out.append(text.substr(plain));
}

}  // namespace tc::merge
