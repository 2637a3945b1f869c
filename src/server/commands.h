#pragma once

#include <string>
#include <vector>

namespace warden::server {

// Options of `warden init`.
struct InitOptions {
  std::string dir;
  std::string trust_domain = "warden.local";
  std::string api_listen = "127.0.0.1:8443";
  std::string mqtt_listen = "127.0.0.1:8883";
  std::string mqtt_upstream = "127.0.0.1:18883";
  std::string pki_listen = "127.0.0.1:8080";
  std::string pki_url;  // "" -> http://<pki_listen>
  std::vector<std::string> server_names = {"localhost", "127.0.0.1", "::1"};
  // PKCS#11 URIs of the issuing and root CA keys (empty: files in D/pki).
  std::string ca_key;
  std::string root_key;
  // Create the keys named by ca_key / root_key in the token (non-extractable)
  // instead of using existing ones.
  bool ca_key_generate = false;
  bool output_json = false;
};

// Options of `warden serve`.
struct ServeOptions {
  std::string dir;
  std::string log_level;  // empty: warden.yaml log_level
  bool output_json = false;
};

// Options of `warden broker config`.
struct BrokerConfigOptions {
  std::string dir;
  std::string out;
  bool output_json = false;
};

// runInit creates a new Warden data directory (store, CAs, certificates,
// default policy, warden.yaml). Returns the process exit code: 0 on success,
// 1 if the directory already holds an installation or creation failed, 2 on
// invalid options.
int runInit(const InitOptions& options);

// runServe runs the control plane and the MQTT gateway until SIGTERM/SIGINT.
// Returns 0 after a clean shutdown, 1 if it could not start.
int runServe(const ServeOptions& options);

// runBrokerConfig writes a Mosquitto configuration that accepts only the
// gateway's upstream identity. Returns 0, 1 on failure, 2 on invalid options.
int runBrokerConfig(const BrokerConfigOptions& options);

}  // namespace warden::server
