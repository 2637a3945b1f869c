#pragma once

#include "keystore/key_store.h"

namespace warden::keystore {

// FileKeyStore keeps keys as unencrypted PKCS#8 PEM files written 0600.
// A reference is a path, optionally written "file:/path".
class FileKeyStore final : public KeyStore {
 public:
  KeyStoreKind kind() const override { return KeyStoreKind::kFile; }
  core::Result<PrivateKey> generate(std::string_view reference) override;
  core::Result<PrivateKey> load(std::string_view reference) override;
};

}  // namespace warden::keystore
