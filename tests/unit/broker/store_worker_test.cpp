// SPDX-License-Identifier: Apache-2.0
#include "shard/store_worker.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace tc::broker {
namespace {

TEST(StoreWorker, ResultIsPostedToTheBoundExecutor) {
  StoreWorker worker("sqlite::memory:", "test");
  boost::asio::io_context io;
  bool done = false;
  std::thread::id completed_on;
  worker.async_call([](storage::Store& s) { return s.migrate(); },
                    boost::asio::bind_executor(io, [&](Result<void> r) {
                      EXPECT_TRUE(r.has_value());
                      done = true;
                      completed_on = std::this_thread::get_id();
                    }));
  // The work guard keeps io.run() waiting until the completion arrives; bounded by run_for.
  io.run_for(std::chrono::seconds(20));
  EXPECT_TRUE(done);
  EXPECT_EQ(completed_on, std::this_thread::get_id());
}

TEST(StoreWorker, RunsJobsInOrder) {
  StoreWorker worker("sqlite::memory:", "test");
  boost::asio::io_context io;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    worker.async_call([i](storage::Store&) { return Result<int>(i); },
                      boost::asio::bind_executor(io, [&](Result<int> r) { order.push_back(*r); }));
  }
  io.run_for(std::chrono::seconds(20));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(StoreWorker, BadUrlFailsCallsWithoutBlocking) {
  StoreWorker worker("nosuchdb://x", "test");
  auto r = worker.call_blocking([](storage::Store& s) { return s.ping(); });
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error(), storage::Errc::Unavailable);
}

}  // namespace
}  // namespace tc::broker
