// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tc {

/// A latency histogram that any thread may feed without a lock: fixed bucket bounds (from
/// 100 µs to 10 s, about three per decade), one relaxed atomic counter per bucket, the sum in
/// microseconds and the count. Rendered in the Prometheus text format with cumulative
/// `le` buckets in seconds, so that `histogram_quantile()` works on it.
class LatencyHistogram {
 public:
  /// Upper bounds in microseconds; a last, implicit bucket takes everything above (+Inf).
  static constexpr std::array<std::int64_t, 15> kBoundsUs = {
      100,    250,     500,     1'000,   2'500,     5'000,     10'000,    25'000,
      50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 10'000'000};

  void observe(std::chrono::steady_clock::duration d) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    const std::int64_t v = us < 0 ? 0 : us;
    std::size_t i = 0;
    while (i < kBoundsUs.size() && v > kBoundsUs[i]) {
      ++i;
    }
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(v), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }

  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  /// Appends `# TYPE name histogram` (once, when `type_line`) and the series for `labels`
  /// (e.g. `phase="Taking Over"`; "" for none). Relaxed reads: a scrape racing an observation
  /// may see the count one ahead of a bucket, which Prometheus tolerates.
  void append_prometheus(std::string& out, std::string_view name, std::string_view labels,
                         bool type_line = true) const {
    if (type_line) {
      out.append("# TYPE ").append(name).append(" histogram\n");
    }
    const std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= kBoundsUs.size(); ++i) {
      cumulative += buckets_[i].load(std::memory_order_relaxed);
      const std::string le =
          i < kBoundsUs.size() ? seconds_text(kBoundsUs[i]) : std::string("+Inf");
      out.append(name).append("_bucket{").append(labels).append(sep);
      out.append("le=\"").append(le).append("\"} ").append(std::to_string(cumulative));
      out.push_back('\n');
    }
    const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
    out.append(name).append("_sum").append(braces).push_back(' ');
    out.append(seconds_text(static_cast<std::int64_t>(sum_us_.load(std::memory_order_relaxed))));
    out.push_back('\n');
    out.append(name).append("_count").append(braces).push_back(' ');
    out.append(std::to_string(cumulative)).push_back('\n');
  }

 private:
  /// Microseconds as decimal seconds without a float's noise ("0.0025", "10", "1.5").
  static std::string seconds_text(std::int64_t us) {
    std::string frac = std::to_string(us % 1'000'000);
    frac.insert(0, 6 - frac.size(), '0');
    while (!frac.empty() && frac.back() == '0') {
      frac.pop_back();
    }
    std::string out = std::to_string(us / 1'000'000);
    if (!frac.empty()) {
      out.append(".").append(frac);
    }
    return out;
  }

  std::array<std::atomic<std::uint64_t>, kBoundsUs.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_us_{0};
  std::atomic<std::uint64_t> count_{0};
};

}  // namespace tc
