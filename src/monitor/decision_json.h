#pragma once

// decision_json.h: the short form of a policy decision, as denial events,
// `warden policy explain` and `policy test` show it.

#include <nlohmann/json.hpp>

#include "policy/policy.h"

namespace warden::monitor {

// decisionToJson returns {decision, reason, rule, flow, missing_flows:
// [{from, to, action}], valid_until (RFC 3339 or "none")}.
nlohmann::json decisionToJson(const policy::Decision& d);

}  // namespace warden::monitor
