#pragma once

#include <string>

#include <functional>

#include "core/clock.h"
#include "core/status.h"
#include "keystore/key_store.h"

// The files of an agent directory A: key.pem (0600), cert.pem (leaf +
// issuing CA), ca.pem (root + issuing CA; both roots and the cross
// certificates during a root rollover) and agent.yaml.
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
  // Where the device key lives (agent.yaml `key_store`, default file):
  //   file    A/key.pem, PKCS#8, 0600
  //   tpm2    A/key.pem holds the TPM-wrapped "TSS2 PRIVATE KEY"; `tpm` is the TCTI
  //   pkcs11  in a token; `key_uri` is its PKCS#11 URI (module-path, pin-source)
  keystore::KeyStoreKind key_store = keystore::KeyStoreKind::kFile;
  std::string tpm;
  std::string key_uri;
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
// installStagedCredentials is installCredentials for a key already staged
// at nextKey() (a TPM key blob the key store wrote there).
core::Status installStagedCredentials(const AgentPaths& paths, const std::string& cert_pem);
// installCertificate replaces cert.pem only (the key stays: a token key).
core::Status installCertificate(const AgentPaths& paths, const std::string& cert_pem);

// KeyOpener opens the key stored at a path (a PEM or a TPM key blob).
using KeyOpener = std::function<core::Result<keystore::PrivateKey>(const std::string& path)>;

// recoverPendingCredentials finishes an installation interrupted by a crash:
// it moves staged files in place when they match each other (or the key in
// place), and drops stale ones. |open_key| opens key files (default: PEM).
core::Status recoverPendingCredentials(const AgentPaths& paths, const KeyOpener& open_key = {});

// certificateObtainedAt returns when cert.pem was last written (its mtime),
// or |fallback| if unknown.
core::SystemTime certificateObtainedAt(const AgentPaths& paths, core::SystemTime fallback);

}  // namespace warden::agent
