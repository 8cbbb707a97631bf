// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "base/mutex.h"
#include "storage/errc.h"
#include "storage/store.h"

namespace tc::broker {

/// One blocking thread that owns one Store connection (STYLE.md 3.6). I/O threads hand it
/// work with async_call(); the result is posted back to the caller's executor, so no I/O
/// thread ever blocks on the database. The store is opened lazily and reopened with backoff
/// after it becomes unavailable; while it cannot be opened, calls fail with
/// storage::Errc::Unavailable instead of waiting.
class StoreWorker {
 public:
  StoreWorker(std::string url, std::string name);
  ~StoreWorker();
  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  /// Runs `fn(Store&)` on the worker and completes with its result (a tc::Result<T>) on the
  /// token's associated executor. `fn` must return a tc::Result.
  template <class Fn, class Token>
  auto async_call(Fn fn, Token&& token) {
    using R = std::invoke_result_t<Fn&, storage::Store&>;
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, Fn f) {
          auto state = std::make_shared<Pending<decltype(handler), Fn, R>>(std::move(handler),
                                                                            std::move(f));
          enqueue([state](storage::Store* store) { state->run(store); });
        },
        token, std::move(fn));
  }

  /// Runs `fn` on the worker thread and waits for it. For start-up and tools only.
  template <class Fn>
  auto call_blocking(Fn fn) -> std::invoke_result_t<Fn&, storage::Store&> {
    using R = std::invoke_result_t<Fn&, storage::Store&>;
    std::promise<R> done;
    enqueue([&](storage::Store* store) {
      done.set_value(store ? fn(*store) : R(boost::system::in_place_error, storage::make_error_code(storage::Errc::Unavailable)));
    });
    return done.get_future().get();
  }

  /// Number of jobs waiting (for metrics and back-pressure).
  std::size_t queued() const;

 private:
  template <class Handler, class Fn, class R>
  struct Pending {
    Pending(Handler h, Fn f)
        : handler(std::move(h)),
          fn(std::move(f)),
          work(boost::asio::make_work_guard(boost::asio::get_associated_executor(handler))) {}
    void run(storage::Store* store) {
      R result = store ? fn(*store) : R(boost::system::in_place_error, storage::make_error_code(storage::Errc::Unavailable));
      auto ex = work.get_executor();
      boost::asio::post(ex, [h = std::move(handler), r = std::move(result)]() mutable {
        std::move(h)(std::move(r));
      });
      work.reset();
    }
    Handler handler;
    Fn fn;
    boost::asio::executor_work_guard<boost::asio::associated_executor_t<Handler>> work;
  };

  using Job = std::function<void(storage::Store*)>;
  void enqueue(Job job);
  void loop();
  storage::Store* ensure_open();

  const std::string url_;
  const std::string name_;
  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Job> jobs_ TC_GUARDED_BY(mu_);
  bool stopping_ TC_GUARDED_BY(mu_) = false;
  std::unique_ptr<storage::Store> store_;  // worker thread only
  std::chrono::steady_clock::time_point next_open_attempt_{};
  std::chrono::milliseconds backoff_{100};
  std::thread thread_;
};

}  // namespace tc::broker
