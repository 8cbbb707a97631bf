// SPDX-License-Identifier: Apache-2.0
#include "muc/room_config.h"

#include <boost/json.hpp>

#include "xmpp/errc.h"
#include "xmpp/namespaces.h"

namespace tc::broker::muc {
namespace json = boost::json;
using xmpp::XmlElement;
namespace ns = xmpp::ns;

namespace {

constexpr const char* kFormType = "http://jabber.org/protocol/muc#roomconfig";

void add_field(XmlElement& x, const char* var, const char* type, const char* label,
               const std::string& value) {
  auto& f = x.add_child("field", ns::kXData);
  f.set_attr("var", var).set_attr("type", type).set_attr("label", label);
  f.add_child("value", ns::kXData).add_text(value);
}

void add_list(XmlElement& x, const char* var, const char* label, const std::string& value,
              std::initializer_list<std::pair<const char*, const char*>> options) {
  auto& f = x.add_child("field", ns::kXData);
  f.set_attr("var", var).set_attr("type", "list-single").set_attr("label", label);
  f.add_child("value", ns::kXData).add_text(value);
  for (const auto& [v, l] : options) {
    auto& o = f.add_child("option", ns::kXData);
    o.set_attr("label", l);
    o.add_child("value", ns::kXData).add_text(v);
  }
}

std::string b(bool v) {
  return v ? "1" : "0";
}

std::optional<bool> parse_bool(std::string_view v) {
  if (v == "1" || v == "true") {
    return true;
  }
  if (v == "0" || v == "false") {
    return false;
  }
  return std::nullopt;
}

std::optional<long long> parse_int(std::string_view v) {
  if (v.empty() || v.size() > 12) {
    return std::nullopt;
  }
  long long out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    out = out * 10 + (c - '0');
  }
  return out;
}

template <class T>
T get(const json::object& o, const char* key, T fallback) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) {
    return fallback;
  }
  if constexpr (std::is_same_v<T, bool>) {
    return v->is_bool() ? v->as_bool() : fallback;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v->is_string() ? std::string(v->as_string()) : fallback;
  } else {
    return v->is_int64() ? static_cast<T>(v->as_int64()) : fallback;
  }
}

}  // namespace

std::string RoomConfig::to_json() const {
  json::object o;
  o["name"] = name;
  o["description"] = description;
  o["persistent"] = persistent;
  o["public"] = public_room;
  o["members_only"] = members_only;
  o["password_protected"] = password_protected;
  o["password"] = password;
  o["moderated"] = moderated;
  o["max_users"] = static_cast<std::int64_t>(max_users);
  o["whois"] = whois;
  o["change_subject"] = change_subject;
  o["allow_pm"] = allow_pm;
  o["history_length"] = static_cast<std::int64_t>(history_length);
  o["allow_invites"] = allow_invites;
  o["retention_days"] = retention_days;
  o["occupant_id_salt"] = occupant_id_salt;
  if (!vcard.empty()) {
    o["vcard"] = vcard;
  }
  return json::serialize(o);
}

RoomConfig RoomConfig::from_json(std::string_view text) {
  RoomConfig c;
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return c;
  }
  const auto& o = v.as_object();
  c.name = get(o, "name", c.name);
  c.description = get(o, "description", c.description);
  c.persistent = get(o, "persistent", c.persistent);
  c.public_room = get(o, "public", c.public_room);
  c.members_only = get(o, "members_only", c.members_only);
  c.password_protected = get(o, "password_protected", c.password_protected);
  c.password = get(o, "password", c.password);
  c.moderated = get(o, "moderated", c.moderated);
  c.max_users = get(o, "max_users", c.max_users);
  c.whois = get(o, "whois", c.whois);
  c.change_subject = get(o, "change_subject", c.change_subject);
  c.allow_pm = get(o, "allow_pm", c.allow_pm);
  c.history_length = get(o, "history_length", c.history_length);
  c.allow_invites = get(o, "allow_invites", c.allow_invites);
  c.retention_days = get(o, "retention_days", c.retention_days);
  c.occupant_id_salt = get(o, "occupant_id_salt", c.occupant_id_salt);
  c.vcard = get(o, "vcard", c.vcard);
  return c;
}

