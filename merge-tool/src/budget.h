// SPDX-License-Identifier: Apache-2.0
// The process-wide byte budget for large values (issue 17, item 3: peak RSS <= 64 MB for any
// input). Workers copy rooms in parallel; a worker about to hold a stanza larger than
// kLargeValue takes its bytes from this budget first and gives them back once the stanza has
// left, so two workers never hold two 16 MB stanzas at once. Small values never wait.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace tc::merge {

/// A stanza at least this large is "large": read in pieces from PostgreSQL, checked without a
/// tree, and held only with bytes from the budget.
inline constexpr std::size_t kLargeValue = 1024 * 1024;

class ByteBudget {
 public:
  /// The one budget of the process: 24 MB of large values in flight (one 16 MB stanza plus the
  /// driver's copy of a smaller one).
  static ByteBudget& instance();

  explicit ByteBudget(std::size_t capacity) : capacity_(capacity) {}

  /// Waits until `bytes` fit; a request larger than the whole budget waits until nothing else
  /// is held, then goes alone. A thread that already holds bytes never waits (it would wait for
  /// itself): what it adds is its own value seen twice, e.g. by the driver and by a caller.
  void acquire(std::size_t bytes) {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] {
      return used_ == held_here() || used_ + bytes <= capacity_ || held_here() > 0;
    });
    used_ += bytes;
    held_here() += bytes;
  }
  void release(std::size_t bytes) {
    {
      const std::lock_guard lock(mutex_);
      used_ -= bytes;
      held_here() -= bytes;
    }
    freed_.notify_all();
  }

 private:
  static std::size_t& held_here() {
    thread_local std::size_t held = 0;
    return held;
  }

  std::size_t capacity_;
  std::size_t used_ = 0;
  std::mutex mutex_;
  std::condition_variable freed_;
};

/// Holds bytes of the budget for a scope.
class BudgetHold {
 public:
  BudgetHold() = default;
  explicit BudgetHold(std::size_t bytes) { take(bytes); }
  ~BudgetHold() { give_back(); }
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;

  void take(std::size_t bytes) {
    give_back();
    ByteBudget::instance().acquire(bytes);
    bytes_ = bytes;
  }
  void give_back() {
    if (bytes_ > 0) {
      ByteBudget::instance().release(bytes_);
      bytes_ = 0;
    }
  }

 private:
  std::size_t bytes_ = 0;
};

}  // namespace tc::merge
