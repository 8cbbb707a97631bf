// SPDX-License-Identifier: Apache-2.0
#include "ha/mesh.h"

#include <spdlog/spdlog.h>

namespace tc::broker::ha {

Mesh::Mesh(boost::asio::io_context& control, std::string self, std::string secret)
    : control_(control), self_(std::move(self)), secret_(std::move(secret)) {}

Mesh::~Mesh() {
  stop();
}

void Mesh::set_nodes(std::map<std::string, std::string> node_groups) {
  node_groups.erase(self_);
  for (auto it = links_.begin(); it != links_.end();) {
    if (node_groups.count(it->first) == 0) {
      spdlog::info("mesh: {} left the cluster; dropping its link", it->first);
      it->second.link->stop();
      // Kept (stopped) rather than destroyed: its timers and dials may still be pending on
      // the control context and look at it when they fire.
      retired_.push_back(std::move(it->second.link));
      const std::string node = it->first;
      it = links_.erase(it);
      if (on_state_) {
        on_state_(node, false);
      }
    } else {
      ++it;
    }
  }
  for (const auto& [node, group] : node_groups) {
    if (links_.count(node) > 0) {
      continue;
    }
    Node n;
    n.link = std::make_unique<PeerLink>(control_, self_, secret_, /*data_only=*/true);
    n.link->set_connect_timeout(connect_timeout_);
    n.link->set_cut(cut_);
    n.link->on_state([this, name = node](PeerLink::Channel, bool up) {
      auto it = links_.find(name);
      if (it == links_.end()) {
        return;
      }
      if (up) {
        it->second.heard = std::chrono::steady_clock::now();
      }
      if (on_state_) {
        on_state_(name, up);
      }
    });
    links_.emplace(node, std::move(n));
  }
  groups_ = std::move(node_groups);
}

void Mesh::set_endpoint(const std::string& node, const std::string& endpoint) {
  auto it = links_.find(node);
  if (it == links_.end() || endpoint.empty() || it->second.endpoint == endpoint) {
    return;
  }
  it->second.endpoint = endpoint;
  it->second.link->set_peer(node, endpoint);
}

std::string Mesh::group_of(const std::string& node) const {
  auto it = groups_.find(node);
  return it == groups_.end() ? std::string() : it->second;
}

bool Mesh::send_raw(const std::string& node, std::string xml) {
  auto it = links_.find(node);
  return it != links_.end() && it->second.link->send_raw(PeerLink::Channel::Data, std::move(xml));
}

bool Mesh::up(const std::string& node) const {
  auto it = links_.find(node);
  return it != links_.end() && it->second.link->up(PeerLink::Channel::Data);
}

std::vector<std::string> Mesh::up_nodes() const {
  std::vector<std::string> out;
  for (const auto& [node, n] : links_) {
    if (n.link->up(PeerLink::Channel::Data)) {
      out.push_back(node);
    }
  }
  return out;
}

void Mesh::heard(const std::string& node, TimePoint now) {
  if (auto it = links_.find(node); it != links_.end()) {
    it->second.heard = now;
  }
}

void Mesh::tick(TimePoint now, std::chrono::milliseconds timeout, const std::string& ping) {
  for (auto& [node, n] : links_) {
    if (!n.link->up(PeerLink::Channel::Data)) {
      continue;
    }
    if (n.heard != TimePoint{} && now - n.heard > timeout) {
      spdlog::warn("mesh: {} has been silent for {} ms; resetting its link", node,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - n.heard).count());
      n.heard = now;
      n.link->reset();
      continue;
    }
    n.link->send_raw(PeerLink::Channel::Data, ping);
  }
}

void Mesh::set_cut(bool cut) {
  cut_ = cut;
  for (auto& [node, n] : links_) {
    n.link->set_cut(cut);
  }
}

void Mesh::stop() {
  for (auto& [node, n] : links_) {
    n.link->stop();
  }
}

}  // namespace tc::broker::ha
