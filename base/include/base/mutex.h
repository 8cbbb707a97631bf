// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <mutex>

// Clang thread-safety annotations (no-ops under GCC), as LevelDB's port/thread_annotations.h.
#if defined(__clang__)
#define TC_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TC_THREAD_ANNOTATION(x)
#endif
#define TC_GUARDED_BY(x) TC_THREAD_ANNOTATION(guarded_by(x))
#define TC_REQUIRES(...) TC_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define TC_EXCLUDES(...) TC_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

namespace tc {

/// std::mutex with a capability annotation so that Clang's -Wthread-safety can check users.
class TC_THREAD_ANNOTATION(capability("mutex")) Mutex {
 public:
  void lock() TC_THREAD_ANNOTATION(acquire_capability()) { mu_.lock(); }
  void unlock() TC_THREAD_ANNOTATION(release_capability()) { mu_.unlock(); }

 private:
  std::mutex mu_;
};

/// Scoped lock over tc::Mutex.
class TC_THREAD_ANNOTATION(scoped_lockable) MutexLock {
 public:
  explicit MutexLock(Mutex& mu) TC_THREAD_ANNOTATION(acquire_capability(mu)) : mu_(mu) {
    mu_.lock();
  }
  ~MutexLock() TC_THREAD_ANNOTATION(release_capability()) { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace tc
