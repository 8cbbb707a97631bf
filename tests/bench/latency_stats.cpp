// SPDX-License-Identifier: Apache-2.0
#include "latency_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tc::bench {

namespace {

double to_ms(std::uint64_t us) {
  return static_cast<double>(us) / 1000.0;
}

}  // namespace

void LatencyStats::add(std::chrono::steady_clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  // A negative value cannot happen with one steady clock; clamp rather than wrap anyway.
  const auto clamped = std::clamp<std::int64_t>(us, 0, std::numeric_limits<std::uint32_t>::max());
  samples_us_.push_back(static_cast<std::uint32_t>(clamped));
}

void LatencyStats::merge(const LatencyStats& other) {
  samples_us_.insert(samples_us_.end(), other.samples_us_.begin(), other.samples_us_.end());
}

boost::json::object LatencyStats::summary_ms() {
  boost::json::object out;
  out["count"] = samples_us_.size();
  if (samples_us_.empty()) {
    return out;
  }
  std::sort(samples_us_.begin(), samples_us_.end());
  const auto rank = [&](double q) {
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    const auto n = samples_us_.size();
    auto index = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
    index = std::clamp<std::size_t>(index, 1, n) - 1;
    return to_ms(samples_us_[index]);
  };
  std::uint64_t sum = 0;
  for (const auto s : samples_us_) {
    sum += s;
  }
  out["mean"] =
      std::round(static_cast<double>(sum) / static_cast<double>(samples_us_.size())) / 1000.0;
  out["p50"] = rank(0.50);
  out["p90"] = rank(0.90);
  out["p99"] = rank(0.99);
  out["p999"] = rank(0.999);
  out["max"] = to_ms(samples_us_.back());
  return out;
}

}  // namespace tc::bench
