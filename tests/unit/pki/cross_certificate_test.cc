// Root CA rollover: cross certificates (NewWithOld, OldWithNew) and the
// pinned party's choice of roots, including the forgeries it must refuse.

#include "pki/cross_certificate.h"

#include <chrono>

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

using core::ErrorCode;
using std::chrono::hours;

constexpr auto kYear = hours(24 * 365);

X509Ptr ref(X509* c) {
  X509_up_ref(c);
  return X509Ptr(c);
}

class CrossCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_root_ = make(createRootCa("td Warden Root CA", 10 * kYear, clock_));
    old_root_.name = "root";
    clock_.advance(hours(24 * 30));  // the new root is made a month later
    new_root_ = make(createRootCa("td Warden Root CA 2", 10 * kYear, clock_));
    new_root_.name = "root-2";
    clock_.advance(hours(1));
    new_issuing_ = make(createIntermediateCa(new_root_, "td Warden Issuing CA 2", 5 * kYear, 0, clock_));
  }

  static CaMaterial make(core::Result<CaMaterial> r) {
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? std::move(r).value() : CaMaterial{};
  }

  X509Ptr cross(const CaMaterial& signer, X509* subject) {
    auto c = makeCrossCertificate(signer, subject, clock_);
    EXPECT_TRUE(c.isOk()) << c.status().toString();
    return c.isOk() ? std::move(c).value() : nullptr;
  }

  std::string oldPin() const { return crypto::caFingerprint(old_root_.cert.get()); }

  // expectLinkRefused: an agent pinned to the old root, given the old root,
  // the new root and |link| as a NewWithOld, moves nowhere and names the
  // refusal (its reason contains |why|).
  void expectLinkRefused(X509Ptr link, const std::string& why) {
    std::vector<X509Ptr> certs;
    certs.push_back(ref(old_root_.cert.get()));
    certs.push_back(ref(new_root_.cert.get()));
    certs.push_back(std::move(link));
    auto sel = selectRoots(certs, oldPin(), clock_.now());
    ASSERT_TRUE(sel.isOk());
    EXPECT_FALSE(sel->successor);
    ASSERT_EQ(sel->refused.size(), 1u);
    EXPECT_NE(sel->refused[0].find(why), std::string::npos) << sel->refused[0];
  }

  core::ManualClock clock_{core::fromUnixSeconds(1'780'000'000)};
  CaMaterial old_root_, new_root_, new_issuing_;
};

TEST_F(CrossCertificateTest, NewWithOldCarriesTheNewRootsNameAndKeySignedByTheOldRoot) {
  X509Ptr nwo = cross(old_root_, new_root_.cert.get());
  ASSERT_TRUE(nwo);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(nwo.get()), X509_get_subject_name(new_root_.cert.get())), 0);
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(nwo.get()), X509_get_subject_name(old_root_.cert.get())), 0);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(nwo.get()), X509_get0_pubkey(new_root_.cert.get())), 1);
  EXPECT_EQ(crypto::subjectKeyIdHex(nwo.get()), crypto::subjectKeyIdHex(new_root_.cert.get()));
  EXPECT_EQ(crypto::authorityKeyIdHex(nwo.get()), crypto::subjectKeyIdHex(old_root_.cert.get()));
  EXPECT_EQ(X509_check_ca(nwo.get()), 1);
  EXPECT_FALSE(isSelfSignedRoot(nwo.get()));
  EXPECT_LE(crypto::notAfter(nwo.get()), crypto::notAfter(old_root_.cert.get()));
  EXPECT_TRUE(checkCrossCertificate(nwo.get(), new_root_.cert.get(), old_root_.cert.get(), clock_.now()).isOk());
  // The reverse direction is another certificate (OldWithNew), not this one.
  EXPECT_FALSE(checkCrossCertificate(nwo.get(), old_root_.cert.get(), new_root_.cert.get(), clock_.now()).isOk());
}

