#pragma once

// tpm_public.h (internal to src/trust): parsing a marshalled TPM2B_PUBLIC
// and converting its key to OpenSSL. Shared by credential.cc and quote.cc.

#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::trust::internal {

// ParsedPublic is a TPM2B_PUBLIC split into the unmarshalled TPMT_PUBLIC and
// its marshalled bytes (what the TPM name is computed over).
struct ParsedPublic {
  TPMT_PUBLIC area{};
  std::string marshalled;  // the TPMT_PUBLIC bytes inside the TPM2B
};

// parsePublic unmarshals |tpm2b_public| (size prefix equal to the rest, no
// trailing bytes); kInvalidArgument mentioning |what| otherwise.
core::Result<ParsedPublic> parsePublic(std::string_view tpm2b_public, std::string_view what);

// publicKeyOf converts an RSA or ECC NIST P-256 public area to an EVP_PKEY;
// kInvalidArgument for other types, bad sizes or a point not on the curve.
core::Result<crypto::EvpPkeyPtr> publicKeyOf(const TPMT_PUBLIC& area, std::string_view what);

// verifyAkSignature verifies |marshalled_sig| (a TPMT_SIGNATURE: ECDSA with
// SHA-256, r and s at most 32 bytes each) by |ak| over |message|; false for
// anything else, including a signature that does not parse exactly.
bool verifyAkSignature(EVP_PKEY* ak, std::string_view message, std::string_view marshalled_sig);

// tpmName returns nameAlg (big-endian) || SHA-256(marshalled); the caller
// has checked that nameAlg is SHA-256.
std::string tpmName(const ParsedPublic& pub);

}  // namespace warden::trust::internal
