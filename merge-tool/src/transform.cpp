// SPDX-License-Identifier: Apache-2.0
#include "transform.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/json.hpp>

namespace tc::merge {
namespace {

bool is_jid_boundary(char c) {
  // Characters that cannot be part of a JID's local part or domain as stored in XML or columns.
  return c == '/' || c == '\'' || c == '"' || c == '<' || c == '>' || c == '&' || c == ' ' ||
         c == '\t' || c == '\n' || c == '\r' || c == ':' || c == ';' || c == ',' || c == '=' ||
         c == '(' || c == ')' || c == '[' || c == ']' || c == '@';
}

void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool parse_int(std::string_view text, int& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian), Howard Hinnant's days_from_civil.
long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

/// Value of the first <value> inside the <field var='var'> element of a data form.
std::optional<std::string> form_value(std::string_view xml, std::string_view var) {
  std::size_t pos = 0;
  while ((pos = xml.find("<field", pos)) != std::string_view::npos) {
    const auto tag_end = xml.find('>', pos);
    if (tag_end == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view tag = xml.substr(pos, tag_end - pos + 1);
    const auto name = find_attr(tag, "<field", "var");
    const bool self_closing = tag.size() >= 2 && tag[tag.size() - 2] == '/';
    const auto field_end = self_closing ? tag_end : xml.find("</field>", tag_end);
    if (name && *name == var && !self_closing) {
      const std::string_view body = xml.substr(tag_end + 1, field_end - tag_end - 1);
      const auto v = body.find("<value");
      if (v == std::string_view::npos) {
        return std::string();
      }
      const auto v_open_end = body.find('>', v);
      if (v_open_end == std::string_view::npos || body[v_open_end - 1] == '/') {
        return std::string();
      }
      const auto v_close = body.find("</value>", v_open_end);
      return xml_unescape(body.substr(v_open_end + 1, v_close - v_open_end - 1));
    }
    pos = field_end == std::string_view::npos ? tag_end : field_end;
  }
  return std::nullopt;
}

}  // namespace

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view bare_jid(std::string_view jid) {
  return jid.substr(0, jid.find('/'));
}

std::string_view jid_resource(std::string_view jid) {
  const auto slash = jid.find('/');
  return slash == std::string_view::npos ? std::string_view{} : jid.substr(slash + 1);
}

std::string_view jid_domain(std::string_view jid) {
  std::string_view bare = bare_jid(jid);
  const auto at = bare.find('@');
  return at == std::string_view::npos ? bare : bare.substr(at + 1);
}

void JidRewriter::rename_domain(std::string_view from, std::string_view to) {
  domains_[to_lower(from)] = std::string(to);
}

void JidRewriter::rename_room(std::string_view from_bare, std::string_view to_bare) {
  rooms_[to_lower(from_bare)] = std::string(to_bare);
}

std::string JidRewriter::apply(std::string_view text) const {
  if (empty()) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size() + 32);
  std::size_t copied = 0;  // text[0, copied) is already in `out`
  std::size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    const bool quote = c == '\'' || c == '"';
    if (c != '@' && !quote) {
      ++pos;
      continue;
    }
    // The candidate domain after '@' or after an opening quote.
    const std::size_t domain_begin = pos + 1;
    std::size_t domain_end = domain_begin;
    while (domain_end < text.size() && !is_jid_boundary(text[domain_end])) {
      ++domain_end;
    }
    if (quote) {
      // Only a whole attribute value equal to a domain: 'alias' (the service JID).
      if (domain_end < text.size() && text[domain_end] == c && domain_end > domain_begin) {
        const auto it =
            domains_.find(to_lower(text.substr(domain_begin, domain_end - domain_begin)));
        if (it != domains_.end()) {
          out.append(text.substr(copied, domain_begin - copied));
          out += it->second;
          copied = domain_end;
        }
      }
      pos = domain_begin;
      continue;
    }
    std::string domain(text.substr(domain_begin, domain_end - domain_begin));
    if (const auto it = domains_.find(to_lower(domain)); it != domains_.end()) {
      domain = it->second;
    }
    // The local part before '@', back to a boundary (never before what is already copied).
    std::size_t local_begin = pos;
    while (local_begin > copied && !is_jid_boundary(text[local_begin - 1])) {
      --local_begin;
    }
    const std::string bare =
        std::string(text.substr(local_begin, pos - local_begin)) + "@" + domain;
    std::string replacement = bare;
    if (const auto it = rooms_.find(to_lower(bare)); it != rooms_.end()) {
      replacement = it->second;
    }
    out.append(text.substr(copied, local_begin - copied));
    out += replacement;
    copied = domain_end;
    pos = domain_end;
  }
  out.append(text.substr(copied));
  return out;
}

