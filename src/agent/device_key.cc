#include "agent/device_key.h"

#include <unistd.h>

#include <fmt/format.h>

#include "agent/agent_output.h"
#include "api/admin_client.h"
#include "crypto/crypto.h"
#include "keystore/pkcs11_key_store.h"

namespace warden::agent {

using core::Result;
using keystore::KeyStoreKind;
using keystore::PrivateKey;

Result<DeviceKeyStore> DeviceKeyStore::open(const AgentConfig& config, const AgentPaths& paths) {
  keystore::KeyStoreOptions options;
  options.kind = config.key_store;
  options.tcti = config.tpm;
  WARDEN_ASSIGN_OR_RETURN(auto store, keystore::makeKeyStore(options));
  return DeviceKeyStore(config.key_store, std::move(store), paths, config.key_uri);
}

Result<PrivateKey> DeviceKeyStore::current() const {
  if (kind_ == KeyStoreKind::kPkcs11) return store_->load(key_uri_);
  return store_->load(paths_.key());
}

Result<PrivateKey> DeviceKeyStore::openFile(const std::string& path) const {
  if (kind_ == KeyStoreKind::kPkcs11) return core::failedPrecondition("a token key has no file");
  return store_->load(path);
}

Result<PrivateKey> DeviceKeyStore::createForEnrollment() const {
  switch (kind_) {
    case KeyStoreKind::kFile:
      return createForRenewal();
    case KeyStoreKind::kTpm2: {
      // A blob staged by an enrollment that awaits approval is reused: only
      // its key can complete that request, also after a restart.
      auto staged = store_->load(paths_.nextKey());
      if (staged.isOk()) return staged;
      return createForRenewal();
    }
    case KeyStoreKind::kPkcs11: {
      auto* pkcs11 = static_cast<keystore::Pkcs11KeyStore*>(store_.get());
      auto existing = pkcs11->protection(key_uri_);
      if (existing.isOk()) {
        if (existing->extractable || !existing->sensitive) {
          return core::failedPrecondition(fmt::format(
              "the token key {} is extractable or not sensitive; Warden uses only non-extractable device keys: "
              "remove it or name another object=",
              key_uri_));
        }
        return store_->load(key_uri_);
      }
      if (existing.status().code() != core::ErrorCode::kNotFound) return existing.status();
      return store_->generate(key_uri_);
    }
  }
  return core::invalidArgument("unknown key store");
}

Result<PrivateKey> DeviceKeyStore::createForRenewal() const {
  switch (kind_) {
    case KeyStoreKind::kFile: {
      WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::generateEcKey());
      return PrivateKey(std::move(key), KeyStoreKind::kFile, paths_.key());
    }
    case KeyStoreKind::kTpm2:
      ::unlink(paths_.nextKey().c_str());  // a leftover of an interrupted attempt
      return store_->generate(paths_.nextKey());
    case KeyStoreKind::kPkcs11:
      return core::failedPrecondition("a token key is kept across renewals");
  }
  return core::invalidArgument("unknown key store");
}

std::variant<EnrolledAgent, int> openEnrolledAgent(const AgentPaths& paths, int key_store_exit) {
  auto config = loadAgentConfig(paths.config());
  if (!config.isOk()) {
    printError(config.status().message());
    return api::kExitUsage;
  }
  auto url = api::parseServerUrl(config->server);
  if (!url.isOk()) {
    printError(url.status().message());
    return api::kExitUsage;
  }
  auto keys = DeviceKeyStore::open(*config, paths);
  if (!keys.isOk()) {
    printError(fmt::format("cannot open the {} key store: {}", keystore::keyStoreKindName(config->key_store),
                           keys.status().message()));
    return key_store_exit;
  }
  return EnrolledAgent{std::move(config).value(), std::move(url).value(), std::move(keys).value()};
}

}  // namespace warden::agent
