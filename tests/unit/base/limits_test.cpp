// SPDX-License-Identifier: Apache-2.0
#include "base/limits.h"

#include <gtest/gtest.h>

namespace tc {
namespace {

using namespace std::chrono_literals;

const LimitClock::time_point t0 = LimitClock::time_point{} + 1h;

TEST(TokenBucket, BurstPassesThenPausesInProportionToTheDebt) {
  TokenBucket bucket(10, 20);  // 10 a second, 20 saved up
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(bucket.take(1, t0), 0ms) << i;
  }
  // 5 over: half a second to earn them back (rounded up to the next millisecond).
  const auto pause = bucket.take(5, t0);
  EXPECT_GE(pause, 500ms);
  EXPECT_LE(pause, 501ms);
  // After that half second the level is back at zero; one more costs a tenth.
  EXPECT_GE(bucket.take(1, t0 + 500ms), 100ms);
}

TEST(TokenBucket, RefillsUpToTheBurstOnly) {
  TokenBucket bucket(10, 20);
  EXPECT_EQ(bucket.take(20, t0), 0ms);
  // An hour idle saves 20, not 36,000.
  EXPECT_EQ(bucket.take(20, t0 + 1h), 0ms);
  EXPECT_GT(bucket.take(1, t0 + 1h), 0ms);
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  TokenBucket bucket(0, 0);
  EXPECT_TRUE(bucket.unlimited());
  EXPECT_EQ(bucket.take(1e9, t0), 0ms);
}

TEST(FailureThrottle, BlocksAfterMaxFailuresUntilTheOldestLeavesTheWindow) {
  FailureThrottle throttle(3, 60s);
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0), 0ms);
  throttle.failed("192.0.2.7", t0);
  throttle.failed("192.0.2.7", t0 + 10s);
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0 + 10s), 0ms);
  throttle.failed("192.0.2.7", t0 + 20s);
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0 + 20s), 40s);
  // Another address is not affected.
  EXPECT_EQ(throttle.blocked_for("192.0.2.8", t0 + 20s), 0ms);
  // The first failure leaves the window at t0 + 60 s.
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0 + 59s), 1s);
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0 + 60s), 0ms);
  throttle.succeeded("192.0.2.7");
  throttle.failed("192.0.2.7", t0 + 61s);
  EXPECT_EQ(throttle.blocked_for("192.0.2.7", t0 + 61s), 0ms);
}

TEST(FailureThrottle, ZeroMaxNeverBlocks) {
  FailureThrottle throttle(0, 60s);
  for (int i = 0; i < 100; ++i) {
    throttle.failed("a", t0);
  }
  EXPECT_EQ(throttle.blocked_for("a", t0), 0ms);
}

TEST(AddressCounter, CountsPerAddressUpToTheLimit) {
  AddressCounter counter;
  EXPECT_TRUE(counter.try_add("a", 2));
  EXPECT_TRUE(counter.try_add("a", 2));
  EXPECT_FALSE(counter.try_add("a", 2));
  EXPECT_TRUE(counter.try_add("b", 2));
  EXPECT_EQ(counter.count("a"), 2u);
  counter.remove("a");
  EXPECT_TRUE(counter.try_add("a", 2));
  EXPECT_TRUE(counter.try_add("c", 0)) << "0 = no limit";
  counter.remove("b");
  EXPECT_EQ(counter.count("b"), 0u);
}

}  // namespace
}  // namespace tc