std::optional<std::size_t> rename_room_addresses(std::string& xml, std::string_view from_bare,
                                                 std::string_view to_bare) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  const auto same_nocase = [](std::string_view x, std::string_view y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](char p, char q) {
             return std::tolower(static_cast<unsigned char>(p)) ==
                    std::tolower(static_cast<unsigned char>(q));
           });
  };
  // Markup that is skipped whole: what it holds is text or a declaration, never an address.
  static constexpr std::pair<std::string_view, std::string_view> kSkipped[] = {
      {"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}, {"</", ">"}, {"<!", ">"}};
  std::size_t renamed = 0;
  std::size_t i = 0;
  for (;;) {
    // Outside a tag, '<' in well-formed XML always starts markup: text holds it as &lt;.
    i = xml.find('<', i);
    if (i == std::string::npos) {
      return renamed;
    }
    bool skipped = false;
    for (const auto& [open, close] : kSkipped) {
      if (std::string_view(xml).substr(i, open.size()) == open) {
        const auto end = xml.find(close, i + open.size());
        if (end == std::string::npos) {
          return std::nullopt;
        }
        i = end + close.size();
        skipped = true;
        break;
      }
    }
    if (skipped) {
      continue;
    }
    // A start tag: the name, then name="value" pairs up to '>' or '/>'.
    std::size_t j = i + 1;
    while (j < xml.size() && !is_space(xml[j]) && xml[j] != '>' && xml[j] != '/') {
      ++j;
    }
    for (;;) {
      while (j < xml.size() && is_space(xml[j])) {
        ++j;
      }
      if (j >= xml.size()) {
        return std::nullopt;
      }
      if (xml[j] == '>' || xml[j] == '/') {
        break;
      }
      const std::size_t name_begin = j;
      while (j < xml.size() && xml[j] != '=' && !is_space(xml[j])) {
        ++j;
      }
      const std::string_view name = std::string_view(xml).substr(name_begin, j - name_begin);
      while (j < xml.size() && (is_space(xml[j]) || xml[j] == '=')) {
        ++j;
      }
      if (j >= xml.size() || (xml[j] != '\'' && xml[j] != '"')) {
        return std::nullopt;
      }
      const std::size_t value_begin = j + 1;
      const std::size_t value_end = xml.find(xml[j], value_begin);
      if (value_end == std::string::npos) {
        return std::nullopt;
      }
      j = value_end + 1;
      if (name != "from" && name != "to" && name != "jid" && name != "by") {
        continue;
      }
      const std::string_view value =
          std::string_view(xml).substr(value_begin, value_end - value_begin);
      const std::string_view bare = value.substr(0, value.find('/'));
      if (same_nocase(bare, from_bare)) {
        xml.replace(value_begin, bare.size(), to_bare);
        j += to_bare.size() - bare.size();  // unsigned wrap-around cancels out when shorter
        ++renamed;
      }
    }
    i = j;
  }
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':
        // A literal CR reads back as a newline (XML 1.0 §2.11): a Windows client's "\r\n"
        // would lose its CR on the way into the archive.
        out += "&#13;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string xml_unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    const auto semi = text.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    const std::string_view entity = text.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      unsigned long cp = 0;
      const bool hex = entity[1] == 'x' || entity[1] == 'X';
      const std::string_view digits = entity.substr(hex ? 2 : 1);
      const auto [end, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (ec != std::errc{} || end != digits.data() + digits.size() || cp > 0x10FFFF) {
        out.push_back('&');
        continue;
      }
      append_utf8(out, cp);
    } else {
      out.push_back('&');
      continue;
    }
    i = semi;
  }
  return out;
}

