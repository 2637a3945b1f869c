#pragma once

// fleet_state.h: the immutable principal state read by the hot path (TLS
// verification, CONNECT, every packet). Built by Registry::loadFleetState and
// swapped atomically inside the gateway's DecisionSnapshot; never mutated
// after construction, so readers never lock.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "core/names.h"
#include "store/store.h"

namespace warden::identity {

struct DeviceEntry {
  std::string name, role;
  core::Labels labels;
  store::DeviceState state = store::DeviceState::kPending;
  // valid_serials holds the serials (lowercase hex) issued to this device
  // that were neither revoked nor expired when the state was loaded.
  std::unordered_set<std::string> valid_serials;
};

struct FleetState {
  uint64_t generation = 0;  // strictly increasing per Registry
  std::unordered_map<std::string, DeviceEntry> devices;
  // user_serials maps each valid user certificate serial to the user name
  // (the operator: "admin").
  std::unordered_map<std::string, std::string> user_serials;

  // findDevice returns the entry for |name| or nullptr.
  const DeviceEntry* findDevice(const std::string& name) const {
    auto it = devices.find(name);
    return it == devices.end() ? nullptr : &it->second;
  }
  // deviceHoldsSerial reports whether |serial_hex| is a valid serial of
  // device |name| (its state is not checked here).
  bool deviceHoldsSerial(const std::string& name, const std::string& serial_hex) const {
    const DeviceEntry* e = findDevice(name);
    return e != nullptr && e->valid_serials.count(serial_hex) != 0;
  }
  // userForSerial returns the user name holding |serial_hex|, or nullptr.
  const std::string* userForSerial(const std::string& serial_hex) const {
    auto it = user_serials.find(serial_hex);
    return it == user_serials.end() ? nullptr : &it->second;
  }
};

}  // namespace warden::identity
