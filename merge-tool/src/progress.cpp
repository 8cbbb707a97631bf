// SPDX-License-Identifier: Apache-2.0
#include "progress.h"

#include <algorithm>
#include <cmath>

#include <unistd.h>

namespace tc::merge {

std::string group_digits(long long n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) {
      out.push_back(',');
    }
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  char buffer[32];
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", s / 60, s % 60);
  }
  return buffer;
}

std::string format_bytes(long long bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return buffer;
}

Progress::Progress(ProgressMode mode, long long total, long long already_done, std::FILE* out)
    : mode_(mode),
      out_(out),
      total_(total),
      done_(already_done),
      start_done_(already_done),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (mode_ == ProgressMode::Auto) {
    mode_ = isatty(fileno(out_)) ? ProgressMode::Bar : ProgressMode::Lines;
  }
}

void Progress::add(long long rows) {
  MutexLock lock(mu_);
  done_ += rows;
  const auto now = std::chrono::steady_clock::now();
  const auto every =
      mode_ == ProgressMode::Bar ? std::chrono::milliseconds(200) : std::chrono::milliseconds(2000);
  if (now - last_draw_ >= every) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  MutexLock lock(mu_);
  draw(true);
}

void Progress::draw(bool final) {
  if (mode_ == ProgressMode::None) {
    return;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_done_) / elapsed : 0;
  const double fraction =
      total_ > 0 ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 1.0;
  const std::string eta =
      rate > 0 ? format_duration(static_cast<double>(std::max(0LL, total_ - done_)) / rate) : "?";
  if (mode_ == ProgressMode::Bar) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(kWidth - filled), '-');
    std::fprintf(out_, "\r[%s] %5.1f%%  %s/%s msgs  %s msg/s  %s %s   ", bar.c_str(),
                 fraction * 100, group_digits(done_).c_str(), group_digits(total_).c_str(),
                 group_digits(static_cast<long long>(rate)).c_str(), final ? "elapsed" : "ETA",
                 final ? format_duration(elapsed).c_str() : eta.c_str());
    if (final) {
      std::fputc('\n', out_);
    }
  } else {
    std::fprintf(out_, "progress: %s/%s messages (%.1f%%), %s msg/s, %s %s\n",
                 group_digits(done_).c_str(), group_digits(total_).c_str(), fraction * 100,
                 group_digits(static_cast<long long>(rate)).c_str(), final ? "elapsed" : "ETA",
                 final ? format_duration(elapsed).c_str() : eta.c_str());
  }
  std::fflush(out_);
}

}  // namespace tc::merge
