// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <type_traits>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace tc::broker {

/// A few threads for CPU-heavy work that must stay off both the I/O threads and the store
/// workers: PBKDF2 for SASL PLAIN and account creation. Keeping it off the store workers means
/// a burst of logins (a reconnect storm after failover) cannot delay archive commits.
class CpuPool {
 public:
  explicit CpuPool(std::size_t threads) : pool_(threads) {}
  ~CpuPool() { pool_.join(); }

  /// Runs `fn()` on the pool and completes with its result on the token's executor.
  template <class Fn, class Token>
  auto async_run(Fn fn, Token&& token) {
    using R = std::invoke_result_t<Fn&>;
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, Fn f) {
          auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
          boost::asio::post(
              pool_, [h = std::move(handler), f = std::move(f), w = std::move(work)]() mutable {
                R result = f();
                auto ex = w.get_executor();
                boost::asio::post(ex, [h = std::move(h), r = std::move(result)]() mutable {
                  std::move(h)(std::move(r));
                });
                w.reset();
              });
        },
        token, std::move(fn));
  }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace tc::broker
