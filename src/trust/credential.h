#pragma once

// credential.h: the verifier's side of TPM identity (TPM 2.0 spec part 1
// §24, "Credential Protection"): checks on an attestation key's public area,
// endorsement keys and their vendor certificates, and TPM2_MakeCredential
// done in software so that only the TPM holding both the EK and the AK can
// recover a secret (docs/attestation.md, POST /attest/v1/ak).

#include <string>
#include <string_view>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::trust {

// kAkNameBytes is the size of a TPM name with name algorithm SHA-256
// (2-byte TPM_ALG_SHA256 followed by the 32-byte digest).
inline constexpr size_t kAkNameBytes = 34;

// checkAkPublic parses a marshalled TPM2B_PUBLIC (no trailing bytes) and
// requires: ECC NIST P-256, scheme ECDSA/SHA-256, nameAlg SHA-256,
// attributes restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin|
// userWithAuth and not decrypt, a point on the curve. Returns the AK's TPM
// name (nameAlg || SHA-256(marshalled TPMT_PUBLIC)), raw bytes; else
// kInvalidArgument saying which requirement failed.
core::Result<std::string> checkAkPublic(std::string_view tpm2b_public);

// akPublicKey returns the EVP_PKEY of an AK that passes checkAkPublic, for
// verifying its signatures; the same errors as checkAkPublic.
core::Result<crypto::EvpPkeyPtr> akPublicKey(std::string_view tpm2b_public);

// ekPublicKey converts a marshalled TPM2B_PUBLIC of an endorsement key (RSA
// 2048 or ECC P-256, restricted decryption key, nameAlg SHA-256) to an
// EVP_PKEY owned by the caller; kInvalidArgument otherwise.
core::Result<crypto::EvpPkeyPtr> ekPublicKey(std::string_view tpm2b_public);

// ekFingerprint returns "sha256:<64 hex>" of the EK's DER
// SubjectPublicKeyInfo (one EK binds to one device by this); the errors of
// ekPublicKey.
core::Result<std::string> ekFingerprint(std::string_view tpm2b_public);

// verifyEkCertificate checks that the DER certificate |ek_cert_der| chains
// to one of the certificates in |vendor_cas_pem| (a PEM bundle of any number
// of roots and intermediates; each one is a trust anchor), is within its
// validity period, and that its public key equals |ek_public_tpm2b|'s. EK
// certificates carry a critical subjectAltName (TPM manufacturer, model,
// version as a directoryName, TCG EK Credential Profile §3.2.9) and may carry
// critical TCG extensions OpenSSL does not know; those and only those are
// accepted on the leaf. Returns kPermissionDenied naming the failed check,
// kInvalidArgument for unparsable input.
core::Status verifyEkCertificate(std::string_view ek_cert_der, std::string_view ek_public_tpm2b,
                                 std::string_view vendor_cas_pem);

// Credential is the output of TPM2_MakeCredential, marshalled as the TPM
// takes them: a TPM2B_ID_OBJECT and a TPM2B_ENCRYPTED_SECRET (each with its
// 2-byte size prefix).
struct Credential {
  std::string credential_blob, encrypted_secret;
};

// makeCredential is TPM2_MakeCredential in software (TPM 2.0 spec part 1
// §24): a random seed wrapped to the EK (RSA-OAEP SHA-256 with label
// "IDENTITY\0" for an RSA EK; ECDH with an ephemeral key and KDFe for an ECC
// P-256 EK), KDFa(seed, "STORAGE", |ak_name|) keys AES-128-CFB over
// TPM2B_DIGEST(|secret|), KDFa(seed, "INTEGRITY") keys the HMAC over
// encIdentity || |ak_name|. |ak_name| is a SHA-256 TPM name (34 bytes),
// |secret| 1 to 32 bytes. Only TPM2_ActivateCredential with the AK named
// |ak_name| loaded next to this EK returns |secret|. kInvalidArgument for a
// bad EK or argument, kInternal if OpenSSL fails.
core::Result<Credential> makeCredential(std::string_view ek_public_tpm2b, std::string_view ak_name,
                                        std::string_view secret);

}  // namespace warden::trust
