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

// SnapshotHolder publishes the current DecisionSnapshot. Readers never lock:
// get() is an atomic load of a shared_ptr, set() an atomic store.
class SnapshotHolder {
 public:
  SnapshotHolder() = default;
  explicit SnapshotHolder(std::shared_ptr<const DecisionSnapshot> s) : current_(std::move(s)) {}
  SnapshotHolder(const SnapshotHolder&) = delete;
  SnapshotHolder& operator=(const SnapshotHolder&) = delete;

  // get returns the current snapshot (may be null before the first set).
  std::shared_ptr<const DecisionSnapshot> get() const { return current_.load(std::memory_order_acquire); }
  // set replaces the current snapshot; sessions see it on their next decision.
  void set(std::shared_ptr<const DecisionSnapshot> s) { current_.store(std::move(s), std::memory_order_release); }

 private:
  std::atomic<std::shared_ptr<const DecisionSnapshot>> current_;
};

}  // namespace warden::gateway
