#include "pki/certificate_authority.h"

#include <chrono>
#include <set>

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "pki/est_body.h"
#include "pki_test_util.h"

namespace warden::pki {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;

constexpr auto kYear = hours(24 * 365);

class CertificateAuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = createRootCa("warden.local Warden Root CA", 10 * kYear, clock_);
    ASSERT_TRUE(root.isOk()) << root.status().toString();
    root_ = std::move(root).value();
    auto issuing = createIntermediateCa(root_, "warden.local Warden Issuing CA", 5 * kYear, 0, clock_);
    ASSERT_TRUE(issuing.isOk()) << issuing.status().toString();
    issuing_ = std::move(issuing).value();
    auto key = crypto::generateEcKey();
    ASSERT_TRUE(key.isOk());
    device_key_ = std::move(key).value();
    device_profile_.common_name = "sensor-1";
    device_profile_.uri_sans = {"spiffe://warden.local/device/sensor-1"};
  }

  X509Ptr issueDevice() {
    auto leaf = issueLeaf(issuing_, device_key_.get(), device_profile_, clock_);
    EXPECT_TRUE(leaf.isOk()) << leaf.status().toString();
    return leaf.isOk() ? std::move(leaf).value() : nullptr;
  }

  static bool extensionCritical(X509* cert, int nid) {
    int idx = X509_get_ext_by_NID(cert, nid, -1);
    return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
  }
  static bool hasExtension(X509* cert, int nid) { return X509_get_ext_by_NID(cert, nid, -1) >= 0; }
  static int64_t secs(core::SystemTime t) { return core::unixSeconds(t); }
  static std::string serialDer(X509* cert) {
    const ASN1_INTEGER* s = X509_get0_serialNumber(cert);
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }

  core::ManualClock clock_{core::fromUnixSeconds(1'780'000'000)};
  CaMaterial root_, issuing_;
  crypto::EvpPkeyPtr device_key_;
  LeafProfile device_profile_;
};

TEST_F(CertificateAuthorityTest, RootIsSelfSignedCaWithCriticalConstraintsFor10Years) {
  X509* root = root_.cert.get();
  EXPECT_EQ(crypto::commonName(root), "warden.local Warden Root CA");
  EXPECT_EQ(X509_check_issued(root, root), X509_V_OK);
  EXPECT_EQ(X509_verify(root, root_.key.get()), 1);
  EXPECT_EQ(X509_check_ca(root), 1);
  EXPECT_TRUE(extensionCritical(root, NID_basic_constraints));
  EXPECT_TRUE(extensionCritical(root, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(root), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(root), nullptr);
  EXPECT_EQ(X509_get_pathlen(root), -1);
  EXPECT_EQ(secs(crypto::notAfter(root)), secs(clock_.now() + 10 * kYear));
  EXPECT_EQ(secs(crypto::notBefore(root)), secs(clock_.now() - 5min));
  EXPECT_EQ(X509_get_signature_nid(root), NID_ecdsa_with_SHA256);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(root)), 256);
}

