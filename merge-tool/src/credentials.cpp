// SPDX-License-Identifier: Apache-2.0
#include "credentials.h"

#include <cctype>
#include <cstdlib>
#include <string_view>

#include "transform.h"

namespace tc::merge {
namespace {

std::string percent_encode(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string odbc_value(const std::string& raw) {
  if (raw.find_first_of(";{}= ") == std::string::npos) {
    return raw;
  }
  std::string out = "{";
  for (const char c : raw) {
    out.push_back(c);
    if (c == '}') {
      out.push_back('}');  // a '}' inside braces is doubled
    }
  }
  return out + "}";
}

}  // namespace

std::string with_password(const std::string& url, const std::optional<std::string>& password) {
  const bool odbc = to_lower(url.substr(0, 7)) == "odbc://";
  const bool pg = to_lower(url.substr(0, 13)) == "postgresql://" ||
                  to_lower(url.substr(0, 11)) == "postgres://";
  std::string out = url;
  constexpr std::string_view kPlaceholder = "***";
  bool replaced = false;
  if (password) {
    const std::string value = odbc ? odbc_value(*password) : percent_encode(*password);
    for (auto at = out.find(kPlaceholder); at != std::string::npos;
         at = out.find(kPlaceholder, at + value.size())) {
      replaced = true;
      out.replace(at, kPlaceholder.size(), value);
    }
  } else {
    for (auto at = out.find(kPlaceholder); at != std::string::npos; at = out.find(kPlaceholder)) {
      replaced = true;
      // ":***@" -> "@"; otherwise drop the whole "password=***" / "PWD=***" item.
      if (at > 0 && out[at - 1] == ':' && at + 3 < out.size() && out[at + 3] == '@') {
        out.erase(at - 1, 4);
        continue;
      }
      std::size_t key_begin = at;
      while (key_begin > 0 && out[key_begin - 1] != '?' && out[key_begin - 1] != '&' &&
             out[key_begin - 1] != ';' && out[key_begin - 1] != ' ' && out[key_begin - 1] != '/') {
        --key_begin;
      }
      std::size_t end = at + kPlaceholder.size();
      if (end < out.size() && (out[end] == '&' || out[end] == ';')) {
        ++end;
      }
      out.erase(key_begin, end - key_begin);
      while (!out.empty() && (out.back() == '&' || out.back() == '?' || out.back() == ';')) {
        out.pop_back();
      }
    }
  }
  if (!replaced && password) {
    if (odbc) {
      out += (out.back() == ';' ? "" : ";") + std::string("PWD=") + odbc_value(*password);
    } else if (pg) {
      out += (out.find('?') == std::string::npos ? "?" : "&") + std::string("password=") +
             percent_encode(*password);
    }
  }
  return out;
}

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

}  // namespace tc::merge
