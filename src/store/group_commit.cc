#include "store/group_commit.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

namespace warden::store {

GroupCommit::GroupCommit(CommitFn commit, RunBlocking run_blocking, size_t max_batch)
    : commit_(std::move(commit)), run_blocking_(std::move(run_blocking)), max_batch_(std::max<size_t>(max_batch, 1)) {}

void GroupCommit::submit(IssuanceWrite write, Done done) {
  queue_.push_back(Pending{std::move(write), std::move(done)});
  if (!in_flight_) startBatch();
}

void GroupCommit::startBatch() {
  if (queue_.empty()) return;
  in_flight_ = true;
  const size_t n = std::min(queue_.size(), max_batch_);
  auto writes = std::make_shared<std::vector<IssuanceWrite>>();
  auto dones = std::make_shared<std::vector<Done>>();
  writes->reserve(n);
  dones->reserve(n);
  for (size_t i = 0; i < n; ++i) {
    writes->push_back(std::move(queue_.front().write));
    dones->push_back(std::move(queue_.front().done));
    queue_.pop_front();
  }
  auto statuses = std::make_shared<std::vector<core::Status>>();
  auto work = [this, writes, statuses] {
    try {
      *statuses = commit_(*writes);
    } catch (const std::exception&) {
      statuses->clear();  // answered below as failed, never as committed
    }
  };
  auto then = [this, writes, dones, statuses] {
    ++stats_.transactions;
    stats_.writes += dones->size();
    stats_.largest_batch = std::max(stats_.largest_batch, dones->size());
    // A commit function that broke its contract must not answer anyone as
    // committed: every write of the batch fails.
    if (statuses->size() != dones->size()) {
      statuses->assign(dones->size(), core::internalError("group commit: the store returned no status for a write"));
    }
    in_flight_ = false;
    for (size_t i = 0; i < dones->size(); ++i) (*dones)[i]((*statuses)[i]);
    // A |done| may have submitted (and so started) the next batch already.
    if (!in_flight_) startBatch();
  };
  run_blocking_(std::move(work), std::move(then));
}

}  // namespace warden::store
