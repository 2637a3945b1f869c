#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "identity/fleet_state.h"
#include "policy/policy.h"

namespace warden::gateway {

// DecisionSnapshot is everything the gateway's hot path reads to decide: the
// compiled policy and the principals' state. It is immutable; a change builds
// a new snapshot and swaps it in whole.
struct DecisionSnapshot {
  std::shared_ptr<const policy::Policy> policy;
  std::shared_ptr<const identity::FleetState> fleet;
  uint64_t generation = 0;
};

// SnapshotHolder publishes the current DecisionSnapshot. g++ 12's
// atomic<shared_ptr> is not lock-free, so the hot path does not load it per
// packet: a reader keeps the snapshot it has and compares generation(), an
// atomic counter that set() bumps after the store, fetching again only when
// it changed.
class SnapshotHolder {
 public:
  SnapshotHolder() = default;
  explicit SnapshotHolder(std::shared_ptr<const DecisionSnapshot> s) : current_(std::move(s)) {}
  SnapshotHolder(const SnapshotHolder&) = delete;
  SnapshotHolder& operator=(const SnapshotHolder&) = delete;

  // get returns the current snapshot (may be null before the first set).
  std::shared_ptr<const DecisionSnapshot> get() const { return current_.load(std::memory_order_acquire); }
  // set replaces the current snapshot; sessions see it on their next decision.
  void set(std::shared_ptr<const DecisionSnapshot> s) {
    current_.store(std::move(s), std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  // generation changes with every set(): a reader holding the snapshot of the
  // same generation holds the current one.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::shared_ptr<const DecisionSnapshot>> current_;
  std::atomic<uint64_t> generation_{1};
};

}  // namespace warden::gateway
