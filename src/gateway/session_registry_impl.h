#pragma once

// session_registry_impl.h: private to src/gateway. SessionRegistry knows every
// live MQTT session (from TCP accept to the last close) and which one holds
// each device name. Io thread only.

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/mqtt/packet.h"

namespace warden::gateway {

class MqttSession;

// SessionFilter is one subscription of a device session as the gateway
// remembers it: its options, its identifier and whether it is suspended
// (unsubscribed upstream because the policy no longer allows it).
struct SessionFilter {
  mqtt::Subscription sub;
  std::optional<uint32_t> subscription_id;
  bool suspended = false;
};

// StagedPublish is a QoS 2 PUBLISH of a device that the gateway forwarded
// and the broker acknowledged with PUBREC: the broker holds it and hands it
// to subscribers only when the device's PUBREL arrives, so the gateway
// checks the topic again then.
struct StagedPublish {
  std::string topic;
  bool retain = false;
};

// RememberedSession is what the gateway keeps of a device's broker session
// that outlives its connection (Session Expiry > 0), for the next
// connection that resumes it (Session Present): its filters, so that they
// are still enforced and can be suspended and restored, and its staged QoS
// 2 PUBLISHes, so that their PUBRELs are checked.
struct RememberedSession {
  std::vector<SessionFilter> filters;
  std::unordered_map<uint16_t, StagedPublish> staged;
};

class SessionRegistry {
 public:
  // add tracks |session| from accept on; remove forgets it (and its device
  // binding) once it is fully closed.
  void add(const std::shared_ptr<MqttSession>& session);
  void remove(const MqttSession* session);

  // bindDevice makes |session| the live session of device |name| and returns
  // the one it replaces (session takeover), or null.
  std::shared_ptr<MqttSession> bindDevice(const std::string& name, const std::shared_ptr<MqttSession>& session);
  // unbindDevice removes the binding of |name| if it still points to |session|.
  void unbindDevice(const std::string& name, const MqttSession* session);
  std::shared_ptr<MqttSession> findDevice(const std::string& name) const;

  std::vector<std::shared_ptr<MqttSession>> all() const;
  std::vector<std::shared_ptr<MqttSession>> bound() const;
  std::vector<std::string> deviceNames() const;

  // rememberSession keeps |session| for device |device| until takeSession
  // (the next connection resumes the broker session) or forgetSession.
  void rememberSession(const std::string& device, RememberedSession session);
  std::optional<RememberedSession> takeSession(const std::string& device);
  void forgetSession(const std::string& device) { remembered_.erase(device); }
  size_t size() const { return sessions_.size(); }

  // A closed session whose will the broker holds for its Will Delay stays
  // here (parkWill) until the delay ends or the device connects again, so
  // that a change which no longer permits the will can cancel it.
  // Parking also forgets the wills whose delay has ended (the broker has
  // sent them), so the map holds at most the devices with a will pending.
  void parkWill(const std::string& device, std::shared_ptr<MqttSession> holder);
  std::shared_ptr<MqttSession> takeWill(const std::string& device);
  void dropWill(const std::string& device, const MqttSession* holder);
  std::vector<std::shared_ptr<MqttSession>> parkedWills() const;
  std::shared_ptr<MqttSession> findWill(const std::string& device) const;

 private:
  std::unordered_map<const MqttSession*, std::shared_ptr<MqttSession>> sessions_;
  std::unordered_map<std::string, std::shared_ptr<MqttSession>> by_device_;
  std::unordered_map<std::string, RememberedSession> remembered_;
  std::unordered_map<std::string, std::shared_ptr<MqttSession>> parked_wills_;
};

}  // namespace warden::gateway