TEST_F(CertificateAuthorityTest, IssuingCaHasPathLenZeroAkiAnd5Years) {
  X509* ca = issuing_.cert.get();
  EXPECT_EQ(crypto::commonName(ca), "warden.local Warden Issuing CA");
  EXPECT_EQ(X509_check_issued(root_.cert.get(), ca), X509_V_OK);
  EXPECT_EQ(X509_check_ca(ca), 1);
  EXPECT_EQ(X509_get_pathlen(ca), 0);
  EXPECT_TRUE(extensionCritical(ca, NID_basic_constraints));
  EXPECT_TRUE(extensionCritical(ca, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(ca), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  ASSERT_NE(X509_get0_subject_key_id(ca), nullptr);
  ASSERT_NE(X509_get0_authority_key_id(ca), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(ca), X509_get0_subject_key_id(root_.cert.get())), 0);
  EXPECT_EQ(secs(crypto::notAfter(ca)), secs(clock_.now() + 5 * kYear));
}

TEST_F(CertificateAuthorityTest, IntermediateLifetimeIsClampedToParent) {
  auto longer = createIntermediateCa(root_, "x", 20 * kYear, 0, clock_);
  ASSERT_TRUE(longer.isOk());
  EXPECT_EQ(secs(crypto::notAfter(longer->cert.get())), secs(crypto::notAfter(root_.cert.get())));
}

TEST_F(CertificateAuthorityTest, ChainVerifiesWithX509VerifyCert) {
  X509Ptr leaf = issueDevice();
  ASSERT_TRUE(leaf);
  EXPECT_TRUE(verifyChain(leaf.get(), {issuing_.cert.get()}, {root_.cert.get()}, clock_.now()).isOk());
  EXPECT_TRUE(verifyChain(issuing_.cert.get(), {}, {root_.cert.get()}, clock_.now()).isOk());
}

TEST_F(CertificateAuthorityTest, ChainFailsWithoutIntermediateForeignRootOrWhenExpired) {
  X509Ptr leaf = issueDevice();
  ASSERT_TRUE(leaf);
  EXPECT_FALSE(verifyChain(leaf.get(), {}, {root_.cert.get()}, clock_.now()).isOk());
  auto foreign = createRootCa("warden.local Warden Root CA", 10 * kYear, clock_);  // same name, other key
  ASSERT_TRUE(foreign.isOk());
  auto st = verifyChain(leaf.get(), {issuing_.cert.get()}, {foreign->cert.get()}, clock_.now());
  EXPECT_EQ(st.code(), core::ErrorCode::kUnauthenticated);
  EXPECT_FALSE(verifyChain(leaf.get(), {issuing_.cert.get()}, {root_.cert.get()}, clock_.now() + hours(25)).isOk());
  EXPECT_FALSE(verifyChain(leaf.get(), {issuing_.cert.get()}, {root_.cert.get()}, clock_.now() - 10min).isOk());
}

TEST_F(CertificateAuthorityTest, UpstreamCaIsASeparateRoot) {
  auto upstream = createRootCa("warden.local Warden Upstream CA", 10 * kYear, clock_);
  ASSERT_TRUE(upstream.isOk());
  X509Ptr leaf = issueDevice();
  EXPECT_FALSE(verifyChain(leaf.get(), {issuing_.cert.get()}, {upstream->cert.get()}, clock_.now()).isOk());
}

TEST_F(CertificateAuthorityTest, DeviceLeafHasExactlyTheProfileFields) {
  X509Ptr leaf = issueDevice();
  ASSERT_TRUE(leaf);
  X509* c = leaf.get();
  EXPECT_EQ(crypto::commonName(c), "sensor-1");
  // Subject is exactly CN=sensor-1.
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(c)), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(c), X509_get_subject_name(issuing_.cert.get())), 0);
  EXPECT_EQ(crypto::uriSans(c), std::vector<std::string>{"spiffe://warden.local/device/sensor-1"});
  EXPECT_TRUE(crypto::dnsSans(c).empty());
  EXPECT_TRUE(crypto::ipSans(c).empty());
  EXPECT_FALSE(extensionCritical(c, NID_subject_alt_name));
  // KU digitalSignature only, critical.
  EXPECT_TRUE(extensionCritical(c, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(c), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  // EKU clientAuth only.
  EXPECT_TRUE(hasExtension(c, NID_ext_key_usage));
  EXPECT_EQ(X509_get_extended_key_usage(c), static_cast<uint32_t>(XKU_SSL_CLIENT));
  // CA:FALSE, critical.
  EXPECT_TRUE(extensionCritical(c, NID_basic_constraints));
  EXPECT_EQ(X509_check_ca(c), 0);
  BASIC_CONSTRAINTS* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(c, NID_basic_constraints, nullptr, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(bc->ca, 0);
  BASIC_CONSTRAINTS_free(bc);
  // SKI / AKI.
  ASSERT_NE(X509_get0_subject_key_id(c), nullptr);
  ASSERT_NE(X509_get0_authority_key_id(c), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c), X509_get0_subject_key_id(issuing_.cert.get())), 0);
  // Exactly these six extensions.
  EXPECT_EQ(X509_get_ext_count(c), 6);
  // Validity: now-5min .. now+24h.
  EXPECT_EQ(secs(crypto::notBefore(c)), secs(clock_.now() - 5min));
  EXPECT_EQ(secs(crypto::notAfter(c)), secs(clock_.now() + hours(24)));
  // Key and signature.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(c), device_key_.get()), 1);
  EXPECT_EQ(X509_get_signature_nid(c), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_version(c), X509_VERSION_3);
}

