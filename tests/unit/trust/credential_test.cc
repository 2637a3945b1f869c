// TPM2_MakeCredential in software against TPM2_ActivateCredential on a real
// TPM (swtpm), AK checks, and EK certificates issued by swtpm_localca.

#include "trust/credential.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <tss2/tss2_mu.h>

#include "agent/tpm_attestor.h"
#include "crypto/crypto.h"
#include "unit/trust/soft_tpm.h"

namespace warden::trust {
namespace {

using agent::AkBlobs;
using agent::EkKind;
using agent::TpmAttestor;

// rewriteAk returns |ak_public| with |edit| applied to its TPMT_PUBLIC.
template <typename Edit>
std::string rewriteAk(const std::string& ak_public, Edit edit) {
  TPM2B_PUBLIC pub{};
  size_t offset = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Unmarshal(reinterpret_cast<const uint8_t*>(ak_public.data()), ak_public.size(),
                                           &offset, &pub),
            TSS2_RC_SUCCESS);
  edit(pub.publicArea);
  std::string out(sizeof(pub), '\0');
  offset = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, reinterpret_cast<uint8_t*>(out.data()), out.size(), &offset),
            TSS2_RC_SUCCESS);
  out.resize(offset);
  return out;
}

struct Device {
  std::unique_ptr<testing::SoftTpm> tpm;
  std::unique_ptr<TpmAttestor> attestor;
  AkBlobs ak;
  std::string ek_public;
};

Device startDevice(bool with_ek_cert, EkKind kind = EkKind::kRsa2048) {
  Device d;
  d.tpm = std::make_unique<testing::SoftTpm>(with_ek_cert);
  if (!d.tpm->ok()) return d;
  auto attestor = TpmAttestor::open(d.tpm->tcti(), kind);
  EXPECT_TRUE(attestor.isOk()) << attestor.status().message();
  if (!attestor.isOk()) return d;
  d.attestor = std::move(attestor).value();
  auto ek = d.attestor->ekPublic();
  EXPECT_TRUE(ek.isOk()) << ek.status().message();
  auto ak = d.attestor->createAk();
  EXPECT_TRUE(ak.isOk()) << ak.status().message();
  if (!ek.isOk() || !ak.isOk()) return d;
  d.ek_public = *ek;
  d.ak = *ak;
  EXPECT_TRUE(d.attestor->loadAk(d.ak).isOk());
  return d;
}

// One provisioned TPM with an EK certificate for the whole suite:
// swtpm_setup takes seconds.
class EkCertificateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { device_ = new Device(startDevice(/*with_ek_cert=*/true)); }
  static void TearDownTestSuite() {
    delete device_;
    device_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(device_->attestor != nullptr); }
  static Device* device_;
};
Device* EkCertificateTest::device_ = nullptr;

TEST(CheckAkPublic, AcceptsTheAgentsAkAndNamesIt) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto name = checkAkPublic(d.ak.public_area);
  ASSERT_TRUE(name.isOk()) << name.status().message();
  ASSERT_EQ(name->size(), kAkNameBytes);
  EXPECT_EQ(name->substr(0, 2), std::string("\x00\x0b", 2));
  EXPECT_EQ(name->substr(2), crypto::sha256(d.ak.public_area.substr(2)));
  EXPECT_TRUE(akPublicKey(d.ak.public_area).isOk());
}

TEST(CheckAkPublic, RejectsKeysThatAreNoAttestationKey) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto rejected = [](const std::string& pub, std::string_view why) {
    auto r = checkAkPublic(pub);
    EXPECT_FALSE(r.isOk()) << why;
    if (!r.isOk()) {
      EXPECT_EQ(r.status().code(), core::ErrorCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
    }
  };
  rejected(rewriteAk(d.ak.public_area, [](TPMT_PUBLIC& p) { p.objectAttributes &= ~TPMA_OBJECT_RESTRICTED; }),
           "restricted");
  rejected(rewriteAk(d.ak.public_area, [](TPMT_PUBLIC& p) { p.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM; }),
           "fixedTPM");
  rejected(rewriteAk(d.ak.public_area, [](TPMT_PUBLIC& p) { p.objectAttributes |= TPMA_OBJECT_DECRYPT; }), "decrypt");
  rejected(rewriteAk(d.ak.public_area,
                     [](TPMT_PUBLIC& p) { p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA1; }),
           "ECDSA with SHA-256");
  rejected(rewriteAk(d.ak.public_area, [](TPMT_PUBLIC& p) { p.nameAlg = TPM2_ALG_SHA1; }), "name algorithm");
  rejected(rewriteAk(d.ak.public_area, [](TPMT_PUBLIC& p) { p.unique.ecc.y.buffer[31] ^= 1; }), "not a valid EC key");
  rejected(d.ek_public, "ECC");
  rejected(d.ak.public_area + std::string(1, '\0'), "TPM2B_PUBLIC");
  rejected(d.ak.public_area.substr(0, d.ak.public_area.size() - 1), "TPM2B_PUBLIC");
  rejected("", "TPM2B_PUBLIC");
}