std::optional<std::string> find_attr(std::string_view xml, std::string_view tag,
                                     std::string_view name) {
  std::size_t pos = 0;
  while ((pos = xml.find(tag, pos)) != std::string_view::npos) {
    const std::size_t after = pos + tag.size();
    if (after < xml.size() && !std::isspace(static_cast<unsigned char>(xml[after])) &&
        xml[after] != '/' && xml[after] != '>') {
      pos = after;  // a longer tag name with the same prefix
      continue;
    }
    const auto end = xml.find('>', pos);
    const std::string_view tag_text =
        xml.substr(pos, end == std::string_view::npos ? end : end - pos);
    std::size_t a = 0;
    while ((a = tag_text.find(name, a)) != std::string_view::npos) {
      const bool starts = a > 0 && std::isspace(static_cast<unsigned char>(tag_text[a - 1]));
      std::size_t eq = a + name.size();
      while (eq < tag_text.size() && std::isspace(static_cast<unsigned char>(tag_text[eq]))) {
        ++eq;
      }
      if (starts && eq < tag_text.size() && tag_text[eq] == '=') {
        std::size_t q = eq + 1;
        while (q < tag_text.size() && std::isspace(static_cast<unsigned char>(tag_text[q]))) {
          ++q;
        }
        if (q < tag_text.size() && (tag_text[q] == '\'' || tag_text[q] == '"')) {
          const auto close = tag_text.find(tag_text[q], q + 1);
          if (close != std::string_view::npos) {
            return xml_unescape(tag_text.substr(q + 1, close - q - 1));
          }
        }
      }
      a += name.size();
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::string normalize_vendor_stanza(std::string_view xml, std::string_view room_jid,
                                    std::string_view stanza_id) {
  std::string out(xml);
  // Leading whitespace or an XML declaration would hide the root from the broker's MAM code.
  const auto root = out.find('<');
  if (root != std::string::npos && out.compare(root, 2, "<?") == 0) {
    const auto decl_end = out.find("?>", root);
    const auto next = decl_end == std::string::npos ? decl_end : out.find('<', decl_end);
    out.erase(0, next == std::string::npos ? root : next);
  } else if (root != std::string::npos) {
    out.erase(0, root);
  }
  // Only a <message/> root is ours to change: anything else is left as it was, for validation
  // to judge (it was edited blindly before, which turned a well-formed <x/> into "<x>…</message>").
  while (!out.empty() && std::string_view(" \t\r\n").find(out.back()) != std::string_view::npos) {
    out.pop_back();
  }
  constexpr std::string_view kMessage = "<message";
  if (out.compare(0, kMessage.size(), kMessage) != 0 || out.size() == kMessage.size() ||
      std::string_view(" \t\r\n/>").find(out[kMessage.size()]) == std::string_view::npos) {
    return std::string(xml);
  }
  const auto root_end = out.find('>');
  if (root_end != std::string::npos) {
    for (const std::string_view decl : {std::string_view(" xmlns='jabber:client'"),
                                        std::string_view(" xmlns=\"jabber:client\"")}) {
      const auto at = out.find(decl);
      if (at != std::string::npos && at < root_end) {
        out.erase(at, decl.size());
        break;
      }
    }
  }
  const auto by = find_attr(out, "<stanza-id", "by");
  if (by && to_lower(*by) == to_lower(room_jid)) {
    return out;
  }
  const std::string sid = "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"" + xml_escape(stanza_id) +
                          "\" by=\"" + xml_escape(room_jid) + "\"/>";
  const auto close = out.rfind("</message>");
  if (close != std::string::npos) {
    out.insert(close, sid);
  } else if (out.size() >= 2 && out.compare(out.size() - 2, 2, "/>") == 0) {
    out.erase(out.size() - 2);
    out += ">" + sid + "</message>";
  }
  return out;
}

std::string synthesize_stanza(std::string_view room_jid, std::string_view nick,
                              std::string_view body, std::string_view stanza_id) {
  std::string from(room_jid);
  if (!nick.empty()) {
    from += "/";
    from += nick;
  }
  return "<message from=\"" + xml_escape(from) + "\" type=\"groupchat\"><body>" + xml_escape(body) +
         "</body><stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"" + xml_escape(stanza_id) + "\" by=\"" +
         xml_escape(room_jid) + "\"/></message>";
}

std::string vendor_config_to_json(std::string_view config_xml, bool persistent) {
  namespace json = boost::json;
  json::object o;
  o["persistent"] = persistent;
  const auto boolean = [&](std::string_view var, const char* key) {
    if (const auto v = form_value(config_xml, var)) {
      o[key] = *v == "1" || *v == "true";
    }
  };
  const auto text = [&](std::string_view var, const char* key) {
    if (const auto v = form_value(config_xml, var)) {
      o[key] = *v;
    }
  };
  const auto number = [&](std::string_view var, const char* key) {
    if (const auto v = form_value(config_xml, var)) {
      int n = 0;
      if (parse_int(*v, n) && n >= 0) {
        o[key] = n;
      } else if (*v == "none") {
        o[key] = 0;  // XEP-0045: maxusers "none" means no limit
      }
    }
  };
  text("muc#roomconfig_roomname", "name");
  text("muc#roomconfig_roomdesc", "description");
  boolean("muc#roomconfig_publicroom", "public");
  boolean("muc#roomconfig_membersonly", "members_only");
  boolean("muc#roomconfig_passwordprotectedroom", "password_protected");
  text("muc#roomconfig_roomsecret", "password");
  boolean("muc#roomconfig_moderatedroom", "moderated");
  number("muc#roomconfig_maxusers", "max_users");
  text("muc#roomconfig_whois", "whois");
  boolean("muc#roomconfig_changesubject", "change_subject");
  text("muc#roomconfig_allowpm", "allow_pm");
  number("muc#maxhistoryfetch", "history_length");
  boolean("muc#roomconfig_allowinvites", "allow_invites");
  if (const auto v = form_value(config_xml, "muc#roomconfig_persistentroom")) {
    o["persistent"] = *v == "1" || *v == "true";
  }
  return json::serialize(o);
}

std::optional<long long> parse_timestamp_ms(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (text.empty()) {
    return std::nullopt;
  }
  {
    long long ms = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec == std::errc{} && end == text.data() + text.size()) {
      return ms;
    }
  }
  if (text.size() < 16 || text[4] != '-' || text[7] != '-' ||
      (text[10] != ' ' && text[10] != 'T') || text[13] != ':') {
    return std::nullopt;
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!parse_int(text.substr(0, 4), y) || !parse_int(text.substr(5, 2), mo) ||
      !parse_int(text.substr(8, 2), d) || !parse_int(text.substr(11, 2), h) ||
      !parse_int(text.substr(14, 2), mi)) {
    return std::nullopt;
  }
  std::size_t i = 16;
  if (i < text.size() && text[i] == ':') {
    if (text.size() < i + 3 || !parse_int(text.substr(i + 1, 2), s)) {
      return std::nullopt;
    }
    i += 3;
  }
  long long ms = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    int scale = 100;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ms += (text[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  long long offset_minutes = 0;
  if (i < text.size()) {
    const char sign = text[i];
    if (sign == 'Z' && i + 1 == text.size()) {
      i = text.size();
    } else if (sign == '+' || sign == '-') {
      std::string_view tz = text.substr(i + 1);
      int th = 0, tm = 0;
      if (tz.size() >= 2 && parse_int(tz.substr(0, 2), th)) {
        tz.remove_prefix(2);
        if (!tz.empty() && tz[0] == ':') {
          tz.remove_prefix(1);
        }
        if (!tz.empty() && !parse_int(tz, tm)) {
          return std::nullopt;
        }
      } else {
        return std::nullopt;
      }
      offset_minutes = (sign == '+' ? 1 : -1) * (th * 60LL + tm);
      i = text.size();
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  const long long days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi - offset_minutes) * 60000LL + s * 1000LL + ms;
}

}  // namespace tc::merge