TEST_F(CertificateAuthorityTest, SerialIs16BytesPositiveAndRandom) {
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    X509Ptr leaf = issueDevice();
    ASSERT_TRUE(leaf);
    const ASN1_INTEGER* s = X509_get0_serialNumber(leaf.get());
    EXPECT_EQ(ASN1_STRING_type(s), V_ASN1_INTEGER);  // not V_ASN1_NEG_INTEGER
    std::string der = serialDer(leaf.get());
    ASSERT_EQ(der.size(), 16u);
    EXPECT_NE(der[0], 0);
    EXPECT_EQ(static_cast<unsigned char>(der[0]) & 0x80, 0);
    EXPECT_EQ(crypto::serialHex(leaf.get()).size(), 32u);
    serials.insert(crypto::serialHex(leaf.get()));
  }
  EXPECT_EQ(serials.size(), 20u);
}

TEST_F(CertificateAuthorityTest, LeafNotAfterIsClampedToIssuer) {
  auto short_ca = createIntermediateCa(root_, "short", hours(2), 0, clock_);
  ASSERT_TRUE(short_ca.isOk());
  auto leaf = issueLeaf(*short_ca, device_key_.get(), device_profile_, clock_);
  ASSERT_TRUE(leaf.isOk());
  EXPECT_EQ(secs(crypto::notAfter(leaf->get())), secs(crypto::notAfter(short_ca->cert.get())));
  clock_.advance(hours(3));
  auto late = issueLeaf(*short_ca, device_key_.get(), device_profile_, clock_);
  EXPECT_EQ(late.status().code(), core::ErrorCode::kFailedPrecondition);
}

