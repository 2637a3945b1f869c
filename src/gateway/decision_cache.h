#pragma once

// decision_cache.h: a session's memo of the decisions it has taken under one
// policy snapshot. The owner clears it whenever the snapshot changes; an
// entry whose deadline (Decision::valid_until) has passed is dropped on
// lookup. A hit costs one hash lookup and neither copies nor allocates:
// callers get a reference that stays valid until the next insert or clear.

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"
#include "policy/policy.h"

namespace warden::gateway {

class DecisionCache {
 public:
  // kCapacity bounds a session's cache; when full, it starts over (a session
  // that keeps publishing to new topics just misses).
  static constexpr size_t kCapacity = 64;

  // find returns the decision cached for (|action|, |resource|) if its
  // deadline is after |now|, else nullptr (dropping an expired entry).
  const policy::Decision* find(std::string_view action, std::string_view resource, core::SystemTime now) {
    key_.assign(action);
    key_.push_back('\0');
    key_.append(resource);
    auto it = entries_.find(key_);
    if (it == entries_.end()) return nullptr;
    if (!it->second.valid_until || *it->second.valid_until > now) return &it->second;
    entries_.erase(it);
    return nullptr;
  }

  // insert caches |decision| under the key of the preceding find (which
  // must have missed) and returns the cached copy.
  const policy::Decision& insert(policy::Decision decision) {
    if (entries_.size() >= kCapacity) entries_.clear();
    return entries_.insert_or_assign(key_, std::move(decision)).first->second;
  }

  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  std::string key_;  // "action\0resource" of the last find, reused
  std::unordered_map<std::string, policy::Decision> entries_;
};

}  // namespace warden::gateway
