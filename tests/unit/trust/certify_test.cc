// Proofs that a key lives in the TPM, made by a real TPM (swtpm) through the
// agent's ESAPI code (TpmAttestor::certifyKey) and judged by
// verifyKeyCertify; every failure reason comes from a real tampering or a
// real key with other attributes.

#include "trust/certify.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <tss2/tss2_tpm2_types.h>

#include "agent/tpm_attestor.h"
#include "crypto/crypto.h"
#include "trust/tpm_public.h"
#include "unit/trust/soft_tpm.h"

namespace warden::trust {
namespace {

using agent::AkBlobs;
using agent::TpmAttestor;
using agent::TpmKeyCertify;
using nlohmann::json;

using testing::KeyBlobs;
using testing::TpmKeys;

constexpr uint32_t kSrk = testing::kSrkHandle;

constexpr TPMA_OBJECT kDeviceKey = testing::kDeviceKeyAttributes;

crypto::EvpPkeyPtr publicKeyOf(const std::string& tpm2b_public) {
  auto parsed = internal::parsePublic(tpm2b_public, "test key");
  EXPECT_TRUE(parsed.isOk());
  if (!parsed.isOk()) return nullptr;
  auto key = internal::publicKeyOf(parsed->area, "test key");
  EXPECT_TRUE(key.isOk());
  return key.isOk() ? std::move(key).value() : nullptr;
}

// proofOf sends |c| through the real evidence parser, as the agent does.
KeyCertify proofOf(const TpmKeyCertify& c, const std::string& nonce) {
  const json body = {{"nonce", crypto::base64UrlEncode(nonce)},
                     {"kind", "tpm2-quote"},
                     {"quote", crypto::base64Encode("q")},
                     {"signature", crypto::base64Encode("s")},
                     {"log", json::array()},
                     {"key_certify",
                      {{"attest", crypto::base64Encode(c.attest)},
                       {"signature", crypto::base64Encode(c.signature)},
                       {"public", crypto::base64Encode(c.key_public)}}}};
  auto ev = parseEvidence(body.dump());
  EXPECT_TRUE(ev.isOk()) << ev.status().message();
  if (!ev.isOk() || !ev->key_certify) return KeyCertify{};
  return *ev->key_certify;
}

class CertifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tpm_ = std::make_unique<testing::SoftTpm>();
    ASSERT_TRUE(tpm_->ok());
    {
      // swtpm serves one connection at a time: make the keys, then let go.
      TpmKeys keys(tpm_->tcti());
      ASSERT_TRUE(keys.makeSrk());
      device_ = keys.makeKey(kDeviceKey);
      other_ = keys.makeKey(kDeviceKey);
      duplicable_ = keys.makeKey(TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT);
      ASSERT_FALSE(device_.key_public.empty() || other_.key_public.empty() || duplicable_.key_public.empty());
    }
    auto attestor = TpmAttestor::open(tpm_->tcti());
    ASSERT_TRUE(attestor.isOk()) << attestor.status().message();
    attestor_ = std::move(attestor).value();
    auto ak = attestor_->createAk();
    ASSERT_TRUE(ak.isOk()) << ak.status().message();
    ak_ = *ak;
    ASSERT_TRUE(attestor_->loadAk(ak_).isOk());
    nonce_ = crypto::randomBytes(32);
    device_key_ = publicKeyOf(device_.key_public);
  }

  TpmKeyCertify certify(const KeyBlobs& key, const std::string& nonce) {
    auto c = attestor_->certifyKey(kSrk, key.key_public, key.key_private, nonce);
    EXPECT_TRUE(c.isOk()) << c.status().message();
    return c.isOk() ? *c : TpmKeyCertify{};
  }

  KeyCertifyExpectation expectation(EVP_PKEY* device_key) const {
    return KeyCertifyExpectation{nonce_, ak_.public_area, device_key};
  }

  std::unique_ptr<testing::SoftTpm> tpm_;
  std::unique_ptr<TpmAttestor> attestor_;
  AkBlobs ak_;
  KeyBlobs device_, other_, duplicable_;
  crypto::EvpPkeyPtr device_key_;
  std::string nonce_;
};

TEST_F(CertifyTest, CertifiedTpmKeyOfTheDevicePasses) {
  const Check c = verifyKeyCertify(proofOf(certify(device_, nonce_), nonce_), expectation(device_key_.get()));
  EXPECT_TRUE(c.ok) << c.reason << ": " << c.detail;
}

