#pragma once

// quote.h: verification of attestation evidence (docs/attestation.md,
// "Checks, in one place, failing closed"). These functions judge the
// evidence alone; the nonce store, the AK registry and reference values are
// the caller's.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "trust/evidence.h"

namespace warden::trust {

// Check is a verdict on one piece of evidence. |reason| is the
// `attestation_failed` reason code (docs/events.md) when !ok; |detail| says
// what exactly differed, for the event log (never key material).
struct Check {
  bool ok = false;
  std::string reason;
  std::string detail;
};

// Reason codes produced here.
inline constexpr std::string_view kReasonBadQuote = "bad_quote";
inline constexpr std::string_view kReasonNonceMismatch = "nonce_mismatch";
inline constexpr std::string_view kReasonPcrMismatch = "pcr_mismatch";
inline constexpr std::string_view kReasonResetCountRegressed = "reset_count_regressed";
inline constexpr std::string_view kReasonBadSignature = "bad_signature";
inline constexpr std::string_view kReasonForeignIdentity = "foreign_identity";

struct QuoteExpectation {
  std::string nonce;            // the 32 raw nonce bytes
  uint32_t pcr = 10;            // selection must be exactly SHA-256 {pcr}
  std::string ak_public;        // the registered AK: marshalled TPM2B_PUBLIC
  std::optional<uint32_t> min_reset_count;  // last accepted resetCount
};

// QuoteResult carries the verdict and, when the quote was authentic (its
// signature verified), the TPM's clock info from it.
struct QuoteResult {
  Check check;
  uint32_t reset_count = 0;
  uint64_t clock = 0;
};

// verifyQuote checks a tpm2-quote: TPMS_ATTEST parses with no trailing
// bytes, magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_QUOTE (else
// bad_quote); the ECDSA P-256/SHA-256 signature by the AK |expect.ak_public|
// over the quote bytes (else bad_signature; checked before anything signed
// is believed); extraData == |expect.nonce| (nonce_mismatch); pcrSelect is
// exactly SHA-256 {|expect.pcr|} and pcrDigest == SHA-256(replayPcr(log))
// (pcr_mismatch); resetCount >= |expect.min_reset_count|
// (reset_count_regressed). An AK that fails checkAkPublic gives bad_signature.
QuoteResult verifyQuote(const Evidence& ev, const QuoteExpectation& expect);

// verifySignedLog checks a signed-log: the signature by |device_key| (DER
// ECDSA, or RSA PKCS#1 v1.5 or PSS, all SHA-256) over the decoded payload or
// over the text of payload_b64 (else bad_signature, checked first); the
// payload's nonce == |nonce| as sent, base64url (nonce_mismatch); and its
// spiffe_id == |spiffe_id| (foreign_identity).
Check verifySignedLog(const Evidence& ev, std::string_view nonce, std::string_view spiffe_id, EVP_PKEY* device_key);

}  // namespace warden::trust
