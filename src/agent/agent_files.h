#pragma once

#include <string>

#include "core/clock.h"
#include "core/status.h"

// The files of an agent directory A: key.pem (0600), cert.pem (leaf +
// issuing CA), ca.pem (root + issuing CA) and agent.yaml.
namespace warden::agent {

struct AgentPaths {
  explicit AgentPaths(std::string dir) : dir(std::move(dir)) {}
  std::string dir;
  std::string key() const { return dir + "/key.pem"; }
  std::string cert() const { return dir + "/cert.pem"; }
  std::string ca() const { return dir + "/ca.pem"; }
  std::string config() const { return dir + "/agent.yaml"; }
  // Staging names used while a renewed key/certificate pair is installed.
  std::string nextKey() const { return dir + "/key.pem.next"; }
  std::string nextCert() const { return dir + "/cert.pem.next"; }
};

// AgentConfig is agent.yaml: where the server is and which root CA to trust.
struct AgentConfig {
  std::string server;          // https://HOST:PORT
  std::string name;            // the device name
  std::string ca_fingerprint;  // sha256:HEX of the root CA
};

// renderAgentConfig returns agent.yaml's text.
std::string renderAgentConfig(const AgentConfig& config);
// loadAgentConfig reads and checks A/agent.yaml; kInvalidArgument
// ("FILE: reason") if it is missing, malformed or has unknown keys.
core::Result<AgentConfig> loadAgentConfig(const std::string& path);

// installCredentials replaces key.pem and cert.pem with a new pair. Both are
// first written in full next to the old ones (*.next), then renamed key
// first, cert second, so a crash leaves either the old pair, the new pair, or
// a state recoverPendingCredentials completes.
core::Status installCredentials(const AgentPaths& paths, const std::string& key_pem, const std::string& cert_pem);
// recoverPendingCredentials finishes an installation interrupted by a crash:
// it moves staged files in place when they match each other (or the key in
// place), and drops stale ones.
core::Status recoverPendingCredentials(const AgentPaths& paths);

// certificateObtainedAt returns when cert.pem was last written (its mtime),
// or |fallback| if unknown.
core::SystemTime certificateObtainedAt(const AgentPaths& paths, core::SystemTime fallback);

}  // namespace warden::agent
