#pragma once

// key_store.h: where a private key lives. One interface, three stores:
//   file    PKCS#8 PEM on disk, 0600                    (file_key_store.h)
//   pkcs11  in a token (HSM / secure element), through
//           libp11's OpenSSL engine                     (pkcs11_key_store.h)
//   tpm2    in a TPM 2.0 under the SRK, through the
//           tpm2-openssl provider and tpm2-abrmd        (tpm2_key_store.h)
// Every store hands back a PrivateKey whose EVP_PKEY signs through its
// backend, so X509_sign, X509_REQ_sign, X509_CRL_sign and
// SSL_CTX_use_PrivateKey work unchanged: the rest of the code never knows
// which store it uses. Keys are named by a reference: a file path (file,
// tpm2: the TSS2 PRIVATE KEY blob, wrapped by the TPM) or an RFC 7512
// PKCS#11 URI (pkcs11).

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::keystore {

enum class KeyStoreKind { kFile, kPkcs11, kTpm2 };

// keyStoreKindName returns "file", "pkcs11" or "tpm2".
std::string_view keyStoreKindName(KeyStoreKind kind);
// parseKeyStoreKind parses a kind name; kInvalidArgument otherwise.
core::Result<KeyStoreKind> parseKeyStoreKind(std::string_view name);

// PrivateKey is a signing key held by a key store. get() stays valid for
// the PrivateKey's life; the backend (engine, provider) outlives it.
class PrivateKey {
 public:
  PrivateKey(crypto::EvpPkeyPtr key, KeyStoreKind kind, std::string reference)
      : key_(std::move(key)), kind_(kind), reference_(std::move(reference)) {}

  EVP_PKEY* get() const { return key_.get(); }
  KeyStoreKind kind() const { return kind_; }
  // reference returns the key's name (a path or a PKCS#11 URI without any
  // PIN); safe to log and to store in a config file.
  const std::string& reference() const { return reference_; }
  // release hands the EVP_PKEY over (e.g. to pki::CaMaterial).
  crypto::EvpPkeyPtr release() { return std::move(key_); }
  // shared returns a new owning reference to the same EVP_PKEY.
  std::shared_ptr<EVP_PKEY> shared() const;

 private:
  crypto::EvpPkeyPtr key_;
  KeyStoreKind kind_;
  std::string reference_;
};

// KeyStore creates and opens keys in one place.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  virtual KeyStoreKind kind() const = 0;

  // generate creates a new EC P-256 key named |reference| inside the store
  // and returns it. Hardware stores create it non-extractable (PKCS#11:
  // CKA_SENSITIVE, !CKA_EXTRACTABLE; TPM: fixedTPM|fixedParent); the file
  // store writes a 0600 PEM. kAlreadyExists if the name is taken.
  virtual core::Result<PrivateKey> generate(std::string_view reference) = 0;

  // load opens the existing key |reference|. kNotFound if there is none,
  // kPermissionDenied for a PIN file that is not 0600 or a refused login.
  virtual core::Result<PrivateKey> load(std::string_view reference) = 0;
};

// KeyStoreOptions selects and configures a store.
struct KeyStoreOptions {
  KeyStoreKind kind = KeyStoreKind::kFile;
  // tpm2: the TCTI of the TPM ("tabrmd:bus_type=session", "tabrmd",
  // "device:/dev/tpmrm0"); a TCTI without a resource manager is refused.
  std::string tcti;
  // pkcs11: the module to use when a URI has no module-path.
  std::string pkcs11_module;
};

// makeKeyStore returns the store |options| names; kInvalidArgument for
// a bad TCTI, kFailedPrecondition if its backend cannot be loaded.
core::Result<std::unique_ptr<KeyStore>> makeKeyStore(const KeyStoreOptions& options);

// keyStoreForReference returns the store that holds |reference|: pkcs11
// for a PKCS#11 URI, file otherwise (a TPM key needs its TCTI, so callers
// that use one say so with makeKeyStore).
core::Result<std::unique_ptr<KeyStore>> keyStoreForReference(std::string_view reference);

// loadKey opens |reference| in the store keyStoreForReference picks.
core::Result<PrivateKey> loadKey(std::string_view reference);

// readPinFile reads a PIN from |path|: a regular file owned by this user,
// mode 0600 or 0400, at most 256 bytes, one trailing newline stripped.
// kPermissionDenied (with the chmod to run) otherwise. The PIN is never
// logged or put in an error message.
core::Result<std::string> readPinFile(const std::string& path);

}  // namespace warden::keystore
