#pragma once

// tss2_private_key.h: the "TSS2 PRIVATE KEY" file format of TPM-held keys
// (the ASN.1 TPMKey of draft-bottomley-tpm2-keys, written by tpm2-openssl and
// Tpm2KeyStore), parsed strictly so that the agent can load the key with
// ESAPI and have the TPM certify it.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::keystore {

// Tss2PrivateKey is a loadable TPM key: its parent's persistent handle and
// the blobs TPM2_Load takes.
struct Tss2PrivateKey {
  uint32_t parent = 0;       // a persistent handle (0x81xxxxxx), the SRK for Warden's keys
  std::string key_public;    // marshalled TPM2B_PUBLIC
  std::string key_private;   // marshalled TPM2B_PRIVATE (wrapped by the parent)
};

// kMaxTss2PemBytes bounds the PEM text parseTss2PrivateKeyPem accepts.
inline constexpr size_t kMaxTss2PemBytes = 16 * 1024;

// parseTss2PrivateKeyDer parses the DER of a TPMKey: type id-loadablekey
// (2.23.133.10.1.3); emptyAuth [0] TRUE if present (a key with a password is
// refused); no policy [1], secret [2] or authPolicy [3] (nothing here can
// satisfy them); description [4] and rsaParent [5] are skipped; parent a
// persistent handle; pubkey and privkey non-empty OCTET STRINGs whose TPM2B
// size prefix matches; nothing after the SEQUENCE. kInvalidArgument saying
// what is wrong otherwise.
core::Result<Tss2PrivateKey> parseTss2PrivateKeyDer(std::string_view der);

// parseTss2PrivateKeyPem decodes a "TSS2 PRIVATE KEY" PEM (at most
// kMaxTss2PemBytes) and parses it with parseTss2PrivateKeyDer.
core::Result<Tss2PrivateKey> parseTss2PrivateKeyPem(std::string_view pem);

}  // namespace warden::keystore
