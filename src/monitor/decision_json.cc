#include "monitor/decision_json.h"

#include "core/clock.h"

namespace warden::monitor {

nlohmann::json decisionToJson(const policy::Decision& d) {
  nlohmann::json missing = nlohmann::json::array();
  for (const policy::MissingFlow& m : d.missing_flows) {
    missing.push_back({{"from", m.from}, {"to", m.to}, {"action", m.action}});
  }
  return {
      {"decision", d.permit ? "permit" : "deny"},
      {"reason", d.reason},
      {"rule", d.rule},
      {"flow", d.flow.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.flow)},
      {"missing_flows", std::move(missing)},
      {"valid_until", d.valid_until ? core::formatRfc3339(*d.valid_until) : std::string("none")},
  };
}

}  // namespace warden::monitor
