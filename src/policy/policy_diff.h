#pragma once

// policy_diff.h: `warden policy diff`, what changed in meaning between two
// policies, plus a line diff of their texts.

#include <string>
#include <vector>

#include "policy/policy.h"

namespace warden::policy {

struct NameDiff {
  std::vector<std::string> added, removed, changed;
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

struct PolicyDiff {
  NameDiff rules;     // by rule id
  NameDiff segments;  // by name
  NameDiff services;  // by name
  NameDiff flows;     // by flow name (its id, else FROM->TO)
  bool timezone_changed = false;
  std::string text;   // a line diff ("-old", "+new", " same"), "" if the texts are equal
  bool identical() const {
    return rules.empty() && segments.empty() && services.empty() && flows.empty() && !timezone_changed;
  }
};

// diffPolicies compares |a| (old) with |b| (new).
PolicyDiff diffPolicies(const Policy& a, const Policy& b);

}  // namespace warden::policy
