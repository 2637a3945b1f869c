#pragma once

// tpm_attestor.h: the agent's side of TPM 2.0 attestation, through ESAPI
// (tpm2-tss) on a TCTI: measured boot into PCR 10, the endorsement key and
// its certificate, an attestation key made under the EK, credential
// activation, and quotes (docs/attestation.md).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "trust/measurement.h"

namespace warden::agent {

// kEkCertNvIndex is where TPM manufacturers (and swtpm_setup) store the RSA
// EK certificate (TCG EK Credential Profile §2.2.1.4, "RSA 2048 EK
// Certificate").
inline constexpr uint32_t kEkCertNvIndex = 0x01c00002;

// AkBlobs is an attestation key as the TPM wrapped it: marshalled TPM2B_PUBLIC
// and TPM2B_PRIVATE (the private part is encrypted to the EK; it is still
// kept 0600).
struct AkBlobs {
  std::string public_area;
  std::string private_area;
};

// TpmQuote is what the evidence carries: the TPMS_ATTEST bytes the TPM signed
// (the content of TPM2B_ATTEST) and the marshalled TPMT_SIGNATURE.
struct TpmQuote {
  std::string quote;
  std::string signature;
};

// TpmKeyCertify is the proof that a key lives in this TPM: a TPM2_Certify
// of the key by the AK (the TPMS_ATTEST bytes, the content of TPM2B_ATTEST,
// and the marshalled TPMT_SIGNATURE) and the key's marshalled TPM2B_PUBLIC.
struct TpmKeyCertify {
  std::string attest;
  std::string signature;
  std::string key_public;
};

// EkKind selects the TCG default EK template: RSA 2048 (template L-1, the
// one whose certificate TPMs and swtpm_setup provide at kEkCertNvIndex) or
// ECC NIST P-256 (template L-2).
enum class EkKind { kRsa2048, kEccP256 };

// TpmAttestor owns one ESAPI context on one TCTI and the transient objects
// it makes there (the EK, the loaded AK), which it flushes when destroyed, so
// it also works on a TCTI without a resource manager (swtpm:port=P).
class TpmAttestor {
 public:
  // open connects to the TPM at |tcti| (any tpm2-tss TCTI string, e.g.
  // "tabrmd:bus_type=system", "device:/dev/tpmrm0", "swtpm:port=2321");
  // kFailedPrecondition naming the TCTI if that fails.
  // |ek_kind| picks the EK template (RSA 2048 unless told otherwise).
  static core::Result<std::unique_ptr<TpmAttestor>> open(const std::string& tcti, EkKind ek_kind = EkKind::kRsa2048);
  ~TpmAttestor();
  TpmAttestor(const TpmAttestor&) = delete;
  TpmAttestor& operator=(const TpmAttestor&) = delete;

  // resetCount returns clockInfo.resetCount (TPM2_ReadClock): it grows with
  // each TPM reset, i.e. each boot.
  core::Result<uint32_t> resetCount();
  // extendPcr extends PCR |pcr| of the SHA-256 bank with |digest|. Extends
  // cannot be undone until the next TPM reset.
  core::Status extendPcr(uint32_t pcr, const trust::Digest& digest);
  // readPcr returns the SHA-256 bank's value of PCR |pcr|.
  core::Result<trust::Digest> readPcr(uint32_t pcr);

  // ekPublic returns the marshalled TPM2B_PUBLIC of the EK (TCG EK
  // Credential Profile template L-1 or L-2), created as a transient primary
  // key on first use; the same TPM always yields the same EK.
  core::Result<std::string> ekPublic();
  // ekCertificate returns the DER EK certificate from NV kEkCertNvIndex, or
  // nullopt when the index is absent.
  core::Result<std::optional<std::string>> ekCertificate();

  // createAk creates a restricted ECC P-256 ECDSA-SHA256 signing key
  // (fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign)
  // under the EK and returns its blobs; it does not load it.
  core::Result<AkBlobs> createAk();
  // loadAk loads |ak| under the EK for quote() and activateCredential();
  // kFailedPrecondition if this TPM cannot load it (another TPM's AK).
  core::Status loadAk(const AkBlobs& ak);

  // activateCredential runs TPM2_ActivateCredential with the loaded AK and
  // the EK (authorized by a PolicySecret(TPM_RH_ENDORSEMENT) session) on a
  // marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET; returns the
  // recovered secret. Fails when the credential was made for another EK or
  // another AK name.
  core::Result<std::string> activateCredential(std::string_view credential_blob, std::string_view encrypted_secret);

  // certifyKey loads the key (|key_public| a marshalled TPM2B_PUBLIC,
  // |key_private| a marshalled TPM2B_PRIVATE) under the persistent |parent|
  // (empty authorization, as are the key's), has the loaded AK certify it
  // (TPM2_Certify) with |nonce| (at most 64 bytes) as qualifyingData, and
  // flushes it (and the EK, made anew when a registration needs it, so that
  // a TPM without a resource manager has room). kFailedPrecondition if no AK
  // is loaded or the TPM cannot load the key (another TPM's key).
  core::Result<TpmKeyCertify> certifyKey(uint32_t parent, std::string_view key_public, std::string_view key_private,
                                         std::string_view nonce);

  // quote returns a TPM2_Quote by the loaded AK over the SHA-256 bank's PCR
  // |pcr| with |nonce| (at most 64 bytes) as qualifyingData.
  core::Result<TpmQuote> quote(std::string_view nonce, uint32_t pcr = 10);

 private:
  struct Impl;
  explicit TpmAttestor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::agent
