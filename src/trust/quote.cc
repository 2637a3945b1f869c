#include "trust/quote.h"

#include <cstring>

#include <fmt/format.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
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

// verifyDigestSignature verifies |sig| over |message| with SHA-256 and the
// given RSA padding (0 for non-RSA keys).
bool verifyDigestSignature(EVP_PKEY* key, std::string_view message, std::string_view sig, int rsa_padding) {
  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, key, nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  if (rsa_padding != 0) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, rsa_padding) != 1 ||
        (rsa_padding == RSA_PKCS1_PSS_PADDING && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)) {
      ERR_clear_error();
      return false;
    }
  }
  const int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                                  reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  return rc == 1;
}

// selectionIsExactly reports whether |sel| selects exactly PCR |pcr| of the
// SHA-256 bank and nothing else.
bool selectionIsExactly(const TPML_PCR_SELECTION& sel, uint32_t pcr) {
  if (sel.count != 1) return false;
  const TPMS_PCR_SELECTION& s = sel.pcrSelections[0];
  if (s.hash != TPM2_ALG_SHA256 || s.sizeofSelect > TPM2_PCR_SELECT_MAX || pcr / 8 >= s.sizeofSelect) return false;
  for (uint8_t i = 0; i < s.sizeofSelect; ++i) {
    const uint8_t want = (i == pcr / 8) ? static_cast<uint8_t>(1u << (pcr % 8)) : 0;
    if (s.pcrSelect[i] != want) return false;
  }
  return true;
}

}  // namespace

QuoteResult verifyQuote(const Evidence& ev, const QuoteExpectation& expect) {
  QuoteResult out;
  if (ev.kind != EvidenceKind::kTpm2Quote) {
    out.check = fail(kReasonBadQuote, "the evidence is not a tpm2-quote");
    return out;
  }
  // 1. Structure: a marshalled TPMS_ATTEST of a quote, nothing after it.
  TPMS_ATTEST attest{};
  size_t offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(bytesOf(ev.quote), ev.quote.size(), &offset, &attest) != TSS2_RC_SUCCESS ||
      offset != ev.quote.size()) {
    out.check = fail(kReasonBadQuote, "the quote is not a marshalled TPMS_ATTEST");
    return out;
  }
  if (attest.magic != TPM2_GENERATED_VALUE) {
    out.check = fail(kReasonBadQuote, fmt::format("the quote's magic is 0x{:08x}, not TPM_GENERATED_VALUE", attest.magic));
    return out;
  }
  if (attest.type != TPM2_ST_ATTEST_QUOTE) {
    out.check = fail(kReasonBadQuote, fmt::format("the attestation's type is 0x{:04x}, not TPM_ST_ATTEST_QUOTE", attest.type));
    return out;
  }

  // 2. Authenticity, before anything the quote says is believed.
  auto ak = akPublicKey(expect.ak_public);
  if (!ak.isOk()) {
    out.check = fail(kReasonBadSignature, "the registered AK is unusable: " + ak.status().message());
    return out;
  }
  if (!internal::verifyAkSignature(ak->get(), ev.quote, ev.signature)) {
    out.check = fail(kReasonBadSignature,
                     "the quote's signature (a TPMT_SIGNATURE, ECDSA with SHA-256) does not verify with the device's "
                     "registered AK");
    return out;
  }
  out.reset_count = attest.clockInfo.resetCount;
  out.clock = attest.clockInfo.clock;

  // 3. Freshness.
  const std::string_view extra = viewOf(attest.extraData.buffer, attest.extraData.size);
  if (!crypto::constantTimeEquals(extra, expect.nonce)) {
    out.check = fail(kReasonNonceMismatch, "the quote's qualifying data is not this challenge's nonce");
    return out;
  }
  // 4. Integrity: exactly the PCR we asked for, and its value replays the log.
  const TPMS_QUOTE_INFO& quote = attest.attested.quote;
  if (!selectionIsExactly(quote.pcrSelect, expect.pcr)) {
    out.check = fail(kReasonPcrMismatch, fmt::format("the quote does not select exactly PCR {} of the SHA-256 bank", expect.pcr));
    return out;
  }
  const Digest replayed = replayPcr(ev.log, expect.pcr);
  const std::string expected_digest = crypto::sha256(viewOf(replayed.data(), replayed.size()));
  if (!crypto::constantTimeEquals(viewOf(quote.pcrDigest.buffer, quote.pcrDigest.size), expected_digest)) {
    out.check = fail(kReasonPcrMismatch,
                     fmt::format("PCR {} does not replay the log of {} entries (expected PCR value {})", expect.pcr,
                                 ev.log.size(), digestText(replayed)));
    return out;
  }
  // 5. No going back: a lower resetCount is an old quote or another TPM state.
  if (expect.min_reset_count && attest.clockInfo.resetCount < *expect.min_reset_count) {
    out.check = fail(kReasonResetCountRegressed,
                     fmt::format("the quote's resetCount {} is lower than the last accepted {}",
                                 attest.clockInfo.resetCount, *expect.min_reset_count));
    return out;
  }
  out.check.ok = true;
  return out;
}

Check verifySignedLog(const Evidence& ev, std::string_view nonce, std::string_view spiffe_id, EVP_PKEY* device_key) {
  if (ev.kind != EvidenceKind::kSignedLog) return fail(kReasonBadSignature, "the evidence is not a signed-log");
  if (device_key == nullptr) return fail(kReasonBadSignature, "no device key to verify the signed log with");
  const bool rsa = EVP_PKEY_is_a(device_key, "RSA") == 1;
  bool verified = false;
  for (std::string_view message : {std::string_view(ev.payload), std::string_view(ev.payload_b64)}) {
    if (rsa) {
      verified = verifyDigestSignature(device_key, message, ev.signature, RSA_PKCS1_PADDING) ||
                 verifyDigestSignature(device_key, message, ev.signature, RSA_PKCS1_PSS_PADDING);
    } else {
      verified = verifyDigestSignature(device_key, message, ev.signature, 0);
    }
    if (verified) break;
  }
  if (!verified) return fail(kReasonBadSignature, "the signed log's signature does not verify with the device's key");
  if (!crypto::constantTimeEquals(ev.payload_nonce, nonce) || !crypto::constantTimeEquals(ev.nonce, nonce)) {
    return fail(kReasonNonceMismatch, "the signed payload's nonce is not this challenge's nonce");
  }
  if (ev.spiffe_id != spiffe_id) {
    return fail(kReasonForeignIdentity, fmt::format("the signed payload names {}, not this device", ev.spiffe_id.substr(0, 256)));
  }
  return Check{true, "", ""};
}

}  // namespace warden::trust
