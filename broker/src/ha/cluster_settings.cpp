// SPDX-License-Identifier: Apache-2.0
#include "ha/cluster_settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "storage/errc.h"
#include "storage/store.h"

namespace tc::broker::ha {
namespace {

using std::chrono::milliseconds;

constexpr double kMaxSeconds = 86'400;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  return text;
}

/// "15", "0.1", "1.5s", "500ms" -> milliseconds; nullopt unless 0 < value <= 86400 s.
std::optional<milliseconds> parse_duration(std::string_view text) {
  text = trim(text);
  double scale = 1000.0;  // seconds by default
  if (text.ends_with("ms")) {
    scale = 1.0;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  }
  if (text.empty() || text.front() == '+' || text.front() == '-') {
    return std::nullopt;
  }
  double number = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, number, std::chars_format::fixed);
  if (ec != std::errc{} || ptr != end || !std::isfinite(number)) {
    return std::nullopt;
  }
  const double ms = std::round(number * scale);
  if (ms <= 0 || ms > kMaxSeconds * 1000.0) {
    return std::nullopt;
  }
  return milliseconds{static_cast<std::int64_t>(ms)};
}

/// Milliseconds as seconds with no trailing zeros: 1500 -> "1.5", 15000 -> "15".
std::string format_duration(milliseconds ms) {
  const auto count = ms.count();
  std::string out = std::to_string(count / 1000);
  if (const auto frac = count % 1000; frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 3 - digits.size(), '0');
    while (digits.back() == '0') {
      digits.pop_back();
    }
    out += "." + digits;
  }
  return out;
}

std::optional<bool> parse_bool(std::string_view text) {
  const auto t = lower(trim(text));
  if (t == "true" || t == "yes" || t == "on" || t == "1") {
    return true;
  }
  if (t == "false" || t == "no" || t == "off" || t == "0") {
    return false;
  }
  return std::nullopt;
}

enum class Kind { Mode, Duration, Bool };

struct KeyInfo {
  const char* key;
  Kind kind;
  const char* help;
};

constexpr KeyInfo kKeys[] = {
    {"assignment_mode", Kind::Mode,
     "user assignment mode: balanced (default), active-standby or none"},
    {"critical_service_down_delay", Kind::Duration,
     "seconds a critical service may be down before failover starts (default 90)"},
    {"auto_fallback", Kind::Bool,
     "true: move users back to the primary automatically once it is healthy (default false)"},
    {"auto_fallback_delay", Kind::Duration,
     "seconds the primary must be healthy before an automatic fallback (default 1800)"},
    {"init_heartbeat_timeout", Kind::Duration,
     "heartbeat loss tolerated while starting up, seconds (default 120)"},
    {"heartbeat_timeout", Kind::Duration,
     "heartbeat loss tolerated before failover, seconds (default 60)"},
    {"heartbeat_interval", Kind::Duration,
     "seconds between heartbeats to the peer; less than heartbeat_timeout (default 15)"},
    {"monitor_authentication", Kind::Bool,
     "true: the authentication service is a critical service too (default false)"},
    {"redirect_users", Kind::Bool,
     "true: a login on a node that is not the user's assigned one is sent there with "
     "see-other-host (the vendor's behaviour); false: any node serves any user (default false)"},
};

const KeyInfo* find_key(std::string_view key) {
  for (const auto& info : kKeys) {
    if (key == info.key) {
      return &info;
    }
  }
  return nullptr;
}

/// Applies one normalised value to `s`. The caller has validated it.
void apply(ClusterSettings& s, std::string_view key, const std::string& value) {
  if (key == "assignment_mode") {
    s.assignment_mode = *assignment_mode_from(value);
  } else if (key == "auto_fallback") {
    s.auto_fallback = value == "true";
  } else if (key == "monitor_authentication") {
    s.monitor_authentication = value == "true";
  } else if (key == "redirect_users") {
    s.redirect_users = value == "true";
  } else {
    const auto ms = *parse_duration(value);
    if (key == "critical_service_down_delay") {
      s.critical_service_down_delay = ms;
    } else if (key == "auto_fallback_delay") {
      s.auto_fallback_delay = ms;
    } else if (key == "init_heartbeat_timeout") {
      s.init_heartbeat_timeout = ms;
    } else if (key == "heartbeat_timeout") {
      s.heartbeat_timeout = ms;
    } else if (key == "heartbeat_interval") {
      s.heartbeat_interval = ms;
    }
  }
}

}  // namespace

std::string_view to_string(AssignmentMode mode) {
  switch (mode) {
    case AssignmentMode::Balanced:
      return "balanced";
    case AssignmentMode::ActiveStandby:
      return "active-standby";
    case AssignmentMode::None:
      return "none";
  }
  return "balanced";
}

std::optional<AssignmentMode> assignment_mode_from(std::string_view text) {
  const auto t = lower(trim(text));
  if (t == "balanced") {
    return AssignmentMode::Balanced;
  }
  if (t == "active-standby" || t == "active_standby") {
    return AssignmentMode::ActiveStandby;
  }
  if (t == "none") {
    return AssignmentMode::None;
  }
  return std::nullopt;
}

