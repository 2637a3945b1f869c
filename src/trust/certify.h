#pragma once

// certify.h: verification of the proof that a device's key lives in its TPM
// (docs/attestation.md, "The device key in the TPM"): a TPM2_Certify of the
// device key by the device's registered attestation key, over this round's
// nonce. Like quote.h it judges the proof alone; the AK registry, the nonce
// and the device's certificate are the caller's.

#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "store/store.h"
#include "trust/evidence.h"
#include "trust/quote.h"

namespace warden::trust {

// Reason codes produced here besides kReasonBadSignature and
// kReasonNonceMismatch (quote.h), all `attestation_failed` reasons.
inline constexpr std::string_view kReasonBadCertify = "bad_certify";
inline constexpr std::string_view kReasonKeyNameMismatch = "key_name_mismatch";
inline constexpr std::string_view kReasonForeignKey = "foreign_key";
inline constexpr std::string_view kReasonKeyNotFixed = "key_not_fixed";
// kReasonKeyUnproven: a TPM quote without a proof from a device whose last
// proof for its current key failed (only a good proof or a new key clears it).
inline constexpr std::string_view kReasonKeyUnproven = "key_unproven";

// The values of `key_in_tpm` in a device's posture (docs/attestation.md).
inline constexpr std::string_view kKeyInTpmNotClaimed = "not_claimed";
inline constexpr std::string_view kKeyInTpmClaimed = "claimed";
inline constexpr std::string_view kKeyInTpmVerified = "verified";
inline constexpr std::string_view kKeyInTpmFailed = "failed";

// keyInTpm returns where the proof that a device's key is in its TPM stands
// for the key of its current certificate (|current_key_fp|, "" if none):
// the last proof's result ("verified" or "failed") if that proof was about
// this key; otherwise "claimed" when the device claims a tpm2 key store and
// "not_claimed" when it does not. A renewal with a new key therefore falls
// back to "claimed" until the key is proven again.
std::string_view keyInTpm(std::string_view key_store_claim, const store::KeyProof& proof,
                          std::string_view current_key_fp);

struct KeyCertifyExpectation {
  std::string nonce;              // the 32 raw nonce bytes of this round
  std::string ak_public;          // the registered AK: marshalled TPM2B_PUBLIC
  EVP_PKEY* device_key = nullptr; // the public key of the certificate the device presented (not owned)
};

// verifyKeyCertify checks a key_certify proof, reporting the first failure
// in this order: |proof.attest| is a marshalled TPMS_ATTEST with no trailing
// bytes, magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_CERTIFY, and
// |proof.key_public| a marshalled TPM2B_PUBLIC with a SHA-256, SHA-384 or
// SHA-512 nameAlg (bad_certify); the ECDSA P-256/SHA-256 signature by the AK
// |expect.ak_public| over the attest bytes (bad_signature, before anything
// signed is believed); the certified name == nameAlg ||
// H_nameAlg(TPMT_PUBLIC of key_public) (key_name_mismatch); that public key
// == |expect.device_key| (foreign_key); its objectAttributes have fixedTPM,
// fixedParent and sensitiveDataOrigin (key_not_fixed); extraData ==
// |expect.nonce| (nonce_mismatch). |detail| never holds key material.
Check verifyKeyCertify(const KeyCertify& proof, const KeyCertifyExpectation& expect);

}  // namespace warden::trust
