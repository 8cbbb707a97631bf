// SPDX-License-Identifier: Apache-2.0
#include "shard/shard.h"

#include <spdlog/spdlog.h>

namespace tc::broker {

Shard::Shard(int index, const std::string& store_url, const std::string& cluster_url)
    : index_(index),
      work_(context_.get_executor()),
      store_(store_url, "shard" + std::to_string(index) + "-store") {
  if (!cluster_url.empty() && cluster_url != store_url) {
    cluster_store_ =
        std::make_unique<StoreWorker>(cluster_url, "shard" + std::to_string(index) + "-cluster");
  }
}

Shard::~Shard() {
  stop();
}

void Shard::start() {
  if (thread_.joinable()) {
    return;
  }
  thread_ = std::thread([this] {
    for (;;) {
      try {
        context_.run();
        return;
      } catch (const std::exception& e) {
        // Handlers do not throw by contract (STYLE.md 3.5); one that did is a bug, but one
        // bug must not take every connection of the shard down with it.
        spdlog::critical("shard {}: unhandled exception: {}", index_, e.what());
      }
    }
  });
}

void Shard::stop() {
  work_.reset();
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      return;
    }
    context_.stop();
    thread_.join();
  }
}

}  // namespace tc::broker
