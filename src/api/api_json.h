#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "monitor/decision_json.h"
#include "policy/policy.h"
#include "policy/policy_lint.h"
#include "store/store.h"

namespace warden::api {

// errorJson returns {"error": code, "message": message} serialized; |code| is
// a stable snake_case code (core::errorCodeName or a route-specific one).
std::string errorJson(std::string_view code, std::string_view message);

// deviceToJson returns the device view of `warden device list|show`:
// {name, spiffe_id, role, labels, state, cert_serial, cert_not_after,
// connected}; cert_serial/cert_not_after are null before enrollment.
nlohmann::json deviceToJson(const store::DeviceRecord& device, const std::optional<store::CertRecord>& latest_cert,
                            bool connected, std::string_view trust_domain);

// keyInTpmToJson returns the posture's view of the proof that the device key
// is in its TPM: {"key_in_tpm": not_claimed|claimed|verified|failed,
// "key_proof": {result, at, reason} of the last proof about the current
// certificate's key, or null}.
nlohmann::json keyInTpmToJson(const store::DeviceRecord& device, const std::optional<store::CertRecord>& latest_cert);

// policyToJson returns {version, text, created_at (RFC 3339), actor}.
nlohmann::json policyToJson(const store::PolicyVersion& policy);

// decisionToJson: the short form of a decision (monitor/decision_json.h).
using monitor::decisionToJson;

// explanationToJson returns `warden policy explain -o json`: the short form
// plus rules: [{id, effect, matched, why_not}] in file order.
nlohmann::json explanationToJson(const policy::Explanation& explanation);

// lintFindingToJson returns {code, rule, file, line, column, message}.
nlohmann::json lintFindingToJson(const policy::LintFinding& finding);

}  // namespace warden::api
