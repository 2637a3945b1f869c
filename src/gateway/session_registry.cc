#include "gateway/session_registry_impl.h"

#include <chrono>

#include "gateway/mqtt_session_impl.h"

namespace warden::gateway {

void SessionRegistry::add(const std::shared_ptr<MqttSession>& session) { sessions_[session.get()] = session; }

void SessionRegistry::remove(const MqttSession* session) {
  sessions_.erase(session);
  for (auto it = by_device_.begin(); it != by_device_.end(); ++it) {
    if (it->second.get() == session) {
      by_device_.erase(it);
      break;
    }
  }
}

std::shared_ptr<MqttSession> SessionRegistry::bindDevice(const std::string& name,
                                                         const std::shared_ptr<MqttSession>& session) {
  auto& slot = by_device_[name];
  std::shared_ptr<MqttSession> previous = std::move(slot);
  slot = session;
  return previous;
}

void SessionRegistry::unbindDevice(const std::string& name, const MqttSession* session) {
  auto it = by_device_.find(name);
  if (it != by_device_.end() && it->second.get() == session) by_device_.erase(it);
}

std::shared_ptr<MqttSession> SessionRegistry::findDevice(const std::string& name) const {
  auto it = by_device_.find(name);
  return it == by_device_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<MqttSession>> SessionRegistry::all() const {
  std::vector<std::shared_ptr<MqttSession>> out;
  out.reserve(sessions_.size());
  for (const auto& [_, s] : sessions_) out.push_back(s);
  return out;
}

std::vector<std::shared_ptr<MqttSession>> SessionRegistry::bound() const {
  std::vector<std::shared_ptr<MqttSession>> out;
  out.reserve(by_device_.size());
  for (const auto& [_, s] : by_device_) out.push_back(s);
  return out;
}

std::vector<std::string> SessionRegistry::deviceNames() const {
  std::vector<std::string> out;
  out.reserve(by_device_.size());
  for (const auto& [name, _] : by_device_) out.push_back(name);
  return out;
}

void SessionRegistry::rememberSession(const std::string& device, RememberedSession session) {
  remembered_[device] = std::move(session);
}

std::optional<RememberedSession> SessionRegistry::takeSession(const std::string& device) {
  auto it = remembered_.find(device);
  if (it == remembered_.end()) return std::nullopt;
  RememberedSession out = std::move(it->second);
  remembered_.erase(it);
  return out;
}

void SessionRegistry::parkWill(const std::string& device, std::shared_ptr<MqttSession> holder) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(parked_wills_, [&](const auto& entry) { return entry.second->willDeadline() <= now; });
  parked_wills_[device] = std::move(holder);
}

std::shared_ptr<MqttSession> SessionRegistry::takeWill(const std::string& device) {
  auto it = parked_wills_.find(device);
  if (it == parked_wills_.end()) return nullptr;
  auto out = std::move(it->second);
  parked_wills_.erase(it);
  return out;
}

void SessionRegistry::dropWill(const std::string& device, const MqttSession* holder) {
  auto it = parked_wills_.find(device);
  if (it != parked_wills_.end() && it->second.get() == holder) parked_wills_.erase(it);
}

std::vector<std::shared_ptr<MqttSession>> SessionRegistry::parkedWills() const {
  std::vector<std::shared_ptr<MqttSession>> out;
  out.reserve(parked_wills_.size());
  for (const auto& [_, s] : parked_wills_) out.push_back(s);
  return out;
}

std::shared_ptr<MqttSession> SessionRegistry::findWill(const std::string& device) const {
  auto it = parked_wills_.find(device);
  return it == parked_wills_.end() ? nullptr : it->second;
}

}  // namespace warden::gateway
