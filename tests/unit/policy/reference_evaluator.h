#pragma once

// reference_evaluator.h: a straightforward evaluator of the policy
// language for the differential test. It follows issue 3's decision order
// literally: every rule in file order (no per-action lists, no topic tries),
// every service and every flow, segment membership recomputed on every
// question (no memo). It shares with the engine only the per-rule matching
// primitives (selectors, patterns, conditions).

#include <string_view>

#include "policy/policy.h"

namespace warden::policy::reference {

Decision decide(const Policy& policy, const Principal& p, std::string_view action, std::string_view resource,
                const Context& ctx);

Explanation explain(const Policy& policy, const Principal& p, std::string_view action, std::string_view resource,
                    const Context& ctx);

}  // namespace warden::policy::reference
