#pragma once

// policy_lint.h: `warden policy lint`, warnings about a valid policy that
// probably does not say what its author meant.

#include <string>
#include <vector>

#include "policy/policy.h"

namespace warden::policy {

// LintFinding is one warning. |code| is one of never-matches,
// shadowed-by-forbid, broader-than-segment, unused-segment, unused-flow;
// |rule| the id of the rule (or the segment's or flow's name).
struct LintFinding {
  std::string code;
  std::string rule;
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
};

// lintPolicy returns the findings for |policy| in file order.
std::vector<LintFinding> lintPolicy(const Policy& policy);

}  // namespace warden::policy
