// SPDX-License-Identifier: Apache-2.0
#include "base/histogram.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tc {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(LatencyHistogramTest, BucketsAreCumulativeInSeconds) {
  LatencyHistogram h;
  h.observe(microseconds(80));          // <= 100 µs
  h.observe(microseconds(100));         // an observation on a bound falls in that bucket
  h.observe(milliseconds(3));           // <= 5 ms
  h.observe(std::chrono::seconds(60));  // above the last bound: +Inf only
  h.observe(microseconds(-5));          // a clock that went back counts as 0
  std::string out;
  h.append_prometheus(out, "tc_x_seconds", "");
  EXPECT_NE(out.find("# TYPE tc_x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("tc_x_seconds_bucket{le=\"0.0001\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_bucket{le=\"0.0025\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_bucket{le=\"0.005\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_bucket{le=\"10\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_bucket{le=\"+Inf\"} 5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_sum 60.00318\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_x_seconds_count 5\n"), std::string::npos) << out;
  EXPECT_EQ(h.count(), 5u);
}

TEST(LatencyHistogramTest, LabelsGoBeforeLeAndOnSumAndCount) {
  LatencyHistogram h;
  h.observe(milliseconds(1));
  std::string out;
  h.append_prometheus(out, "tc_p_seconds", "phase=\"Taking Over\"", false);
  EXPECT_EQ(out.find("# TYPE"), std::string::npos);
  EXPECT_NE(out.find("tc_p_seconds_bucket{phase=\"Taking Over\",le=\"0.001\"} 1\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tc_p_seconds_sum{phase=\"Taking Over\"} 0.001\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tc_p_seconds_count{phase=\"Taking Over\"} 1\n"), std::string::npos) << out;
}

TEST(LatencyHistogramTest, ConcurrentObservationsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10'000; ++i) {
        h.observe(microseconds(i * (t + 1)));
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(h.count(), 40'000u);
  std::string out;
  h.append_prometheus(out, "tc_c_seconds", "");
  EXPECT_NE(out.find("tc_c_seconds_bucket{le=\"+Inf\"} 40000\n"), std::string::npos);
}

}  // namespace
}  // namespace tc
