// SPDX-License-Identifier: Apache-2.0
#include "shard/store_worker.h"

#include <spdlog/spdlog.h>

namespace tc::broker {

StoreWorker::StoreWorker(std::string url, std::string name)
    : url_(std::move(url)), name_(std::move(name)), thread_([this] { loop(); }) {}

StoreWorker::~StoreWorker() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::size_t StoreWorker::queued() const {
  MutexLock lock(mu_);
  return jobs_.size();
}

void StoreWorker::enqueue(Job job) {
  {
    MutexLock lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

storage::Store* StoreWorker::ensure_open() {
  if (store_) {
    return store_.get();
  }
  const auto now = std::chrono::steady_clock::now();
  if (now < next_open_attempt_) {
    return nullptr;  // backing off: fail fast rather than queue behind a dead database
  }
  auto opened = storage::open_store(url_);
  if (!opened) {
    spdlog::error("{}: cannot open store {}: {} (retrying in {} ms)", name_,
                  storage::redact_url(url_), opened.error().message(), backoff_.count());
    next_open_attempt_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(10'000));
    return nullptr;
  }
  backoff_ = std::chrono::milliseconds(100);
  store_ = std::move(*opened);
  return store_.get();
}

void StoreWorker::loop() {
  for (;;) {
    Job job;
    {
      MutexLock lock(mu_);
      cv_.wait(mu_, [this]() TC_REQUIRES(mu_) { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) {
        return;  // stopping and drained
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(ensure_open());
  }
}

}  // namespace tc::broker
