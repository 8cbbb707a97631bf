// SPDX-License-Identifier: Apache-2.0
#include "routing/router.h"

#include <mutex>

namespace tc::broker {

std::shared_ptr<Session> Router::bind(const xmpp::Jid& full,
                                      const std::shared_ptr<Session>& session) {
  std::unique_lock lock(mu_);
  auto& resources = table_[full.bare_str()];
  auto [it, inserted] = resources.try_emplace(full.resource(), session);
  if (inserted) {
    ++count_;
    return nullptr;
  }
  auto old = it->second.lock();
  it->second = session;
  return old;
}

void Router::unbind(const xmpp::Jid& full, const Session* session) {
  std::unique_lock lock(mu_);
  const auto bare = table_.find(full.bare_str());
  if (bare == table_.end()) {
    return;
  }
  const auto it = bare->second.find(full.resource());
  if (it == bare->second.end()) {
    return;
  }
  const auto current = it->second.lock();
  if (current && current.get() != session) {
    return;  // the resource was taken over by a newer session
  }
  bare->second.erase(it);
  --count_;
  if (bare->second.empty()) {
    table_.erase(bare);
  }
}

std::shared_ptr<Session> Router::find(const xmpp::Jid& full) const {
  std::shared_lock lock(mu_);
  const auto bare = table_.find(full.bare_str());
  if (bare == table_.end()) {
    return nullptr;
  }
  const auto it = bare->second.find(full.resource());
  return it == bare->second.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<Session>> Router::sessions_of(const xmpp::Jid& bare) const {
  std::vector<std::shared_ptr<Session>> out;
  std::shared_lock lock(mu_);
  const auto it = table_.find(bare.bare_str());
  if (it == table_.end()) {
    return out;
  }
  for (const auto& [resource, weak] : it->second) {
    if (auto s = weak.lock()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::vector<std::shared_ptr<Session>> Router::all() const {
  std::vector<std::shared_ptr<Session>> out;
  std::shared_lock lock(mu_);
  out.reserve(count_);
  for (const auto& [bare, resources] : table_) {
    for (const auto& [resource, weak] : resources) {
      if (auto s = weak.lock()) {
        out.push_back(std::move(s));
      }
    }
  }
  return out;
}

std::size_t Router::size() const {
  std::shared_lock lock(mu_);
  return count_;
}

}  // namespace tc::broker
