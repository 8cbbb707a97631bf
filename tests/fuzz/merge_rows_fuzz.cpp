// SPDX-License-Identifier: Apache-2.0
// tc-merge's source rows (merge-tool/src): what merge does to a row on its way into the target,
// checked against what validation said about it. The input is NUL-separated fields: a stored
// stanza, a room's bare JID (used when validation would accept it), a nick or body, a timestamp
// column, then any further columns.
//  - The row goes through PostgreSQL's COPY text format and reads back field for field (a
//    field of one \x01 byte stands for NULL).
//  - A stanza validation accepts (stanza_is_one_element) can be renamed (merge cannot fail on
//    it), is still one element afterwards, and differs only in address attributes (`from`,
//    `to`, `jid`, `by`) whose value was the room or room/nick: names, namespaces, text and
//    every other attribute are the same, and a renamed value is the new room with the old nick.
//  - A vendor <message/> validation accepts is still one element after normalisation, and a
//    stanza synthesised from the vendor's columns is one element whose body reads back as the
//    column whenever the column is text XML can hold.
//  - Timestamps read without undefined behaviour; digits alone read as that many ms.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/jid.h"
#include "xmpp/stream_parser.h"

#include "copy_text.h"
#include "engine.h"
#include "transform.h"

namespace {

using tc::xmpp::XmlElement;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::vector<std::string_view> split(std::string_view input) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto nul = input.find('\0');
    fields.push_back(input.substr(0, nul));
    if (nul == std::string_view::npos) {
      return fields;
    }
    input.remove_prefix(nul + 1);
  }
}

void check_copy_round_trip(const std::vector<std::string_view>& fields) {
  tc::merge::Row row;
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    line += i == 0 ? "" : "\t";
    if (fields[i] == "\x01") {
      row.emplace_back(std::nullopt);
      line += "\\N";
    } else {
      row.emplace_back(std::string(fields[i]));
      tc::merge::append_copy_field(line, fields[i]);
    }
  }
  line += '\n';
  tc::merge::Row back;
  check(tc::merge::decode_copy_line(line, back));
  check(back == row);
}

bool address_attribute(std::string_view name) {
  return name == "from" || name == "to" || name == "jid" || name == "by";
}

/// `renamed` is `original` with the room renamed in address attributes and nothing else.
void check_only_addresses(const XmlElement& original, const XmlElement& renamed,
                          std::string_view room, std::string_view new_room) {
  check(original.name() == renamed.name() && original.xmlns() == renamed.xmlns());
  if (original.is_text()) {
    check(original.text() == renamed.text());
    return;
  }
  check(original.attrs().size() == renamed.attrs().size());
  const std::string lower_room = tc::merge::to_lower(room);
  for (std::size_t i = 0; i < original.attrs().size(); ++i) {
    const auto& [key, value] = original.attrs()[i];
    const auto& [new_key, new_value] = renamed.attrs()[i];
    check(key == new_key);
    if (value == new_value) {
      continue;
    }
    check(address_attribute(key));
    const std::string lower = tc::merge::to_lower(value);
    const bool bare = lower == lower_room;
    const bool occupant = lower.size() > lower_room.size() &&
                          lower.compare(0, lower_room.size(), lower_room) == 0 &&
                          lower[lower_room.size()] == '/';
    check(bare || occupant);
    check(new_value == std::string(new_room) + value.substr(room.size()));
  }
  check(original.nodes().size() == renamed.nodes().size());
  for (std::size_t i = 0; i < original.nodes().size(); ++i) {
    check_only_addresses(original.nodes()[i], renamed.nodes()[i], room, new_room);
  }
}

/// Whether validation accepts `room` as a room's JID (check_data.cpp: RFC 7622, bare, with a
/// local part); merge never meets a room it did not.
bool valid_room(std::string_view room) {
  const auto jid = tc::xmpp::Jid::parse(room);
  return jid && jid->resource().empty() && !jid->local().empty();
}

void check_rename(std::string_view stanza, std::string_view room) {
  if (!valid_room(room) || !tc::merge::stanza_is_one_element(stanza)) {
    return;
  }
  const std::string new_room = "renamed-" + std::string(room);
  std::string renamed(stanza);
  const auto count = tc::merge::rename_room_addresses(renamed, room, new_room);
  check(count.has_value());  // validation said ready: merge must not fail on it
  check(tc::merge::stanza_is_one_element(renamed));
  if (*count == 0) {
    check(renamed == stanza);
    return;
  }
  const auto before = tc::xmpp::parse_element(stanza);
  const auto after = tc::xmpp::parse_element(renamed);
  check(before.has_value() && after.has_value());
  check_only_addresses(*before, *after, room, new_room);
}

/// Whether `text` is what an XML document can carry as character data and give back unchanged:
/// UTF-8 per RFC 3629 (checked by expat below), no C0 controls but tab, newline and carriage
/// return (which an XML parser turns into a newline unless written as a reference), none of
/// U+FFFE and U+FFFF.
bool xml_can_hold(std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && u != '\t' && u != '\n' && u != '\r') {
      return false;
    }
  }
  return text.find("\xEF\xBF\xBE") == std::string_view::npos &&
         text.find("\xEF\xBF\xBF") == std::string_view::npos;
}

void check_vendor(std::string_view stanza, std::string_view room, std::string_view body) {
  if (!valid_room(room)) {
    return;
  }
  if (const auto root = tc::xmpp::parse_element(stanza);
      root && root->name() == "message" && tc::merge::stanza_is_one_element(stanza)) {
    check(tc::merge::stanza_is_one_element(
        tc::merge::normalize_vendor_stanza(stanza, room, "tc-import-1")));
  }
  const std::string made = tc::merge::synthesize_stanza(room, "nick", body, "tc-import-2");
  if (!xml_can_hold(body) || !tc::merge::stanza_is_one_element(made)) {
    // Not text XML can hold (expat refuses invalid UTF-8): validation reports the stanza.
    return;
  }
  const auto parsed = tc::xmpp::parse_element(made);
  check(parsed.has_value());
  const XmlElement* element = parsed->child("body");
  check(element != nullptr && element->text() == body);
}

void check_timestamp(std::string_view text) {
  const auto ms = tc::merge::parse_timestamp_ms(text);
  long long digits = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), digits);
  if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && text[0] != '-') {
    check(ms.has_value() && *ms == digits);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto fields = split(input);
  check_copy_round_trip(fields);
  const std::string_view stanza = fields[0];
  const std::string_view room = fields.size() > 1 ? fields[1] : "room@conference.localhost";
  const std::string_view body = fields.size() > 2 ? fields[2] : "";
  check_rename(stanza, room);
  check_vendor(stanza, room, body);
  if (fields.size() > 3) {
    check_timestamp(fields[3]);
  }
  return 0;
}
