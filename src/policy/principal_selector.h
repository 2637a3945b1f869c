#pragma once

// principal_selector.h (private to src/policy): a rule's `principals:`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/spiffe_id.h"
#include "policy/policy.h"

namespace warden::policy {

// ValueSet is one selector value: "*" (any non-empty value) or any of a list.
struct ValueSet {
  bool any = false;
  std::vector<std::string> values;

  bool matches(std::string_view v) const {
    if (v.empty()) return false;
    if (any) return true;
    for (const std::string& s : values) {
      if (s == v) return true;
    }
    return false;
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
  // quarantine: `segment: quarantine`, the only segment of policy v0. It
  // matches quarantined principals only.
  bool quarantine = false;

  bool matches(const Principal& p) const {
    if ((kinds & kindBit(p.kind)) == 0) return false;
    if (quarantine && !p.quarantined) return false;
    if (ids && !ids->matches(p.id)) return false;
    if (roles && !roles->matches(p.role)) return false;
    for (const auto& [key, set] : labels) {
      auto it = p.labels.find(key);
      if (it == p.labels.end() || !set.matches(it->second)) return false;
    }
    return true;
  }
};

}  // namespace warden::policy
