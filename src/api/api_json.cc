#include "api/api_json.h"

#include "core/clock.h"
#include "core/spiffe_id.h"

namespace warden::api {

std::string errorJson(std::string_view code, std::string_view message) {
  nlohmann::json j = {{"error", code}, {"message", message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json deviceToJson(const store::DeviceRecord& device, const std::optional<store::CertRecord>& latest_cert,
                            bool connected, std::string_view trust_domain) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : device.labels) labels[k] = v;
  nlohmann::json j = {
      {"name", device.name},
      {"spiffe_id", core::makeSpiffeId(trust_domain, core::PrincipalKind::kDevice, device.name)},
      {"role", device.role},
      {"labels", std::move(labels)},
      {"state", store::deviceStateName(device.state)},
      {"cert_serial", nullptr},
      {"cert_not_after", nullptr},
      {"connected", connected},
      // Where the device says its key lives; verified stays false until a
      // TPM2_Certify proof exists (issue 6).
      {"key_store", {{"claimed", device.key_store_claim.empty() ? nlohmann::json(nullptr)
                                                                : nlohmann::json(device.key_store_claim)},
                     {"verified", false}}},
      {"cert_ttl", device.cert_ttl_s > 0 ? nlohmann::json(core::formatDuration(device.cert_ttl_s)) : nlohmann::json(nullptr)},
  };
  if (latest_cert) {
    j["cert_serial"] = latest_cert->serial_hex;
    j["cert_not_after"] = core::formatRfc3339(core::fromUnixSeconds(latest_cert->not_after));
  }
  return j;
}

nlohmann::json policyToJson(const store::PolicyVersion& policy) {
  return {
      {"version", policy.version},
      {"text", policy.text},
      {"created_at", core::formatRfc3339(core::fromUnixSeconds(policy.created_at))},
      {"actor", policy.actor},
  };
}

nlohmann::json explanationToJson(const policy::Explanation& e) {
  nlohmann::json out = decisionToJson(e.decision);
  nlohmann::json rules = nlohmann::json::array();
  for (const policy::RuleExplanation& r : e.rules) {
    rules.push_back({{"id", r.id}, {"effect", r.effect}, {"matched", r.matched}, {"why_not", r.why_not}});
  }
  out["rules"] = std::move(rules);
  return out;
}

nlohmann::json lintFindingToJson(const policy::LintFinding& f) {
  return {{"code", f.code}, {"rule", f.rule},     {"file", f.file},
          {"line", f.line}, {"column", f.column}, {"message", f.message}};
}

}  // namespace warden::api