const std::vector<std::pair<std::string, std::string>>& setting_keys() {
  static const auto* const keys = [] {
    auto* out = new std::vector<std::pair<std::string, std::string>>;
    for (const auto& info : kKeys) {
      out->emplace_back(info.key, info.help);
    }
    return out;
  }();
  return *keys;
}

Result<std::string> normalize_setting(std::string_view key, std::string_view value,
                                      std::string* message) {
  const auto fail = [&](std::string text) -> Result<std::string> {
    if (message != nullptr) {
      *message = std::move(text);
    }
    return storage::make_error_code(storage::Errc::SchemaMismatch);
  };
  const KeyInfo* info = find_key(key);
  if (info == nullptr) {
    std::string known;
    for (const auto& k : kKeys) {
      known += known.empty() ? "" : ", ";
      known += k.key;
    }
    return fail("unknown setting \"" + std::string(key) + "\" (known: " + known + ")");
  }
  switch (info->kind) {
    case Kind::Mode:
      if (auto mode = assignment_mode_from(value)) {
        return std::string(to_string(*mode));
      }
      return fail(std::string(key) + " must be balanced, active-standby or none, not \"" +
                  std::string(value) + "\"");
    case Kind::Bool:
      if (auto b = parse_bool(value)) {
        return std::string(*b ? "true" : "false");
      }
      return fail(std::string(key) + " must be true or false, not \"" + std::string(value) + "\"");
    case Kind::Duration:
      if (auto ms = parse_duration(value)) {
        return format_duration(*ms);
      }
      return fail(std::string(key) +
                  " must be a time in seconds, more than 0 and at most 86400 (\"15\", \"0.5\", "
                  "\"1.5s\", \"500ms\"), not \"" +
                  std::string(value) + "\"");
  }
  return fail("unknown setting");
}

Result<ClusterSettings> ClusterSettings::from_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs, std::string* bad_key,
    std::string* message) {
  ClusterSettings s;
  const auto fail = [&](const std::string& key, std::string text) -> Result<ClusterSettings> {
    if (bad_key != nullptr) {
      *bad_key = key;
    }
    if (message != nullptr) {
      *message = std::move(text);
    }
    return storage::make_error_code(storage::Errc::SchemaMismatch);
  };
  for (const auto& [key, value] : pairs) {
    if (find_key(key) == nullptr) {
      continue;  // other cluster-wide rows (the HA switch, future keys) are not ours
    }
    std::string why;
    auto normal = normalize_setting(key, value, &why);
    if (!normal) {
      return fail(key, why);
    }
    apply(s, key, *normal);
  }
  if (s.heartbeat_interval >= s.heartbeat_timeout) {
    return fail("heartbeat_interval", "heartbeat_interval (" +
                                          format_duration(s.heartbeat_interval) +
                                          " s) must be less than heartbeat_timeout (" +
                                          format_duration(s.heartbeat_timeout) + " s)");
  }
  return s;
}

Result<ClusterSettings> ClusterSettings::load(storage::Store& store, std::string* bad_key) {
  auto rows = store.list_settings();
  if (!rows) {
    return rows.error();
  }
  return from_pairs(*rows, bad_key);
}

std::vector<std::pair<std::string, std::string>> ClusterSettings::to_pairs() const {
  return {
      {"assignment_mode", std::string(to_string(assignment_mode))},
      {"critical_service_down_delay", format_duration(critical_service_down_delay)},
      {"auto_fallback", auto_fallback ? "true" : "false"},
      {"auto_fallback_delay", format_duration(auto_fallback_delay)},
      {"init_heartbeat_timeout", format_duration(init_heartbeat_timeout)},
      {"heartbeat_timeout", format_duration(heartbeat_timeout)},
      {"heartbeat_interval", format_duration(heartbeat_interval)},
      {"monitor_authentication", monitor_authentication ? "true" : "false"},
      {"redirect_users", redirect_users ? "true" : "false"},
  };
}

bool valid_group_name(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool valid_group_description(std::string_view description) {
  // Counted in characters (UTF-8 code points), so that a Korean description gets 128 too.
  std::size_t count = 0;
  for (std::size_t i = 0; i < description.size(); ++count) {
    const auto lead = static_cast<unsigned char>(description[i]);
    if (lead < 0x80) {
      if (lead < 0x20 || lead == 0x7f || lead == '"' || lead == '%' || lead == '&' || lead == '/' ||
          lead == '<' || lead == '>') {
        return false;
      }
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((lead & 0xe0) == 0xc0) {
      len = 2;
      cp = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
      len = 3;
      cp = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
      len = 4;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + len > description.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(description[i + k]);
      if ((cont & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cont & 0x3f);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    // C1 controls, surrogates and beyond Unicode are not printable characters.
    if (overlong || cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += len;
  }
  return count <= 128;
}

}  // namespace tc::broker::ha
