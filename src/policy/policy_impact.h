#pragma once

// policy_impact.h: `warden policy apply --dry-run`, the principals whose
// decisions a new policy changes, probed with the requests both policies
// talk about.

#include <string>
#include <vector>

#include "policy/policy.h"

namespace warden::policy {

// DecisionChange is one probe request whose outcome differs.
struct DecisionChange {
  std::string principal;  // its id
  std::string action;
  std::string resource;
  Decision before;
  Decision after;
};

struct PolicyImpact {
  size_t principals_checked = 0;
  size_t requests_checked = 0;
  std::vector<std::string> changed_principals;  // ids, in input order
  std::vector<DecisionChange> changes;          // at most |max_changes|
  bool truncated = false;                       // more changes than listed
};

// comparePolicies decides, for every principal of |principals| (the caller
// samples, e.g. up to 10,000), a set of probe requests under |before| and
// |after| and reports those whose permit/deny outcome or reason differs. The
// probes: mqtt:connect with the principal's id; for each topic action, every
// resource pattern of either policy naming it, expanded for the principal
// (as a filter for subscribe, as a concrete topic otherwise, wildcards
// replaced by a sample level); every service pattern; and every admin action
// on "*" for users. |ctx| is the request context (time of the dry run).
PolicyImpact comparePolicies(const Policy& before, const Policy& after, const std::vector<Principal>& principals,
                             const Context& ctx, size_t max_changes = 1000);

}  // namespace warden::policy
