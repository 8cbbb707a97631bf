// SPDX-License-Identifier: Apache-2.0
#include "codec.h"

#include <array>

namespace tc::storage::codec {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& v : table) {
    v = -1;
  }
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr auto kDecode = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) {
      v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (pad == 1 && text[i + 2] == '=') {
      return std::nullopt;  // "x=y=" style padding
    }
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4 - pad; ++k) {
      const std::int8_t d = kDecode[static_cast<unsigned char>(text[i + k])];
      if (d < 0) {
        return std::nullopt;
      }
      v |= static_cast<std::uint32_t>(d) << (18 - 6 * k);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((v >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(v & 0xff);
    }
  }
  return out;
}

std::string_view affiliation_text(Affiliation affiliation) {
  switch (affiliation) {
    case Affiliation::Owner:
      return "owner";
    case Affiliation::Admin:
      return "admin";
    case Affiliation::Member:
      return "member";
    case Affiliation::Outcast:
      return "outcast";
    case Affiliation::None:
      break;
  }
  return "";
}

std::optional<Affiliation> parse_affiliation(std::string_view text) {
  for (const Affiliation a :
       {Affiliation::Owner, Affiliation::Admin, Affiliation::Member, Affiliation::Outcast}) {
    if (text == affiliation_text(a)) {
      return a;
    }
  }
  return std::nullopt;
}

}  // namespace tc::storage::codec
