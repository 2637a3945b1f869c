#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/decision_snapshot.h"

namespace warden::monitor {
class EventLog;
}

namespace warden::gateway {

// MqttLimits are the MQTT listener's limits (warden.yaml gateway.limits).
struct MqttLimits {
  uint32_t max_packet_size = 256 * 1024;          // both directions, advertised both ways
  size_t max_topic_length = 256;                  // bytes
  size_t max_topic_levels = 16;
  size_t max_filters_per_subscribe = 16;
  size_t max_filters_per_session = 100;
  std::chrono::seconds connect_timeout{10};       // TLS handshake + CONNECT
  uint16_t keepalive_max = 300;                   // 0 or above becomes Server Keep Alive
  size_t max_buffered = 1024 * 1024;              // per direction, then stop reading the other side
  double connect_rate = 50;                       // new connections per second per source address
  double connect_burst = 200;
  std::chrono::seconds session_expiry_max{86400};
  uint16_t topic_alias_max = 10;                  // advertised to MQTT 5 devices
  uint16_t receive_maximum = 100;                 // advertised to devices (capped by the broker's)
};

// GatewayConfig configures the MQTT gateway. File paths come from
// pki::PkiPaths in the server wiring.
struct GatewayConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8883;                    // 0: pick a free port (see Gateway::listenPort)
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 18883;
  std::string trust_domain = "warden.local";
  std::string server_cert_file;                   // gateway.pem (leaf + issuing)
  std::string server_key_file;                    // gateway.key
  std::string client_ca_file;                     // issuing CA (+ root) that device certs chain to
  std::string upstream_ca_file;                   // upstream-ca.pem: verifies the broker
  std::string upstream_client_cert_file;          // upstream-client.pem
  std::string upstream_client_key_file;           // upstream-client.key
  std::string upstream_server_name;               // expected broker name; empty: upstream_host
  std::chrono::seconds upstream_timeout{5};       // TCP + TLS + CONNACK upstream
  MqttLimits limits;
};

// Gateway is the MQTT policy enforcement point: a mutual-TLS listener that
// authenticates devices by certificate, authorizes every packet against the
// current DecisionSnapshot and forwards what is permitted to the upstream
// broker over its own TLS connection. All methods run on the io thread of the
// io_context given to the constructor.
// SessionImpact is what a candidate policy would do to one live session.
struct SessionImpact {
  std::string device;
  bool would_cut = false;                  // mqtt:connect no longer permitted
  std::string reason;                      // of the connect denial, when would_cut
  std::string rule;
  std::vector<std::string> filters_lost;      // active filters that would be suspended
  std::vector<std::string> filters_restored;  // suspended filters that would come back
};

class Gateway {
 public:
  // |io_context| is a boost::asio::io_context* (kept opaque so that this
  // header needs no Asio). |snapshots| and |events| must outlive the Gateway.
  Gateway(void* io_context, GatewayConfig config, SnapshotHolder& snapshots, monitor::EventLog& events);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // start loads the TLS material and binds the listener; returns an error if
  // a file is unreadable or the port is busy.
  core::Status start();
  // listenPort returns the bound port (useful with listen_port 0), 0 before start.
  uint16_t listenPort() const;

  // reloadServerTls rebuilds the device-facing TLS context from the server
  // certificate and trust bundle files (after a CA rotation or retirement).
  // New connections use it; live sessions keep theirs (io thread).
  core::Status reloadServerTls();

  // reevaluate re-checks every live session against the current snapshot:
  // closes sessions no longer allowed (MQTT 5 DISCONNECT 0x87), suspends and
  // restores subscriptions. |done| is called on the io thread once every
  // affected session has been cut or restricted (restored subscriptions
  // SUBACKed upstream, or 2 s passed).
  void reevaluate(std::function<void()> done);
  // reevaluate with a scope re-checks only what |scope| names: every
  // session when it says everything, else the sessions of its devices.
  void reevaluate(const identity::ChangeScope& scope, std::function<void()> done);
  // closeDevice cuts the live session of device |name| (if any) with MQTT 5
  // DISCONNECT |reason_code| (DISCONNECT 0x00 upstream, no will) and records
  // |reason| in the disconnect event; |done| runs once the session is closed.
  void closeDevice(const std::string& name, uint8_t reason_code, std::string reason, std::function<void()> done);
  // dryRun says what |candidate| would do to the live sessions if it were
  // applied now, changing nothing (io thread only).
  std::vector<SessionImpact> dryRun(const policy::Policy& candidate) const;
  // setDenialObserver registers |observer|, called on the io thread with the
  // device name for every deny decision on a packet of that device's own
  // authenticated session (the posture engine counts them into trust).
  // Denials for "quarantined", refused deliveries (mqtt:receive) and
  // re-evaluations are not reported.
  void setDenialObserver(std::function<void(const std::string& device)> observer);
  // connectedDevices returns the names of devices with a live session (io thread only).
  std::vector<std::string> connectedDevices() const;
  // shutdown stops accepting, sends DISCONNECT 0x8B to every device and
  // DISCONNECT 0x00 upstream, and calls |done| once all sessions are closed.
  void shutdown(std::function<void()> done);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::gateway
