#include "policy/policy.h"

namespace warden::policy {

// Keep in sync with examples/policy-default.yaml (a unit test compares them).
std::string_view defaultPolicyYaml() {
  static constexpr std::string_view kDefault = R"yaml(# Warden default policy (stored by `warden init` as policy version 1).
#
# Warden denies everything that no rule permits. This policy lets the
# operator administer the fleet and lets each device open an MQTT session
# under its own name, and nothing else: a device can neither publish nor
# subscribe until you add rules for it (see examples/policy-factory.yaml and
# docs/policy.md).
#
# Apply a changed copy with `warden policy apply FILE`. Keep a rule that gives
# your operators admin:policy.apply: Warden refuses a policy under which you
# would lock yourself out.
rules:
  # The operator (the user certificate created by `warden init`) may run
  # every admin command on every device.
  - id: operators
    effect: permit
    description: The operator may administer the fleet.
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]

  # Each device may connect, but only with its own name as the MQTT client
  # id. ${principal.id} is replaced by the name of the device asking.
  - id: devices-connect-as-themselves
    effect: permit
    description: A device may connect only under its own name.
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
)yaml";
  return kDefault;
}

}  // namespace warden::policy
