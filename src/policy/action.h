#pragma once

// action.h (private to src/policy): the closed set of actions a policy names.

#include <cstdint>
#include <optional>
#include <string_view>

namespace warden::policy {

// Action indexes kActions in policy.h (same order).
enum class Action : uint8_t {
  kMqttConnect,
  kMqttPublish,
  kMqttSubscribe,
  kMqttReceive,
  kMqttRetain,
  kAdminDeviceAdd,
  kAdminDeviceList,
  kAdminDeviceShow,
  kAdminDeviceToken,
  kAdminDeviceRevoke,
  kAdminDeviceQuarantine,
  kAdminDeviceRelease,
  kAdminPolicyApply,
  kAdminPolicyShow,
  kAdminEventsRead,
  kAdminPolicyExplain,
  kAdminPolicyHistory,
  kAdminCertList,
  kAdminCertRevoke,
  kAdminCaList,
  kAdminCaRotate,
  kAdminCaRetire,
  kAdminDeviceSet,
  kAdminDeviceApprove,
  kAdminManufacturerAdd,
  kAdminManufacturerList,
  kAdminManufacturerRemove,
  kAdminFirmwareApprove,
  kAdminFirmwareRevoke,
  kAdminFirmwareList,
  kAdminDeviceHistory,
  kAdminTpmCaAdd,
  kAdminTpmCaList,
  kAdminTpmCaRemove,
};
inline constexpr size_t kActionCount = 34;

// ActionFamily decides how a resource pattern is read for an action.
enum class ActionFamily : uint8_t {
  kTopic,     // mqtt:publish/subscribe/receive/retain: an MQTT topic filter
  kClientId,  // mqtt:connect: "*" or a literal client id
  kAdmin,     // admin:*: "*" or a literal device name
};

using ActionSet = uint64_t;  // bit i = Action(i)
static_assert(kActionCount <= 64, "ActionSet has one bit per action");

inline constexpr ActionSet actionBit(Action a) { return ActionSet{1} << static_cast<unsigned>(a); }
inline constexpr ActionSet kMqttActions = (ActionSet{1} << 5) - 1;
inline constexpr ActionSet kAdminActions = ((ActionSet{1} << kActionCount) - 1) & ~kMqttActions;
inline constexpr ActionSet kTopicActions = actionBit(Action::kMqttPublish) | actionBit(Action::kMqttSubscribe) |
                                           actionBit(Action::kMqttReceive) | actionBit(Action::kMqttRetain);

ActionFamily actionFamily(Action a);
std::string_view actionName(Action a);

// lookupAction maps a concrete action name ("mqtt:publish") to its Action.
std::optional<Action> lookupAction(std::string_view name);

// parseActionPattern maps an action as written in a policy to the set it
// covers: a concrete name, "mqtt:*", "admin:*", or "*" (every action that is
// not admin:). Returns nullopt for an unknown action.
std::optional<ActionSet> parseActionPattern(std::string_view text);

}  // namespace warden::policy
