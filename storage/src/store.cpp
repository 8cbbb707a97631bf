// SPDX-License-Identifier: Apache-2.0
#include "storage/store.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <spdlog/spdlog.h>

#include "storage/errc.h"

#include "backends.h"

namespace tc::storage {

boost::system::error_code Store::unsupported() {
  return make_error_code(Errc::Unsupported);
}

Result<std::vector<RoomBundle>> Store::load_rooms(std::span<const std::string> room_jids,
                                                  std::size_t max_history) {
  std::vector<RoomBundle> out;
  out.reserve(room_jids.size());
  for (const std::string& jid : room_jids) {
    auto room = load_room(jid);
    if (!room) {
      if (room.error() == Errc::NotFound) {
        continue;
      }
      return room.error();
    }
    auto affiliations = load_affiliations(jid);
    if (!affiliations) {
      return affiliations.error();
    }
    auto recent = recent_messages(jid, max_history);
    if (!recent) {
      return recent.error();
    }
    out.push_back({std::move(*room), std::move(*affiliations), std::move(*recent)});
  }
  return out;
}
namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

// "sqlite:///abs.db?synchronous=normal&busy_timeout=2000": the query string is ours, not SQLite's.
Result<SqliteOptions> parse_sqlite_url(std::string_view rest) {
  SqliteOptions options;
  std::string_view params;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    params = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.empty()) {
    return make_error_code(Errc::BadUrl);
  }
  options.path = std::string(rest);
  while (!params.empty()) {
    const auto amp = params.find('&');
    const std::string_view param = params.substr(0, amp);
    params = amp == std::string_view::npos ? std::string_view{} : params.substr(amp + 1);
    const auto eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
    if (key == "synchronous" && (value == "full" || value == "FULL")) {
      options.synchronous_full = true;
    } else if (key == "synchronous" && (value == "normal" || value == "NORMAL")) {
      options.synchronous_full = false;
    } else if (key == "busy_timeout") {
      int ms = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (ec != std::errc{} || end != value.data() + value.size() || ms < 0) {
        return make_error_code(Errc::BadUrl);
      }
      options.busy_timeout_ms = ms;
    } else {
      return make_error_code(Errc::BadUrl);
    }
  }
  return options;
}

// Replaces the value of every `password=` / `pwd=` key (case-insensitive) in URL query strings,
// libpq "key=value ..." strings and ODBC "KEY=value;..." strings, including {braced} values.
std::string redact_params(std::string text) {
  static constexpr std::string_view kKeys[] = {"password=", "pwd="};
  std::size_t pos = 0;
  while (pos < text.size()) {
    const bool at_key = pos == 0 || text[pos - 1] == '?' || text[pos - 1] == '&' ||
                        text[pos - 1] == ';' || text[pos - 1] == ' ';
    std::size_t key_len = 0;
    if (at_key) {
      for (const std::string_view key : kKeys) {
        if (iequals_prefix(std::string_view(text).substr(pos), key)) {
          key_len = key.size();
        }
      }
    }
    if (key_len == 0) {
      ++pos;
      continue;
    }
    const std::size_t value_begin = pos + key_len;
    std::size_t value_end = value_begin;
    if (value_end < text.size() && text[value_end] == '{') {
      const auto close = text.find('}', value_end);
      value_end = close == std::string::npos ? text.size() : close + 1;
    }
    value_end = std::min(text.size(), text.find_first_of("&; ", value_end));
    text.replace(value_begin, value_end - value_begin, "***");
    pos = value_begin + 3;
  }
  return text;
}

}  // namespace

Result<std::unique_ptr<Store>> open_store(std::string_view url) {
  if (url == "sqlite::memory:") {
#if defined(TC_WITH_SOCI)
    return open_sqlite_store(SqliteOptions{.path = ":memory:"});
#else
    return make_error_code(Errc::Unsupported);
#endif
  }
  if (iequals_prefix(url, "sqlite://")) {
    // sqlite:///abs/path.db keeps its leading '/'; sqlite://rel/path.db is relative to the cwd.
    auto options = parse_sqlite_url(url.substr(9));
    if (!options) {
      spdlog::error("storage: bad SQLite URL {}", redact_url(url));
      return options.error();
    }
#if defined(TC_WITH_SOCI)
    return open_sqlite_store(*options);
#else
    return make_error_code(Errc::Unsupported);
#endif
  }
  if (iequals_prefix(url, "postgresql://") || iequals_prefix(url, "postgres://")) {
#if defined(TC_WITH_PQXX)
    return open_postgresql_store(std::string(url));
#else
    spdlog::error("storage: this build has no PostgreSQL backend ({})", redact_url(url));
    return make_error_code(Errc::Unsupported);
#endif
  }
  if (iequals_prefix(url, "odbc://")) {
    if (url.size() == 7) {
      return make_error_code(Errc::BadUrl);
    }
#if defined(TC_WITH_SOCI) && defined(TC_WITH_ODBC)
    return open_odbc_store(url.substr(7));
#else
    spdlog::error("storage: this build has no ODBC backend ({})", redact_url(url));
    return make_error_code(Errc::Unsupported);
#endif
  }
  spdlog::error("storage: unknown store URL scheme in {}", redact_url(url));
  return make_error_code(Errc::BadUrl);
}

std::string postgres_uri_with_defaults(std::string uri, std::string_view application) {
  const auto add = [&uri](std::string_view key, std::string_view value) {
    if (uri.find(std::string(key) + "=") != std::string::npos) {
      return;
    }
    uri += uri.find('?') == std::string::npos ? '?' : '&';
    uri.append(key).append("=").append(value);
  };
  add("connect_timeout", "10");
  add("application_name", application);
  return uri;
}

std::string redact_url(std::string_view url) {
  std::string out(url);
  // scheme://user:password@host -> scheme://user:***@host (not for ODBC strings, which have no
  // authority part and use PWD= instead).
  if (const auto scheme_end = out.find("://");
      scheme_end != std::string::npos && !iequals_prefix(out, "odbc://")) {
    const std::size_t auth_begin = scheme_end + 3;
    const std::size_t auth_end = std::min(out.size(), out.find_first_of("/?#", auth_begin));
    const auto at = out.rfind('@', auth_end == 0 ? 0 : auth_end - 1);
    if (at != std::string::npos && at >= auth_begin) {
      const auto colon = out.find(':', auth_begin);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  return redact_params(std::move(out));
}

}  // namespace tc::storage
