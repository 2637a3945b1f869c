#include "gateway/peer_identity.h"

#include <gtest/gtest.h>

#include "crypto/crypto.h"
#include "pki/certificate_authority.h"

namespace warden::gateway {
namespace {

class PeerIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = pki::createRootCa("Test Root", core::Seconds(86400 * 10), core::systemClock());
    ASSERT_TRUE(root) << root.status().toString();
    root_ = std::move(*root);
    fleet_.devices["sensor-1"] = identity::DeviceEntry{"sensor-1", "sensor", {}, store::DeviceState::kActive, {}};
  }

  crypto::X509Ptr leaf(std::string cn, std::vector<std::string> uris, core::Seconds life = core::Seconds(3600)) {
    auto key = crypto::generateEcKey();
    pki::LeafProfile p;
    p.common_name = std::move(cn);
    p.uri_sans = std::move(uris);
    p.lifetime = life;
    auto cert = pki::issueLeaf(root_, key->get(), p, core::systemClock());
    EXPECT_TRUE(cert) << cert.status().toString();
    return std::move(*cert);
  }

  PeerIdentity check(X509* cert) {
    return checkDevicePeer(cert, X509_V_OK, &fleet_, "warden.local", core::systemClock().now());
  }

  pki::CaMaterial root_;
  identity::FleetState fleet_;
};

TEST_F(PeerIdentityTest, AdmitsActiveDeviceWithIssuedSerial) {
  auto cert = leaf("sensor-1", {"spiffe://warden.local/device/sensor-1"});
  fleet_.devices["sensor-1"].valid_serials.insert(crypto::serialHex(cert.get()));
  PeerIdentity p = check(cert.get());
  EXPECT_TRUE(p.ok) << p.reason;
  EXPECT_EQ(p.device, "sensor-1");
}

TEST_F(PeerIdentityTest, RefusesUnknownSerial) {
  auto cert = leaf("sensor-1", {"spiffe://warden.local/device/sensor-1"});
  PeerIdentity p = check(cert.get());
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.reason, "unknown_serial");
}

TEST_F(PeerIdentityTest, RefusesRevokedAndPendingDevices) {
  auto cert = leaf("sensor-1", {"spiffe://warden.local/device/sensor-1"});
  fleet_.devices["sensor-1"].valid_serials.insert(crypto::serialHex(cert.get()));
  fleet_.devices["sensor-1"].state = store::DeviceState::kRevoked;
  EXPECT_EQ(check(cert.get()).reason, "device_revoked");
  fleet_.devices["sensor-1"].state = store::DeviceState::kPending;
  EXPECT_EQ(check(cert.get()).reason, "device_pending");
  fleet_.devices["sensor-1"].state = store::DeviceState::kQuarantined;
  EXPECT_TRUE(check(cert.get()).ok);
}

TEST_F(PeerIdentityTest, RefusesBadIdentities) {
  EXPECT_EQ(check(leaf("sensor-1", {}).get()).reason, "bad_identity");
  EXPECT_EQ(check(leaf("sensor-1", {"spiffe://warden.local/device/sensor-1", "spiffe://warden.local/device/x"}).get())
                .reason,
            "bad_identity");
  EXPECT_EQ(check(leaf("other", {"spiffe://warden.local/device/sensor-1"}).get()).reason, "bad_identity");
  EXPECT_EQ(check(leaf("sensor-1", {"spiffe://evil.example/device/sensor-1"}).get()).reason, "bad_identity");
  EXPECT_EQ(check(leaf("sensor-1", {"spiffe://warden.local/user/sensor-1"}).get()).reason, "bad_identity");
  EXPECT_EQ(check(leaf("sensor-1", {"spiffe://warden.local/device/sensor%2D1"}).get()).reason, "bad_identity");
  EXPECT_EQ(check(leaf("ghost", {"spiffe://warden.local/device/ghost"}).get()).reason, "unknown_device");
}

TEST_F(PeerIdentityTest, RefusesExpiredCertificateAndFailedChain) {
  auto cert = leaf("sensor-1", {"spiffe://warden.local/device/sensor-1"});
  fleet_.devices["sensor-1"].valid_serials.insert(crypto::serialHex(cert.get()));
  auto later = core::systemClock().now() + std::chrono::hours(2);
  EXPECT_EQ(checkDevicePeer(cert.get(), X509_V_OK, &fleet_, "warden.local", later).reason, "cert_expired");
  EXPECT_EQ(checkDevicePeer(cert.get(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, &fleet_, "warden.local",
                            core::systemClock().now())
                .reason,
            "untrusted_issuer");
  EXPECT_EQ(checkDevicePeer(nullptr, X509_V_OK, &fleet_, "warden.local", core::systemClock().now()).reason,
            "untrusted_issuer");
}

}  // namespace
}  // namespace warden::gateway
