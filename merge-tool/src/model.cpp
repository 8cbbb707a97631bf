// SPDX-License-Identifier: Apache-2.0
#include "model.h"

#include <boost/json.hpp>

namespace tc::merge {

namespace json = boost::json;

std::string_view to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::Auto:
      return "auto";
    case SourceKind::Tc:
      return "tc";
    case SourceKind::Vendor:
      return "vendor";
  }
  return "?";
}

std::optional<SourceKind> parse_source_kind(std::string_view text) {
  if (text == "auto") {
    return SourceKind::Auto;
  }
  if (text == "tc") {
    return SourceKind::Tc;
  }
  if (text == "vendor") {
    return SourceKind::Vendor;
  }
  return std::nullopt;
}

std::string_view to_string(CollisionPolicy policy) {
  switch (policy) {
    case CollisionPolicy::Fail:
      return "fail";
    case CollisionPolicy::KeepA:
      return "keep-a";
    case CollisionPolicy::KeepB:
      return "keep-b";
    case CollisionPolicy::Rename:
      return "rename";
  }
  return "?";
}

std::optional<CollisionPolicy> parse_collision_policy(std::string_view text) {
  for (const auto p : {CollisionPolicy::Fail, CollisionPolicy::KeepA, CollisionPolicy::KeepB,
                       CollisionPolicy::Rename}) {
    if (to_string(p) == text) {
      return p;
    }
  }
  return std::nullopt;
}

std::string_view to_string(Severity severity) {
  switch (severity) {
    case Severity::Info:
      return "info";
    case Severity::Warning:
      return "warning";
    case Severity::Error:
      return "error";
  }
  return "?";
}

std::string JobOptions::to_json() const {
  json::object o;
  o["collision_policy"] = std::string(to_string(collision));
  o["rename_suffix"] = rename_suffix;
  o["conference_domain"] = conference_domain;
  json::array aliases;
  for (const auto& a : vendor_aliases) {
    aliases.emplace_back(a);
  }
  o["vendor_aliases"] = std::move(aliases);
  o["stale_after_s"] = stale_after.count();
  o["tablespace"] = tablespace;
  o["features"] = features;
  return json::serialize(o);
}

JobOptions JobOptions::from_json(std::string_view text) {
  JobOptions out;
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return out;
  }
  const json::object& o = v.as_object();
  const auto str = [&o](const char* key) -> std::string {
    const auto* p = o.if_contains(key);
    return p != nullptr && p->is_string() ? std::string(p->as_string()) : std::string();
  };
  out.collision = parse_collision_policy(str("collision_policy")).value_or(CollisionPolicy::Fail);
  out.rename_suffix = str("rename_suffix");
  out.conference_domain = str("conference_domain");
  if (const auto* p = o.if_contains("vendor_aliases"); p != nullptr && p->is_array()) {
    for (const auto& a : p->as_array()) {
      if (a.is_string()) {
        out.vendor_aliases.emplace_back(a.as_string());
      }
    }
  }
  if (const auto* p = o.if_contains("stale_after_s"); p != nullptr && p->is_int64()) {
    out.stale_after = std::chrono::seconds(p->as_int64());
  }
  out.tablespace = str("tablespace");
  out.features = str("features");
  if (out.features.empty()) {
    out.features = "tc";
  }
  return out;
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tc::merge
