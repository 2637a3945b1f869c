// The agent's EST client logic: CSR, pinned CA selection, checks on the
// issued certificate, renewal schedule and backoff.

#include "api/est_client.h"

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "pki/certificate_authority.h"
#include "pki/cross_certificate.h"
#include "pki/est_body.h"

namespace warden::api {
namespace {

using core::ErrorCode;

struct Ca {
  pki::CaMaterial root, issuing;
};

Ca makeCa() {
  const core::Clock& clock = core::systemClock();
  Ca ca;
  ca.root = std::move(pki::createRootCa("Root", core::Seconds(86400 * 10), clock).value());
  ca.issuing = std::move(pki::createIntermediateCa(ca.root, "Issuing", core::Seconds(86400 * 5), 0, clock).value());
  return ca;
}

crypto::X509Ptr ref(X509* c) {
  X509_up_ref(c);
  return crypto::X509Ptr(c);
}

TEST(EstClient, CsrIsSignedAndAcceptedByTheServerParser) {
  auto key = crypto::generateEcKey().value();
  auto csr = buildCsr(key.get(), "sensor-1");
  ASSERT_TRUE(csr.isOk()) << csr.status().message();
  std::string body = csrBody(csr->get());
  auto parsed = pki::parseEstCsrBody(body);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_TRUE(pki::checkCsr(parsed->get()).isOk());
  EXPECT_EQ(EVP_PKEY_eq(X509_REQ_get0_pubkey(parsed->get()), key.get()), 1);
}

TEST(EstClient, BasicAuthorizationEncodesNameAndToken) {
  EXPECT_EQ(basicAuthorization("sensor-1", "tok"), "Basic " + crypto::base64Encode("sensor-1:tok"));
}

TEST(EstClient, SelectsTheRootWithThePin) {
  Ca ca = makeCa();
  std::vector<crypto::X509Ptr> certs;
  certs.push_back(ref(ca.root.cert.get()));
  certs.push_back(ref(ca.issuing.cert.get()));
  auto chain = selectPinnedChain(std::move(certs), crypto::caFingerprint(ca.root.cert.get()));
  ASSERT_TRUE(chain.isOk()) << chain.status().message();
  EXPECT_EQ(X509_cmp(chain->root.get(), ca.root.cert.get()), 0);
  ASSERT_EQ(chain->intermediates.size(), 1u);
  EXPECT_EQ(chain->pem(), crypto::certToPem(ca.root.cert.get()) + crypto::certToPem(ca.issuing.cert.get()));
}

TEST(EstClient, RefusesCaCertsWithoutThePinnedRoot) {
  Ca ca = makeCa();
  Ca other = makeCa();
  std::vector<crypto::X509Ptr> certs;
  certs.push_back(ref(other.root.cert.get()));
  certs.push_back(ref(other.issuing.cert.get()));
  auto chain = selectPinnedChain(std::move(certs), crypto::caFingerprint(ca.root.cert.get()));
  ASSERT_FALSE(chain.isOk());
  EXPECT_EQ(chain.status().code(), ErrorCode::kUnauthenticated);
}

TEST(EstClient, DropsCaCertsThatDoNotChainToThePinnedRoot) {
  Ca ca = makeCa();
  Ca other = makeCa();
  std::vector<crypto::X509Ptr> certs;
  certs.push_back(ref(other.issuing.cert.get()));
  certs.push_back(ref(ca.root.cert.get()));
  certs.push_back(ref(ca.issuing.cert.get()));
  auto chain = selectPinnedChain(std::move(certs), crypto::caFingerprint(ca.root.cert.get()));
  ASSERT_TRUE(chain.isOk());
  ASSERT_EQ(chain->intermediates.size(), 1u);
  EXPECT_EQ(X509_cmp(chain->intermediates[0].get(), ca.issuing.cert.get()), 0);
}

// A root rollover as cacerts carries it: NewWithNew, OldWithOld, OldWithNew,
// NewWithOld, then the issuing CAs.
struct Rollover {
  Ca old_ca;
  pki::CaMaterial new_root, new_issuing;
  crypto::X509Ptr new_with_old, old_with_new;
  std::vector<crypto::X509Ptr> cacerts(bool with_link = true) const {
    std::vector<crypto::X509Ptr> out;
    out.push_back(ref(new_root.cert.get()));
    out.push_back(ref(old_ca.root.cert.get()));
    out.push_back(ref(old_with_new.get()));
    if (with_link) out.push_back(ref(new_with_old.get()));
    out.push_back(ref(new_issuing.cert.get()));
    out.push_back(ref(old_ca.issuing.cert.get()));
    return out;
  }
};

Rollover makeRollover() {
  core::ManualClock clock(core::systemClock().now() - std::chrono::hours(48));
  Rollover r;
  r.old_ca.root = std::move(pki::createRootCa("Root", core::Seconds(86400 * 10), clock).value());
  r.old_ca.issuing = std::move(pki::createIntermediateCa(r.old_ca.root, "Issuing", core::Seconds(86400 * 5), 0, clock).value());
  clock.advance(std::chrono::hours(24));
  r.new_root = std::move(pki::createRootCa("Root 2", core::Seconds(86400 * 10), clock).value());
  r.new_issuing = std::move(pki::createIntermediateCa(r.new_root, "Issuing 2", core::Seconds(86400 * 5), 0, clock).value());
  r.new_with_old = std::move(pki::makeCrossCertificate(r.old_ca.root, r.new_root.cert.get(), clock).value());
  r.old_with_new = std::move(pki::makeCrossCertificate(r.new_root, r.old_ca.root.cert.get(), clock).value());
  return r;
}

TEST(EstClient, PinMovesToANewRootThroughNewWithOld) {
  Rollover r = makeRollover();
  const std::string old_pin = crypto::caFingerprint(r.old_ca.root.cert.get());
  auto chain = selectPinnedChain(r.cacerts(), old_pin);
  ASSERT_TRUE(chain.isOk()) << chain.status().message();
  EXPECT_EQ(chain->previous_pin, old_pin);
  EXPECT_EQ(chain->pin(), crypto::caFingerprint(r.new_root.cert.get()));
  ASSERT_EQ(chain->other_roots.size(), 1u);
  EXPECT_EQ(X509_cmp(chain->other_roots[0].get(), r.old_ca.root.cert.get()), 0);
  // Both issuing CAs are kept; ca.pem starts with both roots.
  std::string pem = chain->pem();
  EXPECT_EQ(pem.rfind(crypto::certToPem(r.new_root.cert.get()) + crypto::certToPem(r.old_ca.root.cert.get()), 0), 0u);
  EXPECT_NE(pem.find(crypto::certToPem(r.new_issuing.cert.get())), std::string::npos);
  EXPECT_NE(pem.find(crypto::certToPem(r.old_ca.issuing.cert.get())), std::string::npos);
  // Once moved, the same answer keeps the pin and the old root.
  auto again = selectPinnedChain(r.cacerts(), chain->pin());
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(again->previous_pin.empty());
  EXPECT_EQ(again->other_roots.size(), 1u);
  EXPECT_TRUE(again->refused_roots.empty());
}

TEST(EstClient, NewRootWithoutNewWithOldNeverEntersCaPem) {
  Rollover r = makeRollover();
  const std::string old_pin = crypto::caFingerprint(r.old_ca.root.cert.get());
  auto chain = selectPinnedChain(r.cacerts(/*with_link=*/false), old_pin);
  ASSERT_TRUE(chain.isOk());
  EXPECT_TRUE(chain->previous_pin.empty());
  EXPECT_EQ(chain->pin(), old_pin);
  EXPECT_EQ(chain->refused_roots.size(), 1u);
  EXPECT_TRUE(chain->other_roots.empty());
  EXPECT_EQ(chain->pem().find(crypto::certToPem(r.new_root.cert.get())), std::string::npos);
  // The new issuing CA does not chain to the old root without the link.
  EXPECT_EQ(chain->pem().find(crypto::certToPem(r.new_issuing.cert.get())), std::string::npos);
}

TEST(EstClient, WithoutMovingThePinCertificatesUnderTheNewRootStillVerify) {
  Rollover r = makeRollover();
  // An agent that keeps the old pin (e.g. a refused update elsewhere) still
  // verifies what the new issuing CA signs, through NewWithOld.
  auto certs = r.cacerts();
  std::vector<crypto::X509Ptr> only_old_root;
  for (auto& c : certs) {
    if (X509_cmp(c.get(), r.new_root.cert.get()) != 0) only_old_root.push_back(std::move(c));
  }
  auto chain = selectPinnedChain(std::move(only_old_root), crypto::caFingerprint(r.old_ca.root.cert.get()));
  ASSERT_TRUE(chain.isOk());
  auto key = crypto::generateEcKey().value();
  pki::LeafProfile p;
  p.common_name = "sensor-1";
  auto leaf = pki::issueLeaf(r.new_issuing, key.get(), p, core::systemClock());
  ASSERT_TRUE(leaf.isOk());
  EXPECT_TRUE(checkIssuedCertificate(leaf->get(), key.get(), "sensor-1", *chain).isOk());
}

TEST(EstClient, ChecksTheIssuedCertificate) {
  Ca ca = makeCa();
  std::vector<crypto::X509Ptr> certs;
  certs.push_back(ref(ca.root.cert.get()));
  certs.push_back(ref(ca.issuing.cert.get()));
  CaChain chain = std::move(selectPinnedChain(std::move(certs), crypto::caFingerprint(ca.root.cert.get())).value());

  auto key = crypto::generateEcKey().value();
  pki::LeafProfile profile;
  profile.common_name = "sensor-1";
  profile.uri_sans = {"spiffe://warden.local/device/sensor-1"};
  auto leaf = pki::issueLeaf(ca.issuing, key.get(), profile, core::systemClock()).value();
  EXPECT_TRUE(checkIssuedCertificate(leaf.get(), key.get(), "sensor-1", chain).isOk());
  EXPECT_EQ(issuerOf(leaf.get(), chain), chain.intermediates[0].get());

  auto other_key = crypto::generateEcKey().value();
  EXPECT_EQ(checkIssuedCertificate(leaf.get(), other_key.get(), "sensor-1", chain).code(), ErrorCode::kDataLoss);
  EXPECT_EQ(checkIssuedCertificate(leaf.get(), key.get(), "sensor-2", chain).code(), ErrorCode::kDataLoss);

  Ca other = makeCa();
  auto foreign = pki::issueLeaf(other.issuing, key.get(), profile, core::systemClock()).value();
  EXPECT_EQ(checkIssuedCertificate(foreign.get(), key.get(), "sensor-1", chain).code(), ErrorCode::kDataLoss);
}

TEST(EstClient, RenewsAtTwoThirdsOfTheLife) {
  Ca ca = makeCa();
  auto key = crypto::generateEcKey().value();
  pki::LeafProfile profile;
  profile.common_name = "d";
  profile.lifetime = core::Seconds(3 * 3600);
  auto leaf = pki::issueLeaf(ca.issuing, key.get(), profile, core::systemClock()).value();
  auto nb = crypto::notBefore(leaf.get());
  auto na = crypto::notAfter(leaf.get());
  EXPECT_EQ(renewalTime(leaf.get()), nb + (na - nb) * 2 / 3);
  // Counted from when the certificate arrived (notBefore is back-dated).
  auto obtained = na - std::chrono::hours(3);
  EXPECT_EQ(renewalTime(leaf.get(), obtained), obtained + std::chrono::hours(2));
  EXPECT_EQ(renewalTime(leaf.get(), nb - std::chrono::hours(1)), nb + (na - nb) * 2 / 3);
}

TEST(EstClient, RenewalJitterComesEarlierByAtMostATenthOfTheLife) {
  Ca ca = makeCa();
  auto key = crypto::generateEcKey().value();
  pki::LeafProfile profile;
  profile.common_name = "d";
  profile.lifetime = core::Seconds(3 * 3600);
  auto leaf = pki::issueLeaf(ca.issuing, key.get(), profile, core::systemClock()).value();
  auto na = crypto::notAfter(leaf.get());
  auto obtained = na - std::chrono::hours(3);
  EXPECT_EQ(renewalTime(leaf.get(), obtained, 0.0), obtained + std::chrono::hours(2));
  EXPECT_EQ(renewalTime(leaf.get(), obtained, 0.5), obtained + std::chrono::hours(2) - std::chrono::seconds(540));
  auto latest_jitter = renewalTime(leaf.get(), obtained, 1.0);
  EXPECT_GT(latest_jitter, obtained + std::chrono::hours(2) - std::chrono::seconds(1081));
  EXPECT_LE(latest_jitter, obtained + std::chrono::hours(2) - std::chrono::seconds(1079));
}

TEST(EstClient, BackoffDoublesWithJitterAndCaps) {
  using std::chrono::milliseconds;
  EXPECT_EQ(backoffDelay(0, 0.5), milliseconds(5000));
  EXPECT_EQ(backoffDelay(1, 0.5), milliseconds(10000));
  EXPECT_EQ(backoffDelay(2, 0.0), milliseconds(16000));
  EXPECT_EQ(backoffDelay(30, 0.5), milliseconds(300000));
  EXPECT_LT(backoffDelay(30, 0.9999), milliseconds(360001));
  EXPECT_GE(backoffDelay(-3, 0.0), milliseconds(4000));
}

}  // namespace
}  // namespace warden::api
