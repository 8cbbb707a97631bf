// SPDX-License-Identifier: Apache-2.0
#include "copy_text.h"

#include <array>
#include <cstring>

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

namespace {

std::size_t find_char(std::string_view text, char c, std::size_t from) {
  if (from >= text.size()) {
    return text.size();
  }
  const void* at = std::memchr(text.data() + from, c, text.size() - from);
  return at == nullptr ? text.size()
                       : static_cast<std::size_t>(static_cast<const char*>(at) - text.data());
}

/// Undoes the escape starting at line[i] (the backslash); appends the character to `out` and
/// returns the index after the escape, or npos when the escape is malformed.
std::size_t unescape(std::string_view line, std::size_t i, std::string& out) {
  ++i;  // the backslash
  if (i >= line.size()) {
    return std::string_view::npos;
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
        return std::string_view::npos;
      }
      out.push_back(static_cast<char>(value));
      break;
    }
    default:
      if (e >= '0' && e <= '7') {
        int value = e - '0';
        for (int digits = 1; digits < 3 && i < line.size() && line[i] >= '0' && line[i] <= '7';
             ++digits) {
          value = value * 8 + (line[i++] - '0');
        }
        out.push_back(static_cast<char>(value));
      } else {
        out.push_back(e);  // "\\" and any other escaped character stand for themselves
      }
  }
  return i;
}

/// The characters append_copy_field escapes.
constexpr auto kNeedsEscape = [] {
  std::array<bool, 256> table{};
  table[static_cast<unsigned char>('\\')] = true;
  table[static_cast<unsigned char>('\t')] = true;
  table[static_cast<unsigned char>('\n')] = true;
  table[static_cast<unsigned char>('\r')] = true;
  return table;
}();

}  // namespace

bool decode_copy_line(std::string_view line, Row& row) {
  if (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
  }
  // Unescaped runs are appended whole: memchr finds the tabs and backslashes.
  std::size_t used = 0;
  std::size_t i = 0;
  std::size_t next_tab = find_char(line, '\t', 0);
  std::size_t next_escape = find_char(line, '\\', 0);
  for (;;) {
    if (used == row.size()) {
      row.emplace_back();
    }
    Value& field = row[used++];
    if (next_escape == i && i + 1 < line.size() && line[i + 1] == 'N' &&
        (i + 2 == line.size() || line[i + 2] == '\t')) {
      field.reset();
      i += 2;
      next_escape = find_char(line, '\\', i);
    } else {
      std::string& out = field ? *field : field.emplace();
      out.clear();
      while (next_escape < next_tab) {
        out.append(line.substr(i, next_escape - i));
        i = unescape(line, next_escape, out);
        if (i == std::string_view::npos) {
          return false;
        }
        if (i > next_tab) {
          next_tab = find_char(line, '\t', i);  // an escaped tab character
        }
        next_escape = find_char(line, '\\', i);
      }
      out.append(line.substr(i, next_tab - i));
      i = next_tab;
    }
    if (i >= line.size()) {
      break;
    }
    ++i;  // the tab
    next_tab = find_char(line, '\t', i);
  }
  row.resize(used);
  return true;
}

void append_copy_field(std::string& out, std::string_view text) {
  const auto* data = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t plain = 0;  // text[plain, i) needs no escape
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!kNeedsEscape[data[i]]) [[likely]] {
      continue;
    }
    const char c = text[i];
    out.append(text.substr(plain, i - plain));
    out.push_back('\\');
    out.push_back(c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
    plain = i + 1;
  }
  out.append(text.substr(plain));
}

}  // namespace tc::merge
