// SPDX-License-Identifier: Apache-2.0
// The definition of Room::commit_then_apply, for the room files that write to the store.
#pragma once

#include <chrono>
#include <type_traits>
#include <utility>

#include <boost/asio/bind_executor.hpp>

#include "storage/records.h"

#include "muc/room.h"
#include "shard/store_worker.h"

namespace tc::broker::muc {

template <class Write, class Apply>
void Room::commit_then_apply(Write write, Apply apply, bool archive_query) {
  LatencyHistogram* timing = nullptr;
  if (MucMetrics* m = host_.metrics()) {
    timing = archive_query ? &m->archive : &m->commit;
  }
  auto on_shard = boost::asio::bind_executor(
      host_.executor(), [self = shared_from_this(), apply = std::move(apply), timing,
                         started = std::chrono::steady_clock::now()](auto result) mutable {
        if (timing != nullptr) {
          timing->observe(std::chrono::steady_clock::now() - started);
        }
        if (self->destroyed_) {
          return;  // destroyed while the write was in flight: nothing left to apply it to
        }
        apply(std::move(result));
      });
  if constexpr (std::is_same_v<Write, storage::NewMessage>) {
    host_.store().async_append(std::move(write), std::move(on_shard));
  } else {
    host_.store().async_call(std::move(write), std::move(on_shard));
  }
}

}  // namespace tc::broker::muc
