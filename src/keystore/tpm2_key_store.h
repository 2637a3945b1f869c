#pragma once

#include <cstdint>
#include <string>

#include "keystore/key_store.h"

namespace warden::keystore {

// kSrkHandle is the persistent handle of the storage root key (TCG TPM v2.0
// Provisioning Guidance §7.8: 0x81000001 for the SRK).
inline constexpr uint32_t kSrkHandle = 0x81000001;

// Tpm2KeyStore keeps keys in a TPM 2.0: an EC P-256 signing key is created
// inside the TPM under the SRK (created at kSrkHandle if absent) with
// fixedTPM|fixedParent|sensitiveDataOrigin, so its private part never exists
// outside the TPM. What is stored at the reference (a path, 0600) is the
// TPM-wrapped blob as a "TSS2 PRIVATE KEY" PEM, which any OpenSSL 3 program
// loads through the tpm2 provider (tpm2-openssl). The TPM is reached through
// tpm2-abrmd (TCTI "tabrmd:...") or the kernel's resource manager
// ("device:/dev/tpmrm0"); the provider is loaded into OpenSSL's default
// library context next to the default provider, once per process, with
// TPM2OPENSSL_TCTI set to that TCTI.
class Tpm2KeyStore final : public KeyStore {
 public:
  // create checks |tcti| and loads the provider. kInvalidArgument for a TCTI
  // without a resource manager, kFailedPrecondition if the provider or the
  // TPM cannot be reached.
  static core::Result<std::unique_ptr<Tpm2KeyStore>> create(const std::string& tcti);

  KeyStoreKind kind() const override { return KeyStoreKind::kTpm2; }
  core::Result<PrivateKey> generate(std::string_view reference) override;
  core::Result<PrivateKey> load(std::string_view reference) override;

  // ensureStorageRootKey creates the SRK (ECC P-256, TCG template H-2) and
  // makes it persistent at kSrkHandle unless a key is already there.
  // Returns true if it created one.
  core::Result<bool> ensureStorageRootKey();

 private:
  explicit Tpm2KeyStore(std::string tcti) : tcti_(std::move(tcti)) {}
  std::string tcti_;
};

// checkTcti accepts TCTIs with a resource manager: "tabrmd", "tabrmd:..."
// and "device:/dev/tpmrmN"; kInvalidArgument (saying why) otherwise.
core::Status checkTcti(std::string_view tcti);

// isTss2PrivateKeyPem reports whether |pem| is a "TSS2 PRIVATE KEY" PEM.
bool isTss2PrivateKeyPem(std::string_view pem);

}  // namespace warden::keystore
