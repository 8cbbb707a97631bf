// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

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
          auto state =
              std::make_shared<Pending<decltype(handler), Fn, R>>(std::move(handler), std::move(f));
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
      done.set_value(store ? fn(*store)
                           : R(boost::system::in_place_error,
                               storage::make_error_code(storage::Errc::Unavailable)));
    });
    return done.get_future().get();
  }

  /// Appends one archived message. Appends queued together are written in one transaction
  /// (group commit: many messages, one fsync), in queue order, and complete in that order
  /// with the message's seq, or with the batch's error. Completion on the token's executor.
  template <class Token>
  auto async_append(storage::NewMessage message, Token&& token) {
    using R = Result<std::int64_t>;
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, storage::NewMessage m) {
          auto state = std::make_shared<PendingAppend<decltype(handler)>>(std::move(handler));
          enqueue_append(std::move(m), [state](R r) { state->complete(std::move(r)); });
        },
        token, std::move(message));
  }

  /// Number of jobs waiting (for metrics and back-pressure).
  std::size_t queued() const;
  /// Appends committed so far, and transactions used for them (group-commit efficiency).
  std::uint64_t appends_committed() const { return appends_committed_.load(); }
  std::uint64_t append_batches() const { return append_batches_.load(); }

  /// Most messages written in one transaction.
  static constexpr std::size_t kMaxBatch = 512;

 private:
  template <class Handler, class Fn, class R>
  struct Pending {
    Pending(Handler h, Fn f)
        : handler(std::move(h)),
          fn(std::move(f)),
          work(boost::asio::make_work_guard(boost::asio::get_associated_executor(handler))) {}
    void run(storage::Store* store) {
      R result = store ? fn(*store)
                       : R(boost::system::in_place_error,
                           storage::make_error_code(storage::Errc::Unavailable));
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

  template <class Handler>
  struct PendingAppend {
    explicit PendingAppend(Handler h)
        : handler(std::move(h)),
          work(boost::asio::make_work_guard(boost::asio::get_associated_executor(handler))) {}
    void complete(Result<std::int64_t> r) {
      auto ex = work.get_executor();
      boost::asio::post(ex, [h = std::move(handler), r]() mutable { std::move(h)(r); });
      work.reset();
    }
    Handler handler;
    boost::asio::executor_work_guard<boost::asio::associated_executor_t<Handler>> work;
  };

  using Job = std::function<void(storage::Store*)>;
  using AppendDone = std::function<void(Result<std::int64_t>)>;
  struct Append {
    storage::NewMessage message;
    AppendDone done;
  };
  /// One queued item: a job, or (when `job` is empty) an append. One FIFO for both, so a
  /// room row saved before a message is written before it.
  struct Item {
    Job job;
    Append append;
  };
  void enqueue(Job job);
  void enqueue_append(storage::NewMessage message, AppendDone done);
  void run_appends(std::vector<Append>& batch);
  void loop();
  storage::Store* ensure_open();

  const std::string url_;
  const std::string name_;
  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Item> items_ TC_GUARDED_BY(mu_);
  std::atomic<std::uint64_t> appends_committed_{0};
  std::atomic<std::uint64_t> append_batches_{0};
  bool stopping_ TC_GUARDED_BY(mu_) = false;
  std::unique_ptr<storage::Store> store_;  // worker thread only
  std::chrono::steady_clock::time_point next_open_attempt_{};
  std::chrono::milliseconds backoff_{100};
  std::thread thread_;
};

}  // namespace tc::broker
