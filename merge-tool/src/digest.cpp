// SPDX-License-Identifier: Apache-2.0
#include "digest.h"

#include <charconv>
#include <cstring>
#include <stdexcept>

#include <openssl/evp.h>

namespace tc::merge {

struct RoomDigest::State {
  EVP_MD_CTX* ctx = nullptr;
  ~State() { EVP_MD_CTX_free(ctx); }
};

RoomDigest::RoomDigest() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}
RoomDigest::~RoomDigest() = default;
RoomDigest::RoomDigest(RoomDigest&&) noexcept = default;
RoomDigest& RoomDigest::operator=(RoomDigest&&) noexcept = default;

void RoomDigest::add(std::string_view stanza_id, std::string_view sender_nick,
                     std::string_view sender_jid, std::string_view kind,
                     std::string_view stanza_xml, long long created_at) {
  // One update per small field ("length:" and the value gathered), the stanza on its own.
  char buffer[512];
  std::size_t used = 0;
  const auto flush = [&] {
    EVP_DigestUpdate(state_->ctx, buffer, used);
    used = 0;
  };
  const auto field = [&](std::string_view v) {
    if (sizeof buffer - used < 24 + v.size()) {
      flush();
    }
    used = static_cast<std::size_t>(
        std::to_chars(buffer + used, buffer + sizeof buffer, v.size()).ptr - buffer);
    buffer[used++] = ':';
    if (v.size() <= sizeof buffer - used) {
      std::memcpy(buffer + used, v.data(), v.size());
      used += v.size();
    } else {
      flush();
      EVP_DigestUpdate(state_->ctx, v.data(), v.size());
    }
  };
  field(stanza_id);
  field(sender_nick);
  field(sender_jid);
  field(kind);
  field(stanza_xml);
  char number[24];
  const auto end = std::to_chars(number, number + sizeof number, created_at).ptr;
  field(std::string_view(number, static_cast<std::size_t>(end - number)));
  flush();
  ++count_;
}

std::string RoomDigest::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->ctx, md, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

}  // namespace tc::merge