XmlElement RoomConfig::to_form(const ConfigLimits& limits) const {
  XmlElement x("x", ns::kXData);
  x.set_attr("type", "form");
  x.add_child("title", ns::kXData).add_text("Room configuration");
  add_field(x, "FORM_TYPE", "hidden", "", kFormType);
  add_field(x, "muc#roomconfig_roomname", "text-single", "Room name", name);
  add_field(x, "muc#roomconfig_roomdesc", "text-single", "Description", description);
  add_field(x, "muc#roomconfig_persistentroom", "boolean", "Persistent room", b(persistent));
  add_field(x, "muc#roomconfig_publicroom", "boolean", "Listed in the directory", b(public_room));
  add_field(x, "muc#roomconfig_membersonly", "boolean", "Members only", b(members_only));
  add_field(x, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected",
            b(password_protected));
  add_field(x, "muc#roomconfig_roomsecret", "text-private", "Password", password);
  add_field(x, "muc#roomconfig_moderatedroom", "boolean", "Moderated", b(moderated));
  add_field(x, "muc#roomconfig_maxusers", "text-single", "Maximum occupants (0 = no limit)",
            std::to_string(max_users));
  add_list(x, "muc#roomconfig_whois", "Who may see real JIDs", whois,
           {{"moderators", "Moderators only"}, {"anyone", "Anyone"}});
  add_field(x, "muc#roomconfig_changesubject", "boolean", "Participants may change the subject",
            b(change_subject));
  add_list(x, "muc#roomconfig_allowpm", "Who may send private messages", allow_pm,
           {{"anyone", "Anyone"},
            {"participants", "Participants"},
            {"moderators", "Moderators"},
            {"none", "Nobody"}});
  add_field(x, "muc#maxhistoryfetch", "text-single",
            ("History messages sent on join (at most " + std::to_string(limits.max_history) + ")")
                .c_str(),
            std::to_string(history_length));
  add_field(x, "muc#roomconfig_allowinvites", "boolean", "Participants may invite",
            b(allow_invites));
  add_field(x, "muc#roomconfig_enablelogging", "boolean", "Archive messages (always on)", "1");
  add_field(x, "tc#retention_days", "text-single",
            ("Keep the archive this many days (0 = service default; " +
             std::to_string(limits.retention_min_days) + " to " +
             std::to_string(limits.retention_max_days) + ")")
                .c_str(),
            std::to_string(retention_days));
  return x;
}

Result<void> RoomConfig::apply_form(const XmlElement& x, const ConfigLimits& limits,
                                    std::string& error_text) {
  RoomConfig next = *this;
  for (const XmlElement* field : x.children("field", ns::kXData)) {
    const std::string var(field->attr("var"));
    const std::string value = field->child_text("value", ns::kXData);
    auto fail = [&](const std::string& why) {
      error_text = var + ": " + why;
      return Result<void>(make_error_code(xmpp::Errc::MalformedRequest));
    };
    auto boolean = [&](bool& out) -> bool {
      auto v = parse_bool(value);
      if (!v) {
        return false;
      }
      out = *v;
      return true;
    };
    if (var == "FORM_TYPE" || var == "muc#roomconfig_enablelogging") {
      continue;
    } else if (var == "muc#roomconfig_roomname") {
      next.name = value;
    } else if (var == "muc#roomconfig_roomdesc") {
      next.description = value;
    } else if (var == "muc#roomconfig_persistentroom") {
      if (!boolean(next.persistent)) {
        return fail("expected a boolean");
      }
      if (next.persistent && !persistent && !limits.may_make_persistent) {
        return fail("only service administrators may create persistent rooms");
      }
    } else if (var == "muc#roomconfig_publicroom") {
      if (!boolean(next.public_room)) {
        return fail("expected a boolean");
      }
    } else if (var == "muc#roomconfig_membersonly") {
      if (!boolean(next.members_only)) {
        return fail("expected a boolean");
      }
    } else if (var == "muc#roomconfig_passwordprotectedroom") {
      if (!boolean(next.password_protected)) {
        return fail("expected a boolean");
      }
    } else if (var == "muc#roomconfig_roomsecret") {
      next.password = value;
    } else if (var == "muc#roomconfig_moderatedroom") {
      if (!boolean(next.moderated)) {
        return fail("expected a boolean");
      }
    } else if (var == "muc#roomconfig_maxusers") {
      auto v = parse_int(value);
      if (!v || *v > 1'000'000) {
        return fail("expected a number of occupants");
      }
      next.max_users = static_cast<std::size_t>(*v);
    } else if (var == "muc#roomconfig_whois") {
      if (value != "moderators" && value != "anyone") {
        return fail("expected moderators or anyone");
      }
      next.whois = value;
    } else if (var == "muc#roomconfig_changesubject") {
      if (!boolean(next.change_subject)) {
        return fail("expected a boolean");
      }
    } else if (var == "muc#roomconfig_allowpm") {
      if (value != "anyone" && value != "participants" && value != "moderators" &&
          value != "none") {
        return fail("expected anyone, participants, moderators or none");
      }
      next.allow_pm = value;
    } else if (var == "muc#maxhistoryfetch" || var == "muc#roomconfig_historylength") {
      auto v = parse_int(value);
      if (!v || static_cast<std::size_t>(*v) > limits.max_history) {
        return fail("expected 0 to " + std::to_string(limits.max_history));
      }
      next.history_length = static_cast<std::size_t>(*v);
    } else if (var == "muc#roomconfig_allowinvites") {
      if (!boolean(next.allow_invites)) {
        return fail("expected a boolean");
      }
    } else if (var == "tc#retention_days") {
      auto v = parse_int(value);
      if (!v || (*v != 0 && (*v < limits.retention_min_days || *v > limits.retention_max_days))) {
        return fail("expected 0 or " + std::to_string(limits.retention_min_days) + " to " +
                    std::to_string(limits.retention_max_days));
      }
      next.retention_days = static_cast<int>(*v);
    }
    // Other fields (other servers' extensions) are ignored, as XEP-0004 allows.
  }
  if (next.password_protected && next.password.empty()) {
    error_text = "muc#roomconfig_roomsecret: a password-protected room needs a password";
    return make_error_code(xmpp::Errc::MalformedRequest);
  }
  *this = std::move(next);
  return {};
}

}  // namespace tc::broker::muc
