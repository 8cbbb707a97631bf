// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "base/mutex.h"

namespace tc::merge {

enum class ProgressMode { Auto, Bar, Lines, None };

/// Copy progress on stderr: a redrawn bar with rate and ETA when stderr is a terminal (or
/// Mode::Bar), otherwise a plain line every few seconds. The rate counts this run only, so a
/// resumed merge does not report the rows an earlier run copied as instant. Thread-safe.
class Progress {
 public:
  Progress(ProgressMode mode, long long total, long long already_done, std::FILE* out = stderr);
  void add(long long rows);
  /// Draws the final state and ends the line.
  void finish();

 private:
  void draw(bool final) TC_REQUIRES(mu_);

  Mutex mu_;
  ProgressMode mode_;
  std::FILE* out_;
  long long total_;
  long long done_ TC_GUARDED_BY(mu_);
  long long start_done_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_ TC_GUARDED_BY(mu_);
};

/// 1234567 -> "1,234,567".
std::string group_digits(long long n);
/// Seconds as "1:02:03" / "2:03".
std::string format_duration(double seconds);
/// Bytes as "1.5 MB".
std::string format_bytes(long long bytes);

}  // namespace tc::merge
