// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <string>

#include "base/mutex.h"

namespace tc {

using LimitClock = std::chrono::steady_clock;

/// A token bucket: `rate` tokens a second, at most `burst` saved up. take() may drive the
/// level below zero (a stanza already read is never refused) and says how long the caller
/// should pause so that the level is back at zero: back-pressure, not rejection. Not
/// thread-safe (one per connection). rate 0 = unlimited.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst)
      : rate_(rate), burst_(std::max(burst, rate)), level_(burst_) {}

  bool unlimited() const { return rate_ <= 0; }

  /// Takes `n` tokens at `now`; returns how long to wait before reading on (0 = at once).
  std::chrono::milliseconds take(double n, LimitClock::time_point now) {
    if (unlimited()) {
      return std::chrono::milliseconds(0);
    }
    refill(now);
    level_ -= n;
    if (level_ >= 0) {
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<long long>(-level_ / rate_ * 1000.0) + 1);
  }

 private:
  void refill(LimitClock::time_point now) {
    if (last_ != LimitClock::time_point{}) {
      const double seconds = std::chrono::duration<double>(now - last_).count();
      level_ = std::min(burst_, level_ + seconds * rate_);
    }
    last_ = now;
  }

  double rate_;
  double burst_;
  double level_;
  LimitClock::time_point last_{};
};

/// Failed attempts per address in a sliding window: after `max_failures` within `window`, the
/// address must wait until the oldest of them leaves the window (login throttling, the admin
/// API's token). Thread-safe. max_failures 0 = never blocks.
class FailureThrottle {
 public:
  FailureThrottle(std::size_t max_failures, std::chrono::milliseconds window)
      : max_(max_failures), window_(window) {}

  /// How long `address` must wait before its next attempt (0 = it may try now).
  std::chrono::milliseconds blocked_for(const std::string& address, LimitClock::time_point now)
      TC_EXCLUDES(mu_) {
    if (max_ == 0) {
      return std::chrono::milliseconds(0);
    }
    MutexLock lock(mu_);
    auto it = failures_.find(address);
    if (it == failures_.end()) {
      return std::chrono::milliseconds(0);
    }
    prune(it->second, now);
    if (it->second.size() < max_) {
      if (it->second.empty()) {
        failures_.erase(it);
      }
      return std::chrono::milliseconds(0);
    }
    return std::chrono::ceil<std::chrono::milliseconds>(it->second.front() + window_ - now);
  }

  void failed(const std::string& address, LimitClock::time_point now) TC_EXCLUDES(mu_) {
    if (max_ == 0) {
      return;
    }
    MutexLock lock(mu_);
    auto& times = failures_[address];
    prune(times, now);
    times.push_back(now);
    while (times.size() > max_) {
      times.pop_front();
    }
    // Bounded memory under a spray of addresses: forget the quiet ones now and then.
    if (failures_.size() > kMaxAddresses) {
      for (auto i = failures_.begin(); i != failures_.end();) {
        prune(i->second, now);
        i = i->second.empty() ? failures_.erase(i) : std::next(i);
      }
    }
  }

  /// A success forgets the address's failures.
  void succeeded(const std::string& address) TC_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    failures_.erase(address);
  }

 private:
  static constexpr std::size_t kMaxAddresses = 100'000;

  void prune(std::deque<LimitClock::time_point>& times, LimitClock::time_point now) const {
    while (!times.empty() && times.front() + window_ <= now) {
      times.pop_front();
    }
  }

  const std::size_t max_;
  const std::chrono::milliseconds window_;
  Mutex mu_;
  std::map<std::string, std::deque<LimitClock::time_point>> failures_ TC_GUARDED_BY(mu_);
};

/// Open connections per address. Thread-safe.
class AddressCounter {
 public:
  /// Counts a connection from `address` unless it already has `max` (0 = no limit).
  bool try_add(const std::string& address, std::size_t max) TC_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto& n = open_[address];
    if (max > 0 && n >= max) {
      if (n == 0) {
        open_.erase(address);
      }
      return false;
    }
    ++n;
    return true;
  }

  void remove(const std::string& address) TC_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = open_.find(address);
    if (it != open_.end() && --it->second == 0) {
      open_.erase(it);
    }
  }

  std::size_t count(const std::string& address) TC_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = open_.find(address);
    return it == open_.end() ? 0 : it->second;
  }

 private:
  Mutex mu_;
  std::map<std::string, std::size_t> open_ TC_GUARDED_BY(mu_);
};

}  // namespace tc