TEST(MakeCredential, ActivatesOnlyOnTheTpmWithTheEkAndTheAk) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto name = checkAkPublic(d.ak.public_area);
  ASSERT_TRUE(name.isOk());
  const std::string secret = crypto::randomBytes(32);
  auto cred = makeCredential(d.ek_public, *name, secret);
  ASSERT_TRUE(cred.isOk()) << cred.status().message();
  auto recovered = d.attestor->activateCredential(cred->credential_blob, cred->encrypted_secret);
  ASSERT_TRUE(recovered.isOk()) << recovered.status().message();
  EXPECT_EQ(*recovered, secret);

  // Bound to another AK name (this TPM's second AK): the TPM refuses.
  auto other_ak = d.attestor->createAk();
  ASSERT_TRUE(other_ak.isOk());
  auto other_name = checkAkPublic(other_ak->public_area);
  ASSERT_TRUE(other_name.isOk());
  auto for_other_ak = makeCredential(d.ek_public, *other_name, secret);
  ASSERT_TRUE(for_other_ak.isOk());
  EXPECT_FALSE(d.attestor->activateCredential(for_other_ak->credential_blob, for_other_ak->encrypted_secret).isOk());

  // A tampered blob fails the integrity HMAC.
  std::string tampered = cred->credential_blob;
  tampered.back() = static_cast<char>(tampered.back() ^ 1);
  EXPECT_FALSE(d.attestor->activateCredential(tampered, cred->encrypted_secret).isOk());
}

TEST(MakeCredential, WrappedToAnotherEkFails) {
  Device d = startDevice(false);
  Device other = startDevice(false);
  ASSERT_TRUE(d.attestor && other.attestor);
  ASSERT_NE(d.ek_public, other.ek_public);
  auto name = checkAkPublic(d.ak.public_area);
  ASSERT_TRUE(name.isOk());
  auto cred = makeCredential(other.ek_public, *name, crypto::randomBytes(32));
  ASSERT_TRUE(cred.isOk());
  EXPECT_FALSE(d.attestor->activateCredential(cred->credential_blob, cred->encrypted_secret).isOk());
}

TEST(MakeCredential, WorksWithAnEccEk) {
  Device d = startDevice(false, EkKind::kEccP256);
  ASSERT_TRUE(d.attestor);
  auto name = checkAkPublic(d.ak.public_area);
  ASSERT_TRUE(name.isOk());
  const std::string secret = crypto::randomBytes(32);
  auto cred = makeCredential(d.ek_public, *name, secret);
  ASSERT_TRUE(cred.isOk()) << cred.status().message();
  auto recovered = d.attestor->activateCredential(cred->credential_blob, cred->encrypted_secret);
  ASSERT_TRUE(recovered.isOk()) << recovered.status().message();
  EXPECT_EQ(*recovered, secret);
}

TEST(MakeCredential, RefusesBadArguments) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto name = checkAkPublic(d.ak.public_area);
  ASSERT_TRUE(name.isOk());
  EXPECT_FALSE(makeCredential(d.ek_public, name->substr(1), "secret").isOk());
  EXPECT_FALSE(makeCredential(d.ek_public, *name, "").isOk());
  EXPECT_FALSE(makeCredential(d.ek_public, *name, std::string(33, 's')).isOk());
  // An AK (a signing key) is no EK.
  auto as_ek = makeCredential(d.ak.public_area, *name, "secret");
  ASSERT_FALSE(as_ek.isOk());
  EXPECT_NE(as_ek.status().message().find("EK"), std::string::npos);
}

