// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "shard/store_worker.h"

namespace tc::broker {

/// One data-plane thread with its own io_context and its own store worker (DESIGN.md,
/// "Concurrency"). Connections accepted onto a shard stay there for life; code running on
/// the shard is serialised without locks.
class Shard {
 public:
  /// `cluster_url`: the cluster database when it is not the group's ("" = the same).
  Shard(int index, const std::string& store_url, const std::string& cluster_url = {});
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int index() const { return index_; }
  boost::asio::io_context& context() { return context_; }
  boost::asio::any_io_executor executor() { return context_.get_executor(); }
  StoreWorker& store() { return store_; }
  /// Cluster-wide state (accounts, room placement): the cluster database's worker, or store().
  StoreWorker& cluster_store() { return cluster_store_ ? *cluster_store_ : store_; }

  /// Starts the thread. Idempotent.
  void start();
  /// Lets the io_context finish when it runs out of work, and joins the thread.
  void stop();

 private:
  int index_;
  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  StoreWorker store_;
  std::unique_ptr<StoreWorker> cluster_store_;  ///< null when the cluster's is the group's
  std::thread thread_;
};

}  // namespace tc::broker
