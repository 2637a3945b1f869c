// verifySignedLog against real signatures by device keys (EC P-256 and RSA
// with PKCS#1 v1.5 and PSS), and forgeries.

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/rsa.h>

#include "crypto/crypto.h"
#include "trust/quote.h"

namespace warden::trust {
namespace {

using nlohmann::json;

constexpr const char* kSpiffe = "spiffe://example.org/device/sensor-1";

std::string sign(EVP_PKEY* key, std::string_view message, int rsa_padding = 0) {
  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, key, nullptr), 1);
  if (rsa_padding != 0) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, rsa_padding), 1);
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(message.data());
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, in, message.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, message.size()), 1);
  sig.resize(len);
  return sig;
}

class SignedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ec_key_ = std::move(crypto::generateEcKey()).value();
    nonce_ = crypto::base64UrlEncode(crypto::randomBytes(32));
  }

  // evidence returns parsed signed-log evidence whose payload names
  // |payload_nonce| and |spiffe|, signed by |sign_fn| over |message_of|.
  template <typename SignFn>
  Evidence evidence(SignFn sign_fn, bool over_b64 = false, std::string payload_nonce = "", std::string spiffe = kSpiffe) {
    if (payload_nonce.empty()) payload_nonce = nonce_;
    Measurement m;
    m.digest[0] = 1;
    m.name = "fw.bin";
    const json payload = {{"nonce", payload_nonce},
                          {"spiffe_id", spiffe},
                          {"boot_id", crypto::hexEncode(crypto::randomBytes(16))},
                          {"log", logToJson({m})}};
    const std::string payload_text = payload.dump();
    const std::string payload_b64 = crypto::base64Encode(payload_text);
    const std::string sig = sign_fn(over_b64 ? payload_b64 : payload_text);
    const json body = {{"nonce", nonce_},
                       {"kind", "signed-log"},
                       {"payload", payload_b64},
                       {"signature", crypto::base64Encode(sig)}};
    auto ev = parseEvidence(body.dump());
    EXPECT_TRUE(ev.isOk()) << ev.status().message();
    return ev.isOk() ? std::move(ev).value() : Evidence{};
  }

  auto ecSigner() {
    return [this](std::string_view m) { return sign(ec_key_.get(), m); };
  }

  crypto::EvpPkeyPtr ec_key_;
  std::string nonce_;
};

TEST_F(SignedLogTest, EcSignatureOverThePayloadVerifies) {
  const Check c = verifySignedLog(evidence(ecSigner()), nonce_, kSpiffe, ec_key_.get());
  EXPECT_TRUE(c.ok) << c.reason << ": " << c.detail;
}

TEST_F(SignedLogTest, SignatureOverTheBase64TextVerifies) {
  EXPECT_TRUE(verifySignedLog(evidence(ecSigner(), /*over_b64=*/true), nonce_, kSpiffe, ec_key_.get()).ok);
}

TEST_F(SignedLogTest, RsaPkcs1AndPssSignaturesVerify) {
  crypto::EvpPkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
  ASSERT_TRUE(rsa);
  auto pkcs1 = [&](std::string_view m) { return sign(rsa.get(), m, RSA_PKCS1_PADDING); };
  auto pss = [&](std::string_view m) { return sign(rsa.get(), m, RSA_PKCS1_PSS_PADDING); };
  EXPECT_TRUE(verifySignedLog(evidence(pkcs1), nonce_, kSpiffe, rsa.get()).ok);
  EXPECT_TRUE(verifySignedLog(evidence(pss), nonce_, kSpiffe, rsa.get()).ok);
  EXPECT_EQ(verifySignedLog(evidence(ecSigner()), nonce_, kSpiffe, rsa.get()).reason, kReasonBadSignature);
}

TEST_F(SignedLogTest, AnotherKeysSignatureIsBadSignature) {
  crypto::EvpPkeyPtr other = std::move(crypto::generateEcKey()).value();
  EXPECT_EQ(verifySignedLog(evidence(ecSigner()), nonce_, kSpiffe, other.get()).reason, kReasonBadSignature);
  EXPECT_EQ(verifySignedLog(evidence(ecSigner()), nonce_, kSpiffe, nullptr).reason, kReasonBadSignature);
}

TEST_F(SignedLogTest, AlteredPayloadIsBadSignature) {
  Evidence ev = evidence(ecSigner());
  // Re-encode a payload with another log, keeping the original signature.
  json payload = json::parse(ev.payload);
  payload["log"][0]["digest"] = digestText(Digest{});
  const json body = {{"nonce", nonce_},
                     {"kind", "signed-log"},
                     {"payload", crypto::base64Encode(payload.dump())},
                     {"signature", crypto::base64Encode(ev.signature)}};
  auto forged = parseEvidence(body.dump());
  ASSERT_TRUE(forged.isOk());
  EXPECT_EQ(verifySignedLog(*forged, nonce_, kSpiffe, ec_key_.get()).reason, kReasonBadSignature);
  Evidence flipped = ev;
  flipped.signature[10] = static_cast<char>(flipped.signature[10] ^ 1);
  EXPECT_EQ(verifySignedLog(flipped, nonce_, kSpiffe, ec_key_.get()).reason, kReasonBadSignature);
}

TEST_F(SignedLogTest, PayloadForAnotherNonceIsNonceMismatch) {
  const std::string old_nonce = crypto::base64UrlEncode(crypto::randomBytes(32));
  EXPECT_EQ(verifySignedLog(evidence(ecSigner(), false, old_nonce), nonce_, kSpiffe, ec_key_.get()).reason,
            kReasonNonceMismatch);
  // The body's nonce is the challenge's, but the verifier's outstanding one differs.
  const Evidence ev = evidence(ecSigner());
  EXPECT_EQ(verifySignedLog(ev, old_nonce, kSpiffe, ec_key_.get()).reason, kReasonNonceMismatch);
}

TEST_F(SignedLogTest, AnotherDevicesIdentityIsForeignIdentity) {
  const Evidence ev = evidence(ecSigner(), false, "", "spiffe://example.org/device/sensor-2");
  const Check c = verifySignedLog(ev, nonce_, kSpiffe, ec_key_.get());
  EXPECT_EQ(c.reason, kReasonForeignIdentity);
  EXPECT_NE(c.detail.find("sensor-2"), std::string::npos);
}

TEST_F(SignedLogTest, QuoteEvidenceIsNoSignedLog) {
  Evidence ev = evidence(ecSigner());
  ev.kind = EvidenceKind::kTpm2Quote;
  EXPECT_FALSE(verifySignedLog(ev, nonce_, kSpiffe, ec_key_.get()).ok);
}

}  // namespace
}  // namespace warden::trust