TEST_F(CrossCertificateTest, CertificateUnderTheNewRootVerifiesWithOnlyTheOldRootThroughNewWithOld) {
  X509Ptr nwo = cross(old_root_, new_root_.cert.get());
  LeafProfile p;
  p.common_name = "sensor-1";
  auto key = crypto::generateEcKey().value();
  auto leaf = issueLeaf(new_issuing_, key.get(), p, clock_);
  ASSERT_TRUE(leaf.isOk());
  EXPECT_TRUE(verifyChain(leaf->get(), {new_issuing_.cert.get(), nwo.get()}, {old_root_.cert.get()}, clock_.now()).isOk());
  EXPECT_FALSE(verifyChain(leaf->get(), {new_issuing_.cert.get()}, {old_root_.cert.get()}, clock_.now()).isOk());
  EXPECT_TRUE(verifyChain(leaf->get(), {new_issuing_.cert.get()}, {new_root_.cert.get()}, clock_.now()).isOk());
}

TEST_F(CrossCertificateTest, RefusesToCrossCertifyARootWithItself) {
  auto c = makeCrossCertificate(old_root_, old_root_.cert.get(), clock_);
  EXPECT_FALSE(c.isOk());
  auto leafish = makeCrossCertificate(old_root_, new_issuing_.cert.get(), clock_);
  EXPECT_FALSE(leafish.isOk());
}

TEST_F(CrossCertificateTest, PinnedPartyAcceptsANewRootThroughNewWithOld) {
  std::vector<X509Ptr> certs;
  certs.push_back(ref(new_root_.cert.get()));
  certs.push_back(ref(old_root_.cert.get()));
  certs.push_back(cross(new_root_, old_root_.cert.get()));  // OldWithNew
  certs.push_back(cross(old_root_, new_root_.cert.get()));  // NewWithOld
  certs.push_back(ref(new_issuing_.cert.get()));
  auto sel = selectRoots(certs, oldPin(), clock_.now());
  ASSERT_TRUE(sel.isOk()) << sel.status().toString();
  EXPECT_EQ(X509_cmp(sel->pinned.get(), old_root_.cert.get()), 0);
  ASSERT_TRUE(sel->successor);
  EXPECT_EQ(X509_cmp(sel->successor.get(), new_root_.cert.get()), 0);
  EXPECT_EQ(X509_cmp(sel->successor_link.get(), certs[3].get()), 0);
  EXPECT_TRUE(sel->refused.empty());
}

TEST_F(CrossCertificateTest, AfterTheMoveTheOldRootStaysTrustedThroughOldWithNew) {
  std::vector<X509Ptr> certs;
  certs.push_back(ref(new_root_.cert.get()));
  certs.push_back(ref(old_root_.cert.get()));
  certs.push_back(cross(new_root_, old_root_.cert.get()));
  certs.push_back(cross(old_root_, new_root_.cert.get()));
  auto sel = selectRoots(certs, crypto::caFingerprint(new_root_.cert.get()), clock_.now());
  ASSERT_TRUE(sel.isOk());
  EXPECT_FALSE(sel->successor);  // never back to the older root
  ASSERT_EQ(sel->older.size(), 1u);
  EXPECT_EQ(X509_cmp(sel->older[0].get(), old_root_.cert.get()), 0);
  EXPECT_TRUE(sel->refused.empty());
}

TEST_F(CrossCertificateTest, NewRootWithoutNewWithOldIsRefused) {
  std::vector<X509Ptr> certs;
  certs.push_back(ref(old_root_.cert.get()));
  certs.push_back(ref(new_root_.cert.get()));
  certs.push_back(ref(new_issuing_.cert.get()));
  auto sel = selectRoots(certs, oldPin(), clock_.now());
  ASSERT_TRUE(sel.isOk());
  EXPECT_FALSE(sel->successor);
  ASSERT_EQ(sel->refused.size(), 1u);
  EXPECT_NE(sel->refused[0].find("no cross certificate"), std::string::npos) << sel->refused[0];
}

TEST_F(CrossCertificateTest, NewWithOldSignedByAnotherKeyIsRefused) {
  // A look-alike of the old root (same name, another key) signs the link.
  CaMaterial forger = make(createRootCa("td Warden Root CA", 10 * kYear, clock_));
  X509Ptr forged = cross(forger, new_root_.cert.get());
  ASSERT_EQ(X509_NAME_cmp(X509_get_issuer_name(forged.get()), X509_get_subject_name(old_root_.cert.get())), 0);
  EXPECT_EQ(checkCrossCertificate(forged.get(), new_root_.cert.get(), old_root_.cert.get(), clock_.now()).code(),
            ErrorCode::kUnauthenticated);
  expectLinkRefused(std::move(forged), "signature");
}

