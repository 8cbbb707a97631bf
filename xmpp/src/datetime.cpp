// SPDX-License-Identifier: Apache-2.0
#include "xmpp/datetime.h"

#include <cctype>
#include <cstdio>
#include <ctime>

namespace tc::xmpp {

std::string xep82_timestamp(UnixMillis at) {
  const std::time_t secs = static_cast<std::time_t>(at / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(at % 1000));
  return buf;
}

std::optional<UnixMillis> parse_xep82(std::string_view text) {
  // CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm)
  int y, mo, d, h, mi, s;
  if (text.size() < 20 || std::sscanf(std::string(text.substr(0, 19)).c_str(),
                                      "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 3) {
        millis = millis * 10 + (text[pos] - '0');
      }
      ++digits;
      ++pos;
    }
    for (; digits < 3; ++digits) {
      millis *= 10;
    }
  }
  int offset_min = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(std::string(text.substr(pos + 1)).c_str(), "%2d:%2d", &oh, &om) != 2) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
  } else if (pos >= text.size() || text[pos] != 'Z') {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t t = timegm(&tm);
  return (static_cast<UnixMillis>(t) - offset_min * 60) * 1000 + millis;
}

}  // namespace tc::xmpp