TEST_F(CertifyTest, TamperedAttestFailsTheSignature) {
  TpmKeyCertify proof = certify(device_, nonce_);
  ASSERT_GT(proof.attest.size(), 10u);
  proof.attest[proof.attest.size() - 1] ^= 0x01;  // in qualifiedName: still parses
  const Check c = verifyKeyCertify(proofOf(proof, nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonBadSignature) << c.detail;
}

TEST_F(CertifyTest, TamperedMagicIsNotACertification) {
  TpmKeyCertify proof = certify(device_, nonce_);
  ASSERT_GT(proof.attest.size(), 10u);
  proof.attest[0] ^= 0x01;
  const Check c = verifyKeyCertify(proofOf(proof, nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonBadCertify) << c.detail;
}

TEST_F(CertifyTest, TruncatedAttestIsNotACertification) {
  TpmKeyCertify proof = certify(device_, nonce_);
  ASSERT_GT(proof.attest.size(), 10u);
  proof.attest.resize(proof.attest.size() - 3);
  const Check c = verifyKeyCertify(proofOf(proof, nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonBadCertify) << c.detail;
}

TEST_F(CertifyTest, QuoteIsNotACertification) {
  auto q = attestor_->quote(nonce_);
  ASSERT_TRUE(q.isOk());
  TpmKeyCertify proof = certify(device_, nonce_);
  proof.attest = q->quote;
  proof.signature = q->signature;
  const Check c = verifyKeyCertify(proofOf(proof, nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonBadCertify) << c.detail;
}

TEST_F(CertifyTest, CertificationOverAnotherNonceFails) {
  const std::string stale = crypto::randomBytes(32);
  const Check c = verifyKeyCertify(proofOf(certify(device_, stale), nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonNonceMismatch) << c.detail;
}

TEST_F(CertifyTest, PublicAreaOfAnotherKeyThanTheCertifiedOneFails) {
  TpmKeyCertify proof = certify(other_, nonce_);
  proof.key_public = device_.key_public;  // claims the device key, certifies another
  const Check c = verifyKeyCertify(proofOf(proof, nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonKeyNameMismatch) << c.detail;
}

TEST_F(CertifyTest, CertifiedKeyThatIsNotTheCertificatesKeyFails) {
  const Check c = verifyKeyCertify(proofOf(certify(other_, nonce_), nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonForeignKey) << c.detail;
}

TEST_F(CertifyTest, DuplicableKeyFails) {
  crypto::EvpPkeyPtr key = publicKeyOf(duplicable_.key_public);
  const Check c = verifyKeyCertify(proofOf(certify(duplicable_, nonce_), nonce_), expectation(key.get()));
  EXPECT_EQ(c.reason, kReasonKeyNotFixed) << c.detail;
  EXPECT_NE(c.detail.find("fixedTPM"), std::string::npos) << c.detail;
  EXPECT_NE(c.detail.find("fixedParent"), std::string::npos) << c.detail;
}

TEST_F(CertifyTest, SignatureByAnotherAkFails) {
  auto other_ak = attestor_->createAk();
  ASSERT_TRUE(other_ak.isOk());
  ASSERT_TRUE(attestor_->loadAk(*other_ak).isOk());  // this TPM's, but not the registered one
  const Check c = verifyKeyCertify(proofOf(certify(device_, nonce_), nonce_), expectation(device_key_.get()));
  EXPECT_EQ(c.reason, kReasonBadSignature) << c.detail;
}

TEST_F(CertifyTest, KeyOfAnotherTpmCannotBeCertified) {
  testing::SoftTpm other_tpm;
  ASSERT_TRUE(other_tpm.ok());
  KeyBlobs foreign;
  {
    TpmKeys keys(other_tpm.tcti());
    ASSERT_TRUE(keys.makeSrk());
    foreign = keys.makeKey(kDeviceKey);
  }
  EXPECT_FALSE(attestor_->certifyKey(kSrk, foreign.key_public, foreign.key_private, nonce_).isOk());
}

TEST(KeyInTpm, FollowsTheProofOfTheCurrentKeyElseTheClaim) {
  EXPECT_EQ(keyInTpm("", {}, "aa"), kKeyInTpmNotClaimed);
  EXPECT_EQ(keyInTpm("file", {}, "aa"), kKeyInTpmNotClaimed);
  EXPECT_EQ(keyInTpm("tpm2", {}, "aa"), kKeyInTpmClaimed);
  const store::KeyProof verified{"verified", "aa", "", 1};
  EXPECT_EQ(keyInTpm("tpm2", verified, "aa"), kKeyInTpmVerified);
  EXPECT_EQ(keyInTpm("tpm2", verified, "bb"), kKeyInTpmClaimed);  // renewed with a new key
  EXPECT_EQ(keyInTpm("tpm2", verified, ""), kKeyInTpmClaimed);
  EXPECT_EQ(keyInTpm("tpm2", store::KeyProof{"failed", "aa", "foreign_key", 1}, "aa"), kKeyInTpmFailed);
}

}  // namespace
}  // namespace warden::trust
