#pragma once

// group_commit.h: GroupCommit batches the issuance writes of concurrent
// requests (EST simpleenroll / simplereenroll) into one store transaction,
// so N requests cost one fsync instead of N.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "core/status.h"
#include "store/store.h"

namespace warden::store {

// GroupCommit queues IssuanceWrites on its owner's thread (the I/O thread)
// and hands them to the worker in batches: at most one batch is in flight;
// what arrives meanwhile waits and forms the next batch. A request's |done|
// runs on the owner's thread only after the transaction holding its write has
// committed (or failed), never before: a certificate is never answered that
// a crash could lose. Completions run in submission order, so whatever the
// callers do next (publishing change scopes) keeps commit order.
//
// Not thread-safe: submit() and every callback run on the owner's thread.
// It holds no Asio: |run_blocking| is the server's worker hand-off.
class GroupCommit {
 public:
  // CommitFn records a batch in one transaction and returns one status per
  // write (Store::commitIssuances).
  using CommitFn = std::function<std::vector<core::Status>(const std::vector<IssuanceWrite>&)>;
  // RunBlocking runs |work| on the worker thread, then |then| on the owner's.
  using RunBlocking = std::function<void(std::function<void()> work, std::function<void()> then)>;
  using Done = std::function<void(core::Status)>;

  struct Stats {
    uint64_t writes = 0;        // writes committed or refused
    uint64_t transactions = 0;  // batches handed to CommitFn (each one transaction, one fsync)
    size_t largest_batch = 0;
  };

  // GroupCommit commits through |commit| on |run_blocking|'s worker, at most
  // |max_batch| writes a transaction (1: no grouping, one transaction per
  // request, as before group commit; 0 is taken as 1).
  GroupCommit(CommitFn commit, RunBlocking run_blocking, size_t max_batch);
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // submit queues |write|; |done| gets its status after its transaction.
  void submit(IssuanceWrite write, Done done);

  const Stats& stats() const { return stats_; }
  size_t maxBatch() const { return max_batch_; }

 private:
  struct Pending {
    IssuanceWrite write;
    Done done;
  };
  void startBatch();

  CommitFn commit_;
  RunBlocking run_blocking_;
  size_t max_batch_;
  std::deque<Pending> queue_;
  bool in_flight_ = false;
  Stats stats_;
};

}  // namespace warden::store
