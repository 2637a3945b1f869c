#pragma once

// ca_key.h: the one place a CA's private key is obtained. A CA key is named
// by a reference stored in the CA inventory (store::CaRecord::key_ref): a
// file path (optionally "file:PATH") or an RFC 7512 "pkcs11:..." URI of a key
// in an HSM (keystore::loadKey). Callers get an EVP_PKEY and never see where
// it lives.

#include <string>
#include <string_view>

#include "core/status.h"
#include "pki/certificate_authority.h"

namespace warden::pki {

// loadCaKey resolves |key_ref| to a private key. kInvalidArgument for an
// empty or unsupported reference (the message says which schemes work),
// kNotFound / kPermissionDenied for an unreadable file. The key material is
// never part of an error message.
core::Result<EvpPkeyPtr> loadCaKey(std::string_view key_ref);

// loadCa builds the CaMaterial of CA |name| from its certificate |cert_pem|
// and the key behind |key_ref|, and checks that they belong together
// (kInvalidArgument otherwise). |pki_url| is copied into the material.
core::Result<CaMaterial> loadCa(std::string_view name, std::string_view cert_pem, std::string_view key_ref,
                                std::string_view pki_url);

}  // namespace warden::pki
