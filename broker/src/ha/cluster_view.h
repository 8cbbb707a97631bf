// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"

#include "ha/cluster_settings.h"

namespace tc::broker::ha {

/// Where each partition (a node's share of users and rooms) is served right now, as this node
/// believes it. Published by SRM on the control thread as an immutable snapshot; read by the
/// shards without locks (one atomic load per lookup).
struct ClusterSnapshot {
  struct Partition {
    std::string holder;      ///< node serving it ("" = nobody right now: parked)
    std::int64_t epoch = 0;  ///< the lease epoch this node holds it at (when holder == self)
    /// The holder is cut off from this node but alive (it renews its lease): its rooms stay
    /// there, so stanzas for them are answered at once instead of waiting (parked).
    bool unreachable = false;
  };

  std::string self;
  /// The group's members in order; the partitions are named after them. Standalone: {self}.
  std::vector<std::string> members;
  std::string group;  ///< this node's redundancy group ("" standalone)
  /// Every group of the cluster with its members in order, this node's included (empty when
  /// standalone). Partitions of every group are in `partitions`; those of other groups are
  /// learnt from their holders over the mesh.
  std::map<std::string, std::vector<std::string>, std::less<>> groups;
  /// Nodes of other groups whose data link (the mesh) is up.
  std::set<std::string, std::less<>> mesh_up;
  std::map<std::string, Partition, std::less<>> partitions;
  std::map<std::string, std::string, std::less<>> client_endpoints;  ///< node -> "host:port"
  AssignmentMode mode = AssignmentMode::Balanced;
  bool clustered = false;       ///< false: one node without a group; no fences, no link
  bool redirect_users = false;  ///< ClusterSettings::redirect_users
  bool peer_linked = false;     ///< the node-to-node link is up
  bool muc_serving = true;      ///< the text-conference service runs here
  bool router_serving = true;

  static std::uint64_t stable_hash(std::string_view text) {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (const char c : text) {
      h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    return h;
  }

  /// SplitMix64's finaliser: every output bit depends on every input bit. FNV-1a alone will
  /// not do for placement: its low bit is the XOR of the low bits of every byte, so `% 2` put
  /// similar names (r00-r09 and r10-r19) on opposite nodes in fixed patterns.
  static std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }

  /// Rendezvous (highest random weight) hashing: `key` belongs to the member with the highest
  /// mix(hash(key) ^ mix(hash(member))). Balanced, the same on every node that knows the same
  /// members, and adding a member (a third group) moves only the keys it wins.
  static const std::string& owner_of(const std::vector<std::string>& members,
                                     std::string_view key) {
    const std::uint64_t k = stable_hash(key);
    const std::string* best = &members.front();
    std::uint64_t best_score = 0;
    bool first = true;
    for (const auto& m : members) {
      const std::uint64_t score = mix(k ^ mix(stable_hash(m)));
      if (first || score > best_score || (score == best_score && m < *best)) {
        best = &m;
        best_score = score;
        first = false;
      }
    }
    return *best;
  }

  /// The partition a room of this node's group belongs to: rendezvous hashing of its bare
  /// JID over the members.
  const std::string& room_partition(std::string_view room_bare) const {
    return owner_of(members, room_bare);
  }
  /// The same for a room of `group` (any group of the cluster).
  const std::string& room_partition(std::string_view room_bare, std::string_view in_group) const {
    if (auto it = groups.find(in_group); it != groups.end() && !it->second.empty()) {
      return owner_of(it->second, room_bare);
    }
    return owner_of(members, room_bare);
  }
  /// The group a new room goes to: rendezvous hashing of its bare JID over the group names.
  std::string new_room_group(std::string_view room_bare) const {
    if (groups.empty()) {
      return group;
    }
    std::vector<std::string> names;
    for (const auto& [name, nodes] : groups) {
      names.push_back(name);
    }
    return owner_of(names, room_bare);
  }

  /// The partition a user belongs to by the assignment mode; nullopt for "none".
  std::optional<std::string> user_partition(std::string_view username) const {
    switch (mode) {
      case AssignmentMode::ActiveStandby:
        return members.front();
      case AssignmentMode::None:
        return std::nullopt;
      case AssignmentMode::Balanced:
        break;
    }
    return owner_of(members, username);
  }

  /// True when `partition`'s holder is alive but cut off from this node.
  bool unreachable(std::string_view partition) const {
    auto it = partitions.find(partition);
    return it != partitions.end() && it->second.unreachable;
  }

  /// Who serves `partition` ("" = nobody now).
  std::string holder(std::string_view partition) const {
    auto it = partitions.find(partition);
    return it == partitions.end() ? std::string() : it->second.holder;
  }

  /// The fence this node writes `partition` with, when it holds it.
  std::optional<storage::Fence> fence(std::string_view partition) const {
    if (!clustered) {
      return std::nullopt;
    }
    auto it = partitions.find(partition);
    if (it == partitions.end() || it->second.holder != self) {
      return std::nullopt;
    }
    return storage::Fence{std::string(partition), self, it->second.epoch};
  }

  std::string peer() const {
    for (const auto& m : members) {
      if (m != self) {
        return m;
      }
    }
    return {};
  }
};

class ClusterView {
 public:
  explicit ClusterView(std::string self) {
    auto s = std::make_shared<ClusterSnapshot>();
    s->self = self;
    s->members = {self};
    s->partitions[self] = {self, 0};
    current_ = std::move(s);
  }

  std::shared_ptr<const ClusterSnapshot> get() const { return std::atomic_load(&current_); }
  void publish(std::shared_ptr<const ClusterSnapshot> next) {
    std::atomic_store(&current_, std::move(next));
  }

 private:
  std::shared_ptr<const ClusterSnapshot> current_;
};

}  // namespace tc::broker::ha
