#pragma once

// fake_verifier.h: a test double of the server's /attest/v1/* endpoints
// that judges with the real verifier primitives of src/trust (no store, no
// posture): enough to run the agent's rounds end to end against swtpm.

#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/device_attestor.h"
#include "crypto/crypto.h"
#include "trust/certify.h"
#include "trust/credential.h"
#include "trust/evidence.h"
#include "trust/quote.h"

namespace warden::testing {

class FakeVerifier : public agent::AttestationApi {
 public:
  using json = nlohmann::json;

  // The device's registered AK (marshalled TPM2B_PUBLIC), if any.
  std::optional<std::string> registered_ak;
  std::optional<uint32_t> last_reset_count;
  std::string ek_ca_pem;         // if set, the EK certificate must chain to it
  EVP_PKEY* device_key = nullptr;  // for signed-log evidence and key_certify proofs
  std::string spiffe_id = "spiffe://example.org/device/sensor-1";
  int registrations = 0;
  int fail_with_status = 0;  // answer every request with this status if set
  json pcrs = {10};          // the challenge's selection
  json last_evidence;
  trust::Check last_check;
  int keys_certified = 0;  // key_certify proofs that verified

  core::Result<Reply> post(std::string_view path, const json& body) override {
    if (fail_with_status != 0) return Reply{fail_with_status, {{"error", "nonce_expired"}, {"message", "too late"}}};
    if (path == "/attest/v1/challenge") {
      nonce_ = crypto::randomBytes(32);
      return Reply{200,
                   {{"nonce", crypto::base64UrlEncode(nonce_)},
                    {"pcrs", pcrs},
                    {"pcr_bank", "sha256"},
                    {"next_due_s", 60},
                    {"ak_registered", registered_ak.has_value()}}};
    }
    if (path == "/attest/v1/ak") return registerAk(body);
    if (path == "/attest/v1/ak/activate") {
      auto secret = crypto::base64Decode(body.value("secret", ""), false);
      if (!pending_ak_ || !secret.isOk() || !crypto::constantTimeEquals(*secret, pending_secret_)) {
        pending_ak_.reset();
        return Reply{400, {{"error", "activation_failed"}, {"message", "wrong secret"}}};
      }
      registered_ak = *pending_ak_;
      pending_ak_.reset();
      ++registrations;
      return Reply{200, {{"ak_name", crypto::hexEncode(*trust::checkAkPublic(*registered_ak))}}};
    }
    if (path == "/attest/v1/evidence") return evidence(body);
    return Reply{404, {{"error", "not_found"}, {"message", "no such route"}}};
  }

 private:
  Reply registerAk(const json& body) {
    auto ek = crypto::base64Decode(body.value("ek_public", ""), false);
    auto ak = crypto::base64Decode(body.value("ak_public", ""), false);
    if (!ek.isOk() || !ak.isOk()) return Reply{400, {{"error", "invalid_argument"}, {"message", "base64"}}};
    auto name = trust::checkAkPublic(*ak);
    if (!name.isOk()) return Reply{400, {{"error", "invalid_argument"}, {"message", name.status().message()}}};
    if (!ek_ca_pem.empty()) {
      auto cert = crypto::base64Decode(body.value("ek_cert", ""), false);
      if (!cert.isOk() || !trust::verifyEkCertificate(*cert, *ek, ek_ca_pem).isOk()) {
        return Reply{403, {{"error", "foreign_tpm"}, {"message", "untrusted EK"}}};
      }
    }
    pending_secret_ = crypto::randomBytes(32);
    auto cred = trust::makeCredential(*ek, *name, pending_secret_);
    if (!cred.isOk()) return Reply{400, {{"error", "invalid_argument"}, {"message", cred.status().message()}}};
    pending_ak_ = *ak;
    return Reply{200,
                 {{"credential_blob", crypto::base64Encode(cred->credential_blob)},
                  {"encrypted_secret", crypto::base64Encode(cred->encrypted_secret)}}};
  }

  Reply evidence(const json& body) {
    last_evidence = body;
    auto ev = trust::parseEvidence(body.dump());
    if (!ev.isOk()) return Reply{400, {{"error", "malformed_evidence"}, {"message", ev.status().message()}}};
    if (nonce_.empty() || ev->nonce != crypto::base64UrlEncode(nonce_)) {
      return Reply{400, {{"error", "nonce_unknown"}, {"message", "not the outstanding nonce"}}};
    }
    const std::string nonce = nonce_;
    nonce_.clear();  // consumed
    if (ev->kind == trust::EvidenceKind::kTpm2Quote) {
      if (!registered_ak) return verdict(trust::Check{false, "foreign_tpm", "no AK"});
      trust::QuoteExpectation e;
      e.nonce = nonce;
      e.ak_public = *registered_ak;
      e.min_reset_count = last_reset_count;
      const trust::QuoteResult r = trust::verifyQuote(*ev, e);
      if (r.check.ok) last_reset_count = r.reset_count;
      if (r.check.ok && ev->key_certify) {
        const trust::Check k = trust::verifyKeyCertify(*ev->key_certify, {nonce, *registered_ak, device_key});
        if (k.ok) ++keys_certified;
        return verdict(k);
      }
      return verdict(r.check);
    }
    return verdict(trust::verifySignedLog(*ev, crypto::base64UrlEncode(nonce), spiffe_id, device_key));
  }

  Reply verdict(const trust::Check& check) {
    last_check = check;
    return Reply{200,
                 {{"result", check.ok ? "ok" : "failed"},
                  {"reason", check.reason},
                  {"state", check.ok ? "healthy" : "quarantined"},
                  {"trust", check.ok ? 100 : 0},
                  {"next_due_s", 60}}};
  }

  std::string nonce_;
  std::optional<std::string> pending_ak_;
  std::string pending_secret_;
};

}  // namespace warden::testing
