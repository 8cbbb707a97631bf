// SPDX-License-Identifier: Apache-2.0
#include "routing/router.h"

#include <mutex>

namespace tc::broker {

std::shared_ptr<ClientStream> Router::bind(const xmpp::Jid& full,
                                           const std::shared_ptr<ClientStream>& session,
                                           std::int64_t bound_at) {
  std::shared_ptr<ClientStream> old;
  {
    std::unique_lock lock(mu_);
    auto& resources = table_[full.bare_str()];
    auto [it, inserted] = resources.try_emplace(full.resource(), Entry{session, bound_at});
    if (inserted) {
      ++count_;
    } else {
      old = it->second.session.lock();
      it->second = Entry{session, bound_at};
    }
  }
  if (remote_routes_ != nullptr) {
    remote_routes_->announce(full, bound_at, true);
  }
  return old;
}

void Router::unbind(const xmpp::Jid& full, const ClientStream* session) {
  {
    std::unique_lock lock(mu_);
    const auto bare = table_.find(full.bare_str());
    if (bare == table_.end()) {
      return;
    }
    const auto it = bare->second.find(full.resource());
    if (it == bare->second.end()) {
      return;
    }
    const auto current = it->second.session.lock();
    if (current && current.get() != session) {
      return;  // the resource was taken over by a newer session
    }
    bare->second.erase(it);
    --count_;
    if (bare->second.empty()) {
      table_.erase(bare);
    }
  }
  if (remote_routes_ != nullptr) {
    remote_routes_->announce(full, 0, false);
  }
}

std::shared_ptr<ClientStream> Router::find(const xmpp::Jid& full) const {
  std::shared_lock lock(mu_);
  if (foreign_ && full.domain() != local_domain_) {
    return foreign_;
  }
  const auto bare = table_.find(full.bare_str());
  if (bare == table_.end()) {
    return nullptr;
  }
  const auto it = bare->second.find(full.resource());
  return it == bare->second.end() ? nullptr : it->second.session.lock();
}

std::vector<std::shared_ptr<ClientStream>> Router::sessions_of(const xmpp::Jid& bare) const {
  std::vector<std::shared_ptr<ClientStream>> out;
  std::shared_lock lock(mu_);
  if (foreign_ && bare.domain() != local_domain_) {
    out.push_back(foreign_);
    return out;
  }
  const auto it = table_.find(bare.bare_str());
  if (it == table_.end()) {
    return out;
  }
  for (const auto& [resource, entry] : it->second) {
    if (auto s = entry.session.lock()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

void Router::set_foreign_route(std::string local_domain, std::shared_ptr<ClientStream> stream) {
  std::unique_lock lock(mu_);
  local_domain_ = std::move(local_domain);
  foreign_ = std::move(stream);
}

void Router::clear_foreign_route(const ClientStream* stream) {
  std::unique_lock lock(mu_);
  if (foreign_.get() == stream) {
    foreign_.reset();
  }
}

std::vector<std::shared_ptr<ClientStream>> Router::all() const {
  std::vector<std::shared_ptr<ClientStream>> out;
  std::shared_lock lock(mu_);
  out.reserve(count_);
  for (const auto& [bare, resources] : table_) {
    for (const auto& [resource, entry] : resources) {
      if (auto s = entry.session.lock()) {
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

std::vector<Router::Local> Router::locals() const {
  std::vector<Local> out;
  std::shared_lock lock(mu_);
  out.reserve(count_);
  for (const auto& [bare, resources] : table_) {
    for (const auto& [resource, entry] : resources) {
      if (entry.session.expired()) {
        continue;
      }
      if (auto full = xmpp::Jid::parse(bare + "/" + resource)) {
        out.push_back({std::move(*full), entry.bound_at});
      }
    }
  }
  return out;
}

bool Router::remote_bound(const std::string& self, const std::string& node, const xmpp::Jid& full,
                          std::int64_t bound_at) {
  std::unique_lock lock(mu_);
  auto& resources = remote_[full.bare_str()];
  auto [it, inserted] = resources.try_emplace(full.resource(), Remote{node, bound_at});
  if (inserted) {
    ++remote_count_;
  } else {
    it->second = Remote{node, bound_at};
  }
  const auto bare = table_.find(full.bare_str());
  if (bare == table_.end()) {
    return false;
  }
  const auto local = bare->second.find(full.resource());
  if (local == bare->second.end() || local->second.session.expired()) {
    return false;
  }
  return bound_at > local->second.bound_at || (bound_at == local->second.bound_at && node > self);
}

void Router::remote_unbound(const std::string& node, const xmpp::Jid& full) {
  std::unique_lock lock(mu_);
  const auto bare = remote_.find(full.bare_str());
  if (bare == remote_.end()) {
    return;
  }
  const auto it = bare->second.find(full.resource());
  if (it == bare->second.end() || it->second.node != node) {
    return;  // another node serves it now
  }
  bare->second.erase(it);
  --remote_count_;
  if (bare->second.empty()) {
    remote_.erase(bare);
  }
}

void Router::remote_drop(const std::string& node) {
  std::unique_lock lock(mu_);
  for (auto bare = remote_.begin(); bare != remote_.end();) {
    for (auto it = bare->second.begin(); it != bare->second.end();) {
      if (it->second.node == node) {
        it = bare->second.erase(it);
        --remote_count_;
      } else {
        ++it;
      }
    }
    bare = bare->second.empty() ? remote_.erase(bare) : std::next(bare);
  }
}

std::optional<std::string> Router::remote_node_of(const xmpp::Jid& full) const {
  std::shared_lock lock(mu_);
  const auto bare = remote_.find(full.bare_str());
  if (bare == remote_.end()) {
    return std::nullopt;
  }
  const auto it = bare->second.find(full.resource());
  if (it == bare->second.end()) {
    return std::nullopt;
  }
  return it->second.node;
}

std::vector<std::pair<std::string, xmpp::Jid>> Router::remote_sessions_of(
    const xmpp::Jid& bare) const {
  std::vector<std::pair<std::string, xmpp::Jid>> out;
  std::shared_lock lock(mu_);
  const auto it = remote_.find(bare.bare_str());
  if (it == remote_.end()) {
    return out;
  }
  for (const auto& [resource, where] : it->second) {
    if (auto full = xmpp::Jid::parse(it->first + "/" + resource)) {
      out.emplace_back(where.node, std::move(*full));
    }
  }
  return out;
}

std::size_t Router::remote_size() const {
  std::shared_lock lock(mu_);
  return remote_count_;
}

}  // namespace tc::broker
