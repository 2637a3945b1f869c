#pragma once

// principal_selector.h (private to src/policy): a rule's `principals:`.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/spiffe_id.h"
#include "policy/condition.h"
#include "policy/policy.h"

namespace warden::policy {

// ValueSet is one selector value: "*" (any non-empty value) or any of a
// list, kept sorted and unique by the parser.
struct ValueSet {
  bool any = false;
  std::vector<std::string> values;

  bool matches(std::string_view v) const {
    if (v.empty()) return false;
    if (any) return true;
    auto it = std::lower_bound(values.begin(), values.end(), v,
                               [](const std::string& a, std::string_view b) { return std::string_view(a) < b; });
    return it != values.end() && *it == v;
  }
};

inline constexpr uint8_t kindBit(core::PrincipalKind k) { return uint8_t{1} << static_cast<unsigned>(k); }
inline constexpr uint8_t kAllKinds = 0b111;

// PrincipalSelector selects principals; its keys are ANDed.
struct PrincipalSelector {
  uint8_t kinds = kAllKinds;
  std::optional<ValueSet> ids;
  std::optional<ValueSet> roles;
  std::vector<std::pair<std::string, ValueSet>> labels;
  // segments: `segment: NAME` or a list (any of them). Index 0 is the
  // built-in quarantine segment, which matches quarantined principals only.
  std::vector<uint32_t> segments;
  bool quarantine = false;  // segments contains 0

  // matchesAttributes checks every key but `segment`.
  bool matchesAttributes(const Principal& p) const {
    if ((kinds & kindBit(p.kind)) == 0) return false;
    if (ids && !ids->matches(p.id)) return false;
    if (roles && !roles->matches(p.role)) return false;
    for (const auto& [key, set] : labels) {
      auto it = p.labels.find(key);
      if (it == p.labels.end() || !set.matches(it->second)) return false;
    }
    return true;
  }

  // matches checks every key; segment membership comes from |lookup|
  // (selector view: a quarantined principal keeps the segments its
  // attributes select, and is also in quarantine).
  bool matches(const Principal& p, SegmentLookup& lookup) const {
    if (!matchesAttributes(p)) return false;
    if (segments.empty()) return true;
    for (uint32_t s : segments) {
      if (lookup.selectorSegment(s)) return true;
    }
    return false;
  }

  // failedKey names the first key that does not match (for explanations).
  std::string_view failedKey(const Principal& p, SegmentLookup& lookup) const {
    if ((kinds & kindBit(p.kind)) == 0) return "kind";
    if (ids && !ids->matches(p.id)) return "id";
    if (roles && !roles->matches(p.role)) return "role";
    for (const auto& [key, set] : labels) {
      auto it = p.labels.find(key);
      if (it == p.labels.end() || !set.matches(it->second)) return "labels";
    }
    return matches(p, lookup) ? "" : "segment";
  }
};

}  // namespace warden::policy
