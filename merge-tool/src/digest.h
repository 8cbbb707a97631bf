// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "db.h"

namespace tc::merge {

/// Order-sensitive checksum of one room's archive: SHA-256 over each message's stanza id,
/// sender nick, sender JID, kind, stanza XML and timestamp, length-prefixed, in archive order.
/// The same value on the source side (after the rewriting the merge applies) and on the target
/// side proves the same messages arrived once each, in the same order. seq is left out: the
/// merge renumbers it.
class RoomDigest {
 public:
  RoomDigest();
  ~RoomDigest();
  RoomDigest(RoomDigest&&) noexcept;
  RoomDigest& operator=(RoomDigest&&) noexcept;

  void add(std::string_view stanza_id, std::string_view sender_nick, std::string_view sender_jid,
           std::string_view kind, std::string_view stanza_xml, long long created_at);
  std::uint64_t count() const { return count_; }
  /// Hex SHA-256; finishes the digest (call once).
  std::string finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::uint64_t count_ = 0;
};

}  // namespace tc::merge
