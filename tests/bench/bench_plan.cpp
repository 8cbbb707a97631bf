// SPDX-License-Identifier: Apache-2.0
#include "bench_plan.h"

#include <algorithm>

namespace tc::bench {

Plan::Plan(const BenchOptions& options)
    : clients_(options.clients == 0 ? options.rooms * options.occupants : options.clients),
      rooms_(options.rooms),
      occupants_(options.occupants),
      senders_(options.senders),
      user_prefix_(options.user_prefix),
      room_prefix_(options.room_prefix),
      conference_domain_(options.conference_domain()) {}

std::vector<Plan::Membership> Plan::memberships(std::size_t client) const {
  std::vector<Membership> out;
  for (std::size_t slot = client; slot < rooms_ * occupants_; slot += clients_) {
    out.push_back({slot / occupants_, slot % occupants_});
  }
  return out;
}

std::string Plan::user(std::size_t client) const {
  return user_prefix_ + std::to_string(client);
}

std::string Plan::room_jid(std::size_t room) const {
  return room_prefix_ + std::to_string(room) + "@" + conference_domain_;
}

void ThreadStats::merge(const ThreadStats& other) {
  commit.merge(other.commit);
  delivery.merge(other.delivery);
  setup.merge(other.setup);
  sent += other.sent;
  committed += other.committed;
  refused += other.refused;
  delivered += other.delivered;
  out_of_order += other.out_of_order;
  unexpected += other.unexpected;
  for (const auto& [kind, n] : other.errors) {
    errors[kind] += n;
  }
  last_commit = std::max(last_commit, other.last_commit);
  last_delivery = std::max(last_delivery, other.last_delivery);
}

}  // namespace tc::bench
