#include "api/api_json.h"

#include "core/clock.h"
#include "core/spiffe_id.h"
#include "trust/certify.h"

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
      {"cert_ttl", device.cert_ttl_s > 0 ? nlohmann::json(core::formatDuration(device.cert_ttl_s)) : nlohmann::json(nullptr)},
  };
  // Where the device says its key lives; verified once its TPM proved it
  // for the key of its current certificate (TPM2_Certify by the AK).
  const std::string_view key_in_tpm =
      trust::keyInTpm(device.key_store_claim, device.key_proof, latest_cert ? latest_cert->pubkey_fp : std::string());
  j["key_store"] = {
      {"claimed", device.key_store_claim.empty() ? nlohmann::json(nullptr) : nlohmann::json(device.key_store_claim)},
      {"verified", key_in_tpm == trust::kKeyInTpmVerified}};
  if (latest_cert) {
    j["cert_serial"] = latest_cert->serial_hex;
    j["cert_not_after"] = core::formatRfc3339(core::fromUnixSeconds(latest_cert->not_after));
  }
  return j;
}

nlohmann::json keyInTpmToJson(const store::DeviceRecord& device, const std::optional<store::CertRecord>& latest_cert) {
  const std::string current_fp = latest_cert ? latest_cert->pubkey_fp : std::string();
  const bool about_current = !current_fp.empty() && !device.key_proof.result.empty() &&
                             device.key_proof.key_fp == current_fp;
  nlohmann::json proof = nullptr;
  if (about_current) {
    proof = {{"result", device.key_proof.result},
             {"at", core::formatRfc3339(core::fromUnixSeconds(device.key_proof.at))},
             {"reason", device.key_proof.reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(device.key_proof.reason)}};
  }
  return {{"key_in_tpm", trust::keyInTpm(device.key_store_claim, device.key_proof, current_fp)},
          {"key_proof", std::move(proof)}};
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
