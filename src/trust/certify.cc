#include "trust/certify.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include "crypto/crypto.h"
#include "trust/credential.h"
#include "trust/tpm_public.h"

namespace warden::trust {

namespace {

Check fail(std::string_view reason, std::string detail) { return Check{false, std::string(reason), std::move(detail)}; }

const uint8_t* bytesOf(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string_view viewOf(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// digestName maps a TPM hash algorithm to OpenSSL's name; nullptr for the
// ones a name may not use here (SHA-1 is too weak to bind a key).
const char* digestName(TPM2_ALG_ID alg) {
  switch (alg) {
    case TPM2_ALG_SHA256: return "SHA256";
    case TPM2_ALG_SHA384: return "SHA384";
    case TPM2_ALG_SHA512: return "SHA512";
    default: return nullptr;
  }
}

// nameOf returns the TPM name of a public area (TPM 2.0 Part 1 §16:
// nameAlg, big-endian, || H_nameAlg(marshalled TPMT_PUBLIC)); empty when the
// digest cannot be computed.
std::string nameOf(const internal::ParsedPublic& pub, const char* digest) {
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_digest(nullptr, digest, nullptr, pub.marshalled.data(), pub.marshalled.size(), md, &len) != 1) {
    ERR_clear_error();
    return {};
  }
  std::string name;
  name.push_back(static_cast<char>(pub.area.nameAlg >> 8));
  name.push_back(static_cast<char>(pub.area.nameAlg & 0xff));
  name.append(reinterpret_cast<const char*>(md), len);
  return name;
}

std::string missingAttributes(TPMA_OBJECT attrs) {
  std::string out;
  auto need = [&](TPMA_OBJECT bit, std::string_view name) {
    if ((attrs & bit) == 0) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  need(TPMA_OBJECT_FIXEDTPM, "fixedTPM");
  need(TPMA_OBJECT_FIXEDPARENT, "fixedParent");
  need(TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin");
  return out;
}

}  // namespace

std::string_view keyInTpm(std::string_view key_store_claim, const store::KeyProof& proof,
                          std::string_view current_key_fp) {
  if (!current_key_fp.empty() && proof.key_fp == current_key_fp) {
    if (proof.result == kKeyInTpmVerified) return kKeyInTpmVerified;
    if (proof.result == kKeyInTpmFailed) return kKeyInTpmFailed;
  }
  return key_store_claim == "tpm2" ? kKeyInTpmClaimed : kKeyInTpmNotClaimed;
}

Check verifyKeyCertify(const KeyCertify& proof, const KeyCertifyExpectation& expect) {
  // 1. Structure: a TPMS_ATTEST of a certification, and a public area.
  TPMS_ATTEST attest{};
  size_t offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(bytesOf(proof.attest), proof.attest.size(), &offset, &attest) !=
          TSS2_RC_SUCCESS ||
      offset != proof.attest.size()) {
    return fail(kReasonBadCertify, "key_certify: 'attest' is not a marshalled TPMS_ATTEST");
  }
  if (attest.magic != TPM2_GENERATED_VALUE) {
    return fail(kReasonBadCertify,
                fmt::format("key_certify: the attestation's magic is 0x{:08x}, not TPM_GENERATED_VALUE", attest.magic));
  }
  if (attest.type != TPM2_ST_ATTEST_CERTIFY) {
    return fail(kReasonBadCertify,
                fmt::format("key_certify: the attestation's type is 0x{:04x}, not TPM_ST_ATTEST_CERTIFY", attest.type));
  }
  auto pub = internal::parsePublic(proof.key_public, "key_certify 'public'");
  if (!pub.isOk()) return fail(kReasonBadCertify, pub.status().message());
  const char* digest = digestName(pub->area.nameAlg);
  if (digest == nullptr) {
    return fail(kReasonBadCertify,
                fmt::format("key_certify: the key's nameAlg 0x{:04x} is not SHA-256, SHA-384 or SHA-512",
                            pub->area.nameAlg));
  }

  // 2. Authenticity: signed by this device's registered AK.
  auto ak = akPublicKey(expect.ak_public);
  if (!ak.isOk()) return fail(kReasonBadSignature, "the registered AK is unusable: " + ak.status().message());
  if (!internal::verifyAkSignature(ak->get(), proof.attest, proof.signature)) {
    return fail(kReasonBadSignature,
                "key_certify: the certification's signature does not verify with the device's registered AK");
  }

  // 3. The certified object is the public area presented.
  const std::string name = nameOf(*pub, digest);
  const TPM2B_NAME& certified = attest.attested.certify.name;
  if (name.empty() || !crypto::constantTimeEquals(viewOf(certified.name, certified.size), name)) {
    return fail(kReasonKeyNameMismatch,
                fmt::format("key_certify: the TPM certified the object named {}, not the presented public area "
                            "(name {})",
                            crypto::hexEncode(viewOf(certified.name, certified.size)), crypto::hexEncode(name)));
  }

  // 4. That key is the device's: the key of the certificate it presented.
  auto key = internal::publicKeyOf(pub->area, "key_certify 'public'");
  if (!key.isOk()) return fail(kReasonForeignKey, key.status().message());
  if (expect.device_key == nullptr || EVP_PKEY_eq(key->get(), expect.device_key) != 1) {
    ERR_clear_error();
    return fail(kReasonForeignKey,
                "key_certify: the certified TPM key is not the key of the certificate this device presented");
  }

  // 5. The key was made by the TPM and can never leave it.
  const std::string missing = missingAttributes(pub->area.objectAttributes);
  if (!missing.empty()) {
    return fail(kReasonKeyNotFixed,
                fmt::format("key_certify: the key lacks {} (it may have been imported or may be duplicated out of "
                            "the TPM)",
                            missing));
  }
  // 6. Freshness: made for this round. Checked after what the proof is
  // about, so that a proof of the wrong key says so even when it is stale.
  if (!crypto::constantTimeEquals(viewOf(attest.extraData.buffer, attest.extraData.size), expect.nonce)) {
    return fail(kReasonNonceMismatch, "key_certify: the certification's qualifying data is not this challenge's nonce");
  }
  return Check{true, "", ""};
}

}  // namespace warden::trust
