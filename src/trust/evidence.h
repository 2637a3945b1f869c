#pragma once

// evidence.h: the body of POST /attest/v1/evidence (docs/attestation.md),
// parsed with explicit limits, and the measurement log's replay and wire
// form. Shared by the agent (which builds evidence) and the verifier.

#include <cstddef>
#include <cstdint>
#include <string>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "trust/measurement.h"

namespace warden::trust {

enum class EvidenceKind : uint8_t { kTpm2Quote, kSignedLog };

// evidenceKindName returns the wire name: "tpm2-quote" or "signed-log".
std::string_view evidenceKindName(EvidenceKind kind);

// KeyCertify is the optional proof that the device key lives in the TPM
// (docs/attestation.md, "key_certify"): a TPM2_Certify of the device key by
// the AK, over this round's nonce. Nothing in it is verified yet: see
// verifyKeyCertify (trust/certify.h).
struct KeyCertify {
  std::string attest;      // decoded TPMS_ATTEST bytes (the content of TPM2B_ATTEST)
  std::string signature;   // decoded marshalled TPMT_SIGNATURE by the AK
  std::string key_public;  // decoded marshalled TPM2B_PUBLIC of the device key
  bool operator==(const KeyCertify&) const = default;
};

// Evidence is one parsed evidence body. Nothing in it is verified yet: see
// verifyQuote / verifySignedLog (trust/quote.h).
struct Evidence {
  std::string nonce;            // as sent (base64url, no padding; decodes to 32 bytes)
  EvidenceKind kind = EvidenceKind::kTpm2Quote;
  std::string quote;            // decoded TPMS_ATTEST bytes (tpm2-quote)
  std::string signature;        // decoded signature bytes (marshalled TPMT_SIGNATURE / DER)
  std::string payload;          // decoded payload bytes (signed-log)
  std::string payload_b64;      // payload as sent
  std::string payload_nonce, spiffe_id, boot_id;  // from the signed-log payload
  std::vector<Measurement> log;
  std::optional<KeyCertify> key_certify;  // tpm2-quote only; absent from older agents
};

inline constexpr size_t kMaxEvidenceBytes = 256 * 1024, kMaxLogEntries = 1024;
// kMaxMeasurementNameBytes bounds Measurement::name (docs/attestation.md).
inline constexpr size_t kMaxMeasurementNameBytes = 255;
// kNonceBytes is the size of a challenge nonce before base64url.
inline constexpr size_t kNonceBytes = 32;

// parseEvidence parses an evidence body (JSON, at most kMaxEvidenceBytes,
// at most kMaxLogEntries log entries, no unknown fields; a tpm2-quote may
// carry a `key_certify` object {attest, signature, public}). It returns
// kInvalidArgument with a message naming the offending field for anything
// malformed (the verifier's `malformed_evidence` refusal).
core::Result<Evidence> parseEvidence(std::string_view body);

// parseLog parses a measurement log in its wire form (a JSON array of
// {pcr, digest, type, name}); kInvalidArgument naming the entry otherwise.
core::Result<std::vector<Measurement>> parseLog(const nlohmann::json& log);

// replayPcr returns the value PCR |pcr| (SHA-256 bank) has after extending
// it, from 32 zero bytes, with the digest of every entry of |log| for that
// PCR in order: PCR := SHA-256(PCR || digest).
Digest replayPcr(const std::vector<Measurement>& log, uint32_t pcr = 10);

// logToJson returns the wire form of |log| (docs/attestation.md):
// [{"pcr": 10, "digest": "sha256:...", "type": "firmware", "name": "..."}].
nlohmann::json logToJson(const std::vector<Measurement>& log);

}  // namespace warden::trust
