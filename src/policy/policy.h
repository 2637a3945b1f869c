#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "core/names.h"
#include "core/spiffe_id.h"
#include "core/status.h"

namespace warden::policy {

// Principal is who asks: the authenticated identity plus the attributes the
// policy selects on. |quarantined| restricts permits to the quarantine segment.
struct Principal {
  std::string id;
  core::PrincipalKind kind = core::PrincipalKind::kDevice;
  std::string role;
  core::Labels labels;
  bool quarantined = false;
};

// Decision is the outcome of Policy::authorize.
// reasons: "permitted", "forbidden", "no_permit" (default deny), "quarantined"
// (deny while quarantined & no quarantine permit), "invalid_filter" (malformed
// $share filter), "unknown_action".
struct Decision {
  bool permit = false;
  std::string rule;  // rule id or "default-deny"
  std::string reason;
};

// kActions lists every concrete action a policy may name (for docs and CLI).
// "mqtt:*", "admin:*" and "*" (every non-admin action) are accepted too.
inline constexpr std::array<std::string_view, 15> kActions = {
    "mqtt:connect",           "mqtt:publish",         "mqtt:subscribe",
    "mqtt:receive",           "mqtt:retain",          "admin:device.add",
    "admin:device.list",      "admin:device.show",    "admin:device.token",
    "admin:device.revoke",    "admin:device.quarantine", "admin:device.release",
    "admin:policy.apply",     "admin:policy.show",    "admin:events.read",
};

struct CompiledPolicy;  // private: src/policy/compiled_policy.h

// Policy is an immutable, compiled policy document. Share it as
// std::shared_ptr<const Policy>; authorize is thread-safe.
class Policy {
 public:
  // parse validates |yaml| (<= 1 MiB) and compiles it; errors read
  // "FILE:LINE:COL: message" with |filename| as FILE. Returns kInvalidArgument.
  static core::Result<std::shared_ptr<const Policy>> parse(std::string_view yaml,
                                                           std::string_view filename);

  // authorize is THE decision function. |action| e.g. "mqtt:publish";
  // |resource|: topic for publish/receive/retain, filter for subscribe
  // (subset/overlap semantics, $share handling), client id for connect,
  // device name or "*" for admin:*. Anything not permitted is denied.
  Decision authorize(const Principal& principal, std::string_view action,
                     std::string_view resource) const;

  // text returns the YAML source this policy was parsed from.
  const std::string& text() const;

  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

 private:
  explicit Policy(std::unique_ptr<const CompiledPolicy> compiled);
  std::unique_ptr<const CompiledPolicy> compiled_;
};

// defaultPolicyYaml returns the commented default policy written by `warden
// init` as version 1: operators get every admin: action, each device only
// mqtt:connect with its own id.
std::string_view defaultPolicyYaml();

}  // namespace warden::policy
