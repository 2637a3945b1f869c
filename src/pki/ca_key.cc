#include "pki/ca_key.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "keystore/key_store.h"

namespace warden::pki {

namespace {
constexpr size_t kMaxKeyFileBytes = 64 * 1024;
}  // namespace

core::Result<EvpPkeyPtr> loadCaKey(std::string_view key_ref) {
  if (key_ref.empty()) return core::invalidArgument("the CA has no key reference (is it the offline root?)");
  std::string_view path = key_ref;
  if (path.substr(0, 5) == "file:") path.remove_prefix(5);
  if (key_ref.substr(0, 7) == "pkcs11:") {
    // A key in an HSM (RFC 7512 URI, PIN from its pin-source file): it signs
    // through the token and never leaves it.
    WARDEN_ASSIGN_OR_RETURN(keystore::PrivateKey key, keystore::loadKey(key_ref));
    return key.release();
  }
  if (key_ref.substr(0, 4) == "tpm:") {
    return core::invalidArgument("CA keys in a TPM are not supported: use a key file path or a pkcs11: URI");
  }
  if (path.empty() || path.front() != '/') {
    return core::invalidArgument("a CA key file reference must be an absolute path");
  }
  WARDEN_ASSIGN_OR_RETURN(std::string pem, core::readFile(std::string(path), kMaxKeyFileBytes));
  auto key = crypto::privateKeyFromPem(pem);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key.isOk()) return core::invalidArgument(fmt::format("{} does not hold a readable private key", path));
  return std::move(key).value();
}

core::Result<CaMaterial> loadCa(std::string_view name, std::string_view cert_pem, std::string_view key_ref,
                                std::string_view pki_url) {
  WARDEN_ASSIGN_OR_RETURN(X509Ptr cert, crypto::certFromPem(cert_pem));
  WARDEN_ASSIGN_OR_RETURN(EvpPkeyPtr key, loadCaKey(key_ref));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return core::invalidArgument(fmt::format("the key of CA '{}' does not match its certificate", name));
  }
  return CaMaterial{std::move(cert), std::move(key), std::string(name), std::string(pki_url)};
}

}  // namespace warden::pki
