#include "pki/manufacturer_anchors.h"

#include <gtest/gtest.h>

#include "crypto/crypto.h"
#include "unit/testing/factory_certs.h"

namespace warden::pki {
namespace {

using warden::testing::makeFactoryCa;
using warden::testing::makeIdevid;

TEST(ManufacturerAnchors, VerifiesIdevidsWithAndWithoutEkuAndFarNotAfter) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  EXPECT_EQ(anchors.size(), 1u);
  auto plain = makeIdevid(acme, "sn1");
  auto with_eku = makeIdevid(acme, "sn2", "acme-sensor", /*eku=*/true);
  EXPECT_EQ(anchors.verify(plain.cert.get(), nullptr), std::optional<std::string>("acme"));
  EXPECT_EQ(anchors.verify(with_eku.cert.get(), nullptr), std::optional<std::string>("acme"));
}

TEST(ManufacturerAnchors, LookAlikeCaWithTheSameNameIsRefused) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  auto lookalike = makeFactoryCa("Acme IDevID CA");  // same subject, another key
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  auto forged = makeIdevid(lookalike, "sn1");
  EXPECT_FALSE(anchors.verify(forged.cert.get(), nullptr).has_value());
  // Even when the peer sends the look-alike CA along.
  crypto::StackOfX509Ptr chain(sk_X509_new_null());
  X509_up_ref(lookalike.cert.get());
  sk_X509_push(chain.get(), lookalike.cert.get());
  EXPECT_FALSE(anchors.verify(forged.cert.get(), chain.get()).has_value());
}

TEST(ManufacturerAnchors, ClassifiesFleetBeforeManufacturersAndNoneOtherwise) {
  auto fleet_ca = makeFactoryCa("Fleet Issuing", "Warden");
  auto acme = makeFactoryCa("Acme IDevID CA");
  crypto::X509StorePtr fleet(X509_STORE_new());
  ASSERT_EQ(X509_STORE_add_cert(fleet.get(), fleet_ca.cert.get()), 1);
  ManufacturerAnchors anchors;
  ASSERT_TRUE(anchors.replace({{"acme", acme.certPem()}}).isOk());
  auto device = makeIdevid(fleet_ca, "", "dev-1", true);
  auto idevid = makeIdevid(acme, "sn1");
  auto stranger = makeIdevid(makeFactoryCa("Other"), "sn1");
  EXPECT_EQ(classifyClientCertificate(device.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kFleet);
  ClientAnchor a = classifyClientCertificate(idevid.cert.get(), nullptr, fleet.get(), &anchors);
  EXPECT_EQ(a.kind, ClientAnchor::Kind::kManufacturer);
  EXPECT_EQ(a.manufacturer, "acme");
  EXPECT_EQ(classifyClientCertificate(stranger.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kNone);
  // A removed manufacturer no longer validates anything.
  ASSERT_TRUE(anchors.replace({}).isOk());
  EXPECT_EQ(classifyClientCertificate(idevid.cert.get(), nullptr, fleet.get(), &anchors).kind,
            ClientAnchor::Kind::kNone);
}

TEST(ManufacturerAnchors, CheckManufacturerCaWantsCaCertificates) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  EXPECT_TRUE(checkManufacturerCa(acme.certPem()).isOk());
  auto leaf = makeIdevid(acme, "sn1");
  EXPECT_FALSE(checkManufacturerCa(leaf.certPem()).isOk());
  EXPECT_FALSE(checkManufacturerCa("not a pem").isOk());
}

TEST(ManufacturerAnchors, SubjectSerialNumber) {
  auto acme = makeFactoryCa("Acme IDevID CA");
  EXPECT_EQ(subjectSerialNumber(makeIdevid(acme, "SN-42").cert.get()), "SN-42");
  EXPECT_EQ(subjectSerialNumber(makeIdevid(acme, "").cert.get()), "");
  EXPECT_EQ(subjectSerialNumber(nullptr), "");
}

}  // namespace
}  // namespace warden::pki
