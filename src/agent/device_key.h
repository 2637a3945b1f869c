#pragma once

// device_key.h: the device's key in the store agent.yaml names (file, TPM
// 2.0 or PKCS#11 token). Enrollment and renewal go through these few
// functions; nothing else in the agent knows where the key lives.

#include <memory>
#include <string>
#include <variant>

#include "agent/agent_files.h"
#include "api/api_client.h"
#include "core/status.h"
#include "keystore/key_store.h"

namespace warden::agent {

// DeviceKeyStore wraps the key store of one agent directory.
class DeviceKeyStore {
 public:
  // open loads the backend |config| names (the tpm2 provider, libp11's
  // engine). kFailedPrecondition if it is unavailable.
  static core::Result<DeviceKeyStore> open(const AgentConfig& config, const AgentPaths& paths);

  keystore::KeyStoreKind kind() const { return kind_; }

  // current opens the device's key: A/key.pem (file, tpm2) or the token key.
  core::Result<keystore::PrivateKey> current() const;
  // openFile opens a key file of this store (file PEM or TPM blob).
  core::Result<keystore::PrivateKey> openFile(const std::string& path) const;

  // createForEnrollment makes the key a first enrollment certifies: file, in
  // memory (written after enrollment); tpm2, inside the TPM with its blob
  // staged at A/key.pem.next (a blob already staged there, by a request that
  // awaits approval, is reused); pkcs11, the token key at key_uri, reused if
  // it already exists there non-extractable, created otherwise.
  core::Result<keystore::PrivateKey> createForEnrollment() const;

  // createForRenewal makes a new key for a renewal: file, in memory; tpm2,
  // staged at A/key.pem.next. A token key is kept (its label is fixed):
  // kFailedPrecondition for pkcs11.
  core::Result<keystore::PrivateKey> createForRenewal() const;

 private:
  DeviceKeyStore(keystore::KeyStoreKind kind, std::unique_ptr<keystore::KeyStore> store, AgentPaths paths,
                 std::string key_uri)
      : kind_(kind), store_(std::move(store)), paths_(std::move(paths)), key_uri_(std::move(key_uri)) {}

  keystore::KeyStoreKind kind_;
  std::shared_ptr<keystore::KeyStore> store_;
  AgentPaths paths_;
  std::string key_uri_;
};

// EnrolledAgent is what every command on an enrolled directory opens first:
// agent.yaml, the server it names and the device's key store.
struct EnrolledAgent {
  AgentConfig config;
  api::ServerUrl url;
  DeviceKeyStore keys;
};

// openEnrolledAgent opens them. On failure it prints the error and returns
// the exit code: usage for agent.yaml and its server, |key_store_exit| for
// the key store.
std::variant<EnrolledAgent, int> openEnrolledAgent(const AgentPaths& paths, int key_store_exit);

}  // namespace warden::agent
