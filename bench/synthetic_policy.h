#pragma once

// synthetic_policy.h: the issue-3 benchmark workload, shared by policy_bench
// (Warden alone) and cedar_compare (Warden and Cedar side by side), so both
// measure exactly the same policy and requests.
//
// The policy: 100 segments (seg-i = {role: role-i}), 100 services (svc-i in
// seg-i owns "s<i>/#"), 100 flows (seg-i -> svc-(i+1), publish only) and
// 1,000 rules: per segment 9 permits (publish and subscribe on
// "s<i>/${principal.id}/r<j>/#") and 1 forbid (publish on "s<i>/+/forbidden/#").
// 10,000 principals dev-k with role role-(k mod 100).

#include <cstdint>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace warden::bench {

inline constexpr int kSyntheticSegments = 100;
inline constexpr int kSyntheticRulesPerSegment = 10;  // 9 permits + 1 forbid
inline constexpr int kSyntheticPrincipals = 10000;

// syntheticPolicyYaml is the policy above in Warden's language.
std::string syntheticPolicyYaml();

// syntheticPolicyCedar is the same policy in Cedar: segments become role
// conditions, topic templates become conditions on the topic's levels
// (resource.l0, l1, ...; Cedar's `like` cannot refer to principal.id), and
// each service's missing flows become one forbid. It covers publish only:
// Cedar cannot express filter subsets (subscribe) or flows as such.
std::string syntheticPolicyCedar();

// syntheticPolicy parses syntheticPolicyYaml once (aborts on error).
const policy::Policy& syntheticPolicy();

// syntheticPrincipals: dev-0 .. dev-9999.
const std::vector<policy::Principal>& syntheticPrincipals();

struct SyntheticRequest {
  const policy::Principal* principal;
  std::string resource;
  bool permit;  // what both engines must decide
};

// syntheticRequests returns |count| requests from a fixed seed, alternately
// permitted and denied. Publish denials are a third each no_permit (another
// device's topic), forbidden and no_flow (a segment two services away).
// Subscribe requests are filters: permitted ones own-topic with "+", denied
// ones "s<i>/+/r<j>/#" (reaching other devices' topics).
std::vector<SyntheticRequest> syntheticRequests(bool subscribe, int count, uint32_t seed = 42);

}  // namespace warden::bench
