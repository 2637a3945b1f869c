#include "policy/action.h"

#include <array>

#include "policy/policy.h"

namespace warden::policy {

static_assert(kActions.size() == kActionCount);

ActionFamily actionFamily(Action a) {
  switch (a) {
    case Action::kMqttConnect: return ActionFamily::kClientId;
    case Action::kMqttPublish:
    case Action::kMqttSubscribe:
    case Action::kMqttReceive:
    case Action::kMqttRetain: return ActionFamily::kTopic;
    default: return ActionFamily::kAdmin;
  }
}

std::string_view actionName(Action a) { return kActions[static_cast<size_t>(a)]; }

std::optional<Action> lookupAction(std::string_view name) {
  // The hot path calls this per packet; MQTT actions come first.
  for (size_t i = 0; i < kActionCount; ++i) {
    if (kActions[i] == name) return static_cast<Action>(i);
  }
  return std::nullopt;
}

std::optional<ActionSet> parseActionPattern(std::string_view text) {
  if (text == "*") return kMqttActions;  // never admin: (issue 2, Policy v0)
  if (text == "mqtt:*") return kMqttActions;
  if (text == "admin:*") return kAdminActions;
  if (auto a = lookupAction(text)) return actionBit(*a);
  return std::nullopt;
}

}  // namespace warden::policy
