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
  return items_.size();
}

void StoreWorker::enqueue_append(storage::NewMessage message, AppendDone done) {
  {
    MutexLock lock(mu_);
    items_.push_back({Job{}, Append{std::move(message), std::move(done)}});
  }
  cv_.notify_one();
}

void StoreWorker::run_appends(std::vector<Append>& batch) {
  Result<std::vector<std::int64_t>> seqs = storage::make_error_code(storage::Errc::Unavailable);
  if (storage::Store* store = ensure_open()) {
    std::vector<storage::NewMessage> messages;
    messages.reserve(batch.size());
    for (auto& a : batch) {
      messages.push_back(std::move(a.message));
    }
    seqs = store->append_messages(messages);
    if (seqs && seqs->size() != batch.size()) {
      seqs = storage::make_error_code(storage::Errc::QueryFailed);
    }
  }
  if (seqs) {
    appends_committed_ += batch.size();
    ++append_batches_;
  } else {
    spdlog::warn("{}: archive batch of {} failed: {}", name_, batch.size(), seqs.error().message());
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].done(seqs ? Result<std::int64_t>((*seqs)[i])
                       : Result<std::int64_t>(boost::system::in_place_error, seqs.error()));
  }
}

void StoreWorker::enqueue(Job job) {
  {
    MutexLock lock(mu_);
    items_.push_back({std::move(job), Append{}});
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
  std::vector<Append> batch;
  for (;;) {
    Job job;
    batch.clear();
    {
      MutexLock lock(mu_);
      cv_.wait(mu_, [this]() TC_REQUIRES(mu_) { return stopping_ || !items_.empty(); });
      if (items_.empty()) {
        return;  // stopping and drained
      }
      // Every append queued back to back while the previous transaction ran goes into one
      // transaction (group commit); a job in between keeps its place in the order.
      while (!items_.empty() && !items_.front().job && batch.size() < kMaxBatch) {
        batch.push_back(std::move(items_.front().append));
        items_.pop_front();
      }
      if (batch.empty()) {
        job = std::move(items_.front().job);
        items_.pop_front();
      }
    }
    if (!batch.empty()) {
      run_appends(batch);
    } else {
      job(ensure_open());
    }
  }
}

}  // namespace tc::broker