TEST_F(CertificateAuthorityTest, ServerProfileHasServerAuthDnsAndIpSans) {
  LeafProfile profile;
  profile.common_name = "warden-gateway";
  profile.dns_sans = {"localhost"};
  profile.ip_sans = {"127.0.0.1", "::1"};
  profile.client_auth = false;
  profile.server_auth = true;
  profile.lifetime = kYear;
  auto leaf = issueLeaf(issuing_, device_key_.get(), profile, clock_);
  ASSERT_TRUE(leaf.isOk()) << leaf.status().toString();
  EXPECT_EQ(X509_get_extended_key_usage(leaf->get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(crypto::dnsSans(leaf->get()), std::vector<std::string>{"localhost"});
  EXPECT_EQ(crypto::ipSans(leaf->get()), (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_TRUE(crypto::uriSans(leaf->get()).empty());
  EXPECT_EQ(X509_check_host(leaf->get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf->get(), "::1", 0), 1);
  EXPECT_EQ(secs(crypto::notAfter(leaf->get())), secs(clock_.now() + kYear));
}

TEST_F(CertificateAuthorityTest, BothEkusWhenProfileAsks) {
  device_profile_.server_auth = true;
  X509Ptr leaf = issueDevice();
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_CLIENT | XKU_SSL_SERVER));
}

TEST_F(CertificateAuthorityTest, RequestedSubjectAndExtensionsAreNeverCopied) {
  crypto::X509ReqPtr csr = testing::makeCsr(device_key_.get(), EVP_sha256(), "admin",
                                            "URI:spiffe://warden.local/user/admin,DNS:evil.example");
  auto parsed = parseEstCsrBody(testing::estBody(csr.get()));
  ASSERT_TRUE(parsed.isOk());
  ASSERT_TRUE(checkCsr(parsed->get()).isOk());
  auto leaf = issueLeaf(issuing_, X509_REQ_get0_pubkey(parsed->get()), device_profile_, clock_);
  ASSERT_TRUE(leaf.isOk());
  EXPECT_EQ(crypto::commonName(leaf->get()), "sensor-1");
  EXPECT_EQ(crypto::uriSans(leaf->get()), std::vector<std::string>{"spiffe://warden.local/device/sensor-1"});
  EXPECT_TRUE(crypto::dnsSans(leaf->get()).empty());
}

TEST_F(CertificateAuthorityTest, RefusesBadProfiles) {
  LeafProfile p = device_profile_;
  p.common_name = "";
  EXPECT_EQ(issueLeaf(issuing_, device_key_.get(), p, clock_).status().code(), core::ErrorCode::kInvalidArgument);
  p = device_profile_;
  p.common_name = std::string(65, 'a');
  EXPECT_FALSE(issueLeaf(issuing_, device_key_.get(), p, clock_).isOk());
  p = device_profile_;
  p.ip_sans = {"not-an-ip"};
  EXPECT_FALSE(issueLeaf(issuing_, device_key_.get(), p, clock_).isOk());
  p = device_profile_;
  p.uri_sans = {"spiffe://x/device/a b"};
  EXPECT_FALSE(issueLeaf(issuing_, device_key_.get(), p, clock_).isOk());
  p = device_profile_;
  p.client_auth = false;
  EXPECT_FALSE(issueLeaf(issuing_, device_key_.get(), p, clock_).isOk());
  p = device_profile_;
  p.lifetime = std::chrono::seconds(0);
  EXPECT_FALSE(issueLeaf(issuing_, device_key_.get(), p, clock_).isOk());
  EXPECT_FALSE(issueLeaf(issuing_, nullptr, device_profile_, clock_).isOk());
  EXPECT_FALSE(issueLeaf(CaMaterial{}, device_key_.get(), device_profile_, clock_).isOk());
}

TEST_F(CertificateAuthorityTest, CaMaterialFromPemRoundTripsAndChecksKeyMatch) {
  auto key_pem = crypto::privateKeyToPem(issuing_.key.get());
  ASSERT_TRUE(key_pem.isOk());
  auto loaded = caMaterialFromPem(crypto::certToPem(issuing_.cert.get()), *key_pem);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  auto leaf = issueLeaf(*loaded, device_key_.get(), device_profile_, clock_);
  ASSERT_TRUE(leaf.isOk());
  EXPECT_TRUE(verifyChain(leaf->get(), {issuing_.cert.get()}, {root_.cert.get()}, clock_.now()).isOk());
  auto root_key_pem = crypto::privateKeyToPem(root_.key.get());
  auto mismatch = caMaterialFromPem(crypto::certToPem(issuing_.cert.get()), *root_key_pem);
  EXPECT_EQ(mismatch.status().code(), core::ErrorCode::kInvalidArgument);
}

TEST_F(CertificateAuthorityTest, P384SubjectKeyIsCertified) {
  auto p384 = crypto::generateEcKey(NID_secp384r1);
  ASSERT_TRUE(p384.isOk());
  auto leaf = issueLeaf(issuing_, p384->get(), device_profile_, clock_);
  ASSERT_TRUE(leaf.isOk());
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(leaf->get())), 384);
  EXPECT_TRUE(verifyChain(leaf->get(), {issuing_.cert.get()}, {root_.cert.get()}, clock_.now()).isOk());
}

}  // namespace
}  // namespace warden::pki
