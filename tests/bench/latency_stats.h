// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/json/object.hpp>

namespace tc::bench {

/// Latency samples in microseconds. Every sample is kept (4 bytes each), so percentiles are
/// exact; a 30 s run delivering 100k stanzas/s holds about 12 MB. Not thread-safe: each I/O
/// thread fills its own and merge() combines them once the threads have stopped.
class LatencyStats {
 public:
  void add(std::chrono::steady_clock::duration d);
  void merge(const LatencyStats& other);
  std::size_t count() const { return samples_us_.size(); }

  /// {"count", "mean", "p50", "p90", "p99", "p999", "max"} in milliseconds (microsecond
  /// precision, nearest-rank percentiles); only "count" when there are no samples.
  /// Sorts the samples.
  boost::json::object summary_ms();

 private:
  std::vector<std::uint32_t> samples_us_;
};

}  // namespace tc::bench
