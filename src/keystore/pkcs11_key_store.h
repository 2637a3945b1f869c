#pragma once

#include <string>

#include "keystore/key_store.h"
#include "keystore/pkcs11_token.h"

namespace warden::keystore {

// Pkcs11KeyStore keeps keys in a PKCS#11 token. References are RFC 7512
// URIs; the module comes from the URI's module-path (or the store's
// default), the PIN from its pin-source file. Signing goes through libp11's
// OpenSSL engine ("pkcs11"; Debian 12 has no PKCS#11 provider for OpenSSL
// 3), loaded once per process: all keys of a process use one module.
class Pkcs11KeyStore final : public KeyStore {
 public:
  explicit Pkcs11KeyStore(std::string default_module = {}) : default_module_(std::move(default_module)) {}

  KeyStoreKind kind() const override { return KeyStoreKind::kPkcs11; }
  core::Result<PrivateKey> generate(std::string_view reference) override;

  // createInToken creates the key |reference| names in its token (as
  // generate does) without loading it, and returns its canonical URI.
  // Create every key of a process before loading any: libp11's engine lists
  // a token's keys once, so a key created after a load stays invisible to it.
  core::Result<std::string> createInToken(std::string_view reference);
  core::Result<PrivateKey> load(std::string_view reference) override;

  // protection reports the token's CKA_SENSITIVE / CKA_EXTRACTABLE / ...
  // for the private key |reference| names.
  core::Result<Pkcs11KeyProtection> protection(std::string_view reference);

 private:
  // resolve parses |reference| and fills in the default module.
  core::Result<Pkcs11Uri> resolve(std::string_view reference) const;

  std::string default_module_;
};

}  // namespace warden::keystore
