"""Policies shared by the end-to-end tests (the demo's factory policy)."""

OPERATORS = """
  - id: operators
    effect: permit
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]
"""

FACTORY = "rules:" + OPERATORS + """
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: actuators-receive-own-commands
    effect: permit
    principals: {role: actuator}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/commands/${principal.id}/#"]
  - id: controllers-read-telemetry
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/telemetry/#"]
  - id: controllers-command
    effect: permit
    principals: {role: controller}
    actions: [mqtt:publish]
    resources: ["factory/commands/#"]
  - id: nobody-touches-firmware
    effect: forbid
    principals: {kind: device}
    actions: ["mqtt:*"]
    resources: ["firmware/#"]
"""


def factory_plus(extra_rules):
    """FACTORY with more rules appended (YAML list items)."""
    return FACTORY + extra_rules