TEST(EkPublicKey, FingerprintIsTheSubjectPublicKeyInfoDigest) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto key = ekPublicKey(d.ek_public);
  ASSERT_TRUE(key.isOk()) << key.status().message();
  EXPECT_EQ(EVP_PKEY_get_bits(key->get()), 2048);
  auto fp = ekFingerprint(d.ek_public);
  ASSERT_TRUE(fp.isOk());
  EXPECT_EQ(*fp, "sha256:" + crypto::publicKeyFingerprint(key->get()));
  EXPECT_FALSE(ekPublicKey(d.ak.public_area).isOk());
}

TEST_F(EkCertificateTest, CertificateChainsToTheLocalCaAndMatchesTheEk) {
  auto cert = device_->attestor->ekCertificate();
  ASSERT_TRUE(cert.isOk()) << cert.status().message();
  ASSERT_TRUE(cert->has_value());
  const core::Status s = verifyEkCertificate(**cert, device_->ek_public, device_->tpm->ekCaPem());
  EXPECT_TRUE(s.isOk()) << s.message();
  // The certificate's key fingerprint is the EK's.
  auto x509 = crypto::certFromDer(**cert);
  ASSERT_TRUE(x509.isOk());
  EXPECT_EQ(*ekFingerprint(device_->ek_public), "sha256:" + crypto::publicKeyFingerprint(X509_get0_pubkey(x509->get())));
}

TEST_F(EkCertificateTest, AnIssuingCaAloneIsAnAnchor) {
  auto cert = device_->attestor->ekCertificate();
  ASSERT_TRUE(cert.isOk() && cert->has_value());
  // ekCaPem() is the issuing CA, then the root: keep only the first.
  const std::string bundle = device_->tpm->ekCaPem();
  const std::string kEnd = "-----END CERTIFICATE-----\n";
  const size_t end = bundle.find(kEnd);
  ASSERT_NE(end, std::string::npos);
  const std::string issuing = bundle.substr(0, end + kEnd.size());
  ASSERT_LT(issuing.size(), bundle.size());
  const core::Status s = verifyEkCertificate(**cert, device_->ek_public, issuing);
  EXPECT_TRUE(s.isOk()) << s.message();
  // The root alone is not enough: the issuing CA is missing from the chain.
  const std::string root = bundle.substr(end + kEnd.size());
  EXPECT_EQ(verifyEkCertificate(**cert, device_->ek_public, root).code(), core::ErrorCode::kPermissionDenied);
}

TEST_F(EkCertificateTest, RejectsAnotherVendorsCa) {
  auto cert = device_->attestor->ekCertificate();
  ASSERT_TRUE(cert.isOk() && cert->has_value());
  Device other = startDevice(/*with_ek_cert=*/true);
  ASSERT_TRUE(other.attestor);
  const core::Status s = verifyEkCertificate(**cert, device_->ek_public, other.tpm->ekCaPem());
  EXPECT_EQ(s.code(), core::ErrorCode::kPermissionDenied) << s.message();
  EXPECT_NE(s.message().find("chain"), std::string::npos) << s.message();
  // The other TPM's genuine certificate does not vouch for this EK.
  auto other_cert = other.attestor->ekCertificate();
  ASSERT_TRUE(other_cert.isOk() && other_cert->has_value());
  const core::Status mismatch = verifyEkCertificate(**other_cert, device_->ek_public, other.tpm->ekCaPem());
  EXPECT_EQ(mismatch.code(), core::ErrorCode::kPermissionDenied);
  EXPECT_NE(mismatch.message().find("not the EK"), std::string::npos) << mismatch.message();
}

TEST_F(EkCertificateTest, RejectsGarbage) {
  auto cert = device_->attestor->ekCertificate();
  ASSERT_TRUE(cert.isOk() && cert->has_value());
  EXPECT_EQ(verifyEkCertificate("not a certificate", device_->ek_public, device_->tpm->ekCaPem()).code(),
            core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(verifyEkCertificate(**cert, device_->ek_public, "no pem here").code(), core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(verifyEkCertificate(**cert, "", device_->tpm->ekCaPem()).code(), core::ErrorCode::kInvalidArgument);
}

TEST(EkCertificate, AbsentWithoutProvisioning) {
  Device d = startDevice(false);
  ASSERT_TRUE(d.attestor);
  auto cert = d.attestor->ekCertificate();
  ASSERT_TRUE(cert.isOk()) << cert.status().message();
  EXPECT_FALSE(cert->has_value());
}

}  // namespace
}  // namespace warden::trust