TEST_F(CrossCertificateTest, NewWithOldForAnotherKeyIsRefused) {
  // The old root really signed a link, but for another key under the new
  // root's name: it does not vouch for the root in the bundle.
  CaMaterial other = make(createRootCa("td Warden Root CA 2", 10 * kYear, clock_));
  X509Ptr link = cross(old_root_, other.cert.get());
  EXPECT_FALSE(checkCrossCertificate(link.get(), new_root_.cert.get(), old_root_.cert.get(), clock_.now()).isOk());
  // |other| is not in the bundle, so the only candidate is new_root_, refused.
  expectLinkRefused(std::move(link), "another key");
}

TEST_F(CrossCertificateTest, NewWithOldForAnotherSubjectIsRefused) {
  // Same key as the new root, another name: the link names someone else.
  EVP_PKEY_up_ref(new_root_.key.get());
  CaMaterial renamed =
      make(createRootCa("td Somebody Else", 10 * kYear, clock_, crypto::EvpPkeyPtr(new_root_.key.get())));
  X509Ptr link = cross(old_root_, renamed.cert.get());
  EXPECT_FALSE(checkCrossCertificate(link.get(), new_root_.cert.get(), old_root_.cert.get(), clock_.now()).isOk());
  expectLinkRefused(std::move(link), "subject");
}

TEST_F(CrossCertificateTest, ExpiredNewWithOldIsRefused) {
  // The old root is near its end: the link expires with it.
  CaMaterial short_old = make(createRootCa("td Short Root CA", hours(24 * 60), clock_));
  clock_.advance(hours(1));
  CaMaterial successor = make(createRootCa("td Short Root CA 2", 10 * kYear, clock_));
  X509Ptr link = cross(short_old, successor.cert.get());
  EXPECT_TRUE(checkCrossCertificate(link.get(), successor.cert.get(), short_old.cert.get(), clock_.now()).isOk());
  clock_.advance(hours(24 * 61));
  core::Status s = checkCrossCertificate(link.get(), successor.cert.get(), short_old.cert.get(), clock_.now());
  EXPECT_EQ(s.code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.message().find("expired"), std::string::npos) << s.message();
  std::vector<X509Ptr> certs;
  certs.push_back(ref(short_old.cert.get()));
  certs.push_back(ref(successor.cert.get()));
  certs.push_back(std::move(link));
  auto sel = selectRoots(certs, crypto::caFingerprint(short_old.cert.get()), clock_.now());
  ASSERT_TRUE(sel.isOk());
  EXPECT_FALSE(sel->successor);
  EXPECT_EQ(sel->refused.size(), 1u);
}

TEST_F(CrossCertificateTest, SelectRootsNeedsThePinnedRoot) {
  std::vector<X509Ptr> certs;
  certs.push_back(ref(new_root_.cert.get()));
  certs.push_back(cross(old_root_, new_root_.cert.get()));
  auto sel = selectRoots(certs, oldPin(), clock_.now());
  ASSERT_FALSE(sel.isOk());
  EXPECT_EQ(sel.status().code(), ErrorCode::kUnauthenticated);
}

TEST_F(CrossCertificateTest, NewestOfSeveralLinkedRootsWins) {
  clock_.advance(hours(24));
  CaMaterial third = make(createRootCa("td Warden Root CA 3", 10 * kYear, clock_));
  std::vector<X509Ptr> certs;
  certs.push_back(ref(old_root_.cert.get()));
  certs.push_back(ref(third.cert.get()));
  certs.push_back(ref(new_root_.cert.get()));
  certs.push_back(cross(old_root_, new_root_.cert.get()));
  certs.push_back(cross(old_root_, third.cert.get()));
  auto sel = selectRoots(certs, oldPin(), clock_.now());
  ASSERT_TRUE(sel.isOk());
  ASSERT_TRUE(sel->successor);
  EXPECT_EQ(X509_cmp(sel->successor.get(), third.cert.get()), 0);
}

}  // namespace
}  // namespace warden::pki
