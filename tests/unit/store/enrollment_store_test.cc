// Store support for issue 4's enrollment: manufacturers, factory identities,
// enrollment requests (manual approval) and per-device certificate lifetimes.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::store {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kStart = 1'800'000'000;

class EnrollmentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::open(dir_.file("warden.db"), clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
    ManufacturerRecord m;
    m.name = "acme";
    m.ca_pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    m.role = "sensor";
    m.labels = {{"vendor", "acme"}};
    m.name_prefix = "acme-";
    m.cert_ttl_s = 3600;
    m.serials = {"sn1", "sn2", "sn2"};
    ASSERT_TRUE(store_->insertManufacturer(m).isOk());
  }

  CertRecord cert(const std::string& serial, const std::string& fp, int64_t not_after = kStart + 86400) {
    CertRecord c;
    c.serial_hex = serial;
    c.kind = "device";
    c.pubkey_fp = fp;
    c.not_before = kStart - 300;
    c.not_after = not_after;
    c.pem = "pem";
    return c;
  }

  FactoryEnrollment factory(const std::string& serial, bool rebootstrap = false) {
    FactoryEnrollment e;
    e.manufacturer = "acme";
    e.serial_number = serial;
    e.device.name = "acme-" + serial;
    e.device.role = "sensor";
    e.rebootstrap = rebootstrap;
    return e;
  }

  warden::testing::TempDir dir_{"warden-store"};
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<Store> store_;
};

TEST_F(EnrollmentStoreTest, ManufacturerAllowListIsExact) {
  EXPECT_TRUE(*store_->manufacturerAllowsSerial("acme", "sn1"));
  EXPECT_FALSE(*store_->manufacturerAllowsSerial("acme", "SN1"));
  EXPECT_FALSE(*store_->manufacturerAllowsSerial("other", "sn1"));
  auto m = store_->getManufacturer("acme");
  ASSERT_TRUE(m.isOk() && m->has_value());
  EXPECT_EQ((*m)->serial_count, 2);
  EXPECT_EQ((*m)->labels.at("vendor"), "acme");
  ManufacturerRecord dup;
  dup.name = "acme";
  EXPECT_EQ(store_->insertManufacturer(dup).code(), core::ErrorCode::kAlreadyExists);
  EXPECT_TRUE(*store_->deleteManufacturer("acme"));
  EXPECT_FALSE(*store_->deleteManufacturer("acme"));
  EXPECT_FALSE(*store_->manufacturerAllowsSerial("acme", "sn1"));
}

TEST_F(EnrollmentStoreTest, FirstFactoryEnrollmentCreatesDeviceAndBinding) {
  ASSERT_TRUE(store_->enrollFactory(factory("sn1"), cert("01", "k1")).isOk());
  auto d = store_->getDevice("acme-sn1");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->state, DeviceState::kActive);
  EXPECT_EQ(**store_->factoryDevice("acme", "sn1"), "acme-sn1");
  // The same identity again without re-bootstrap: a clone.
  EXPECT_EQ(store_->enrollFactory(factory("sn1"), cert("02", "k2")).message(), kReasonDuplicateIdentity);
  // Manufacturer TTL applies to its devices.
  EXPECT_EQ(store_->certTtls("acme-sn1")->manufacturer_s, 3600);
}

TEST_F(EnrollmentStoreTest, TakenNameIsRefused) {
  DeviceRecord other;
  other.name = "acme-sn2";
  other.role = "sensor";
  ASSERT_TRUE(store_->insertDevice(other).isOk());
  EXPECT_EQ(store_->enrollFactory(factory("sn2"), cert("01", "k1")).message(), kReasonNameTaken);
}

TEST_F(EnrollmentStoreTest, RebootstrapOnlyWithoutValidCertificate) {
  ASSERT_TRUE(store_->enrollFactory(factory("sn1"), cert("01", "k1", kStart + 600)).isOk());
  EXPECT_EQ(store_->enrollFactory(factory("sn1", true), cert("02", "k2")).message(), kReasonDuplicateIdentity);
  clock_.advance(601s);  // the certificate expired
  ASSERT_TRUE(store_->enrollFactory(factory("sn1", true), cert("02", "k2")).isOk());
  auto old = store_->findCert("01");
  ASSERT_TRUE(old.isOk());
  EXPECT_TRUE(old->revoked);
  EXPECT_TRUE(*store_->hasValidCert("acme-sn1"));
  // A revoked device is never re-bootstrapped.
  clock_.advance(86401s);
  ASSERT_TRUE(*store_->revokeDevice("acme-sn1"));
  EXPECT_EQ(store_->enrollFactory(factory("sn1", true), cert("03", "k3")).message(), kReasonDeviceRevoked);
}

TEST_F(EnrollmentStoreTest, RequestsAreDecidedOnceAndClosedAtIssuance) {
  EnrollRequestRecord r;
  r.id = "r0001";
  r.device = "acme-sn1";
  r.manufacturer = "acme";
  r.serial_number = "sn1";
  r.pubkey_fp = "k1";
  r.expires_at = kStart + 7 * 86400;
  ASSERT_TRUE(store_->insertEnrollRequest(r).isOk());
  auto open = store_->openEnrollRequest("acme-sn1");
  ASSERT_TRUE(open.isOk() && open->has_value());
  EXPECT_EQ((*open)->state, EnrollRequestState::kPending);
  EXPECT_EQ(store_->listEnrollRequests()->size(), 1u);
  // Issuing against a request that is not approved fails and changes nothing.
  FactoryEnrollment e = factory("sn1");
  e.request_id = "r0001";
  EXPECT_EQ(store_->enrollFactory(e, cert("01", "k1")).code(), core::ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(store_->getDevice("acme-sn1").isOk());
  ASSERT_TRUE(store_->decideEnrollRequest("r0001", true, "admin").isOk());
  EXPECT_EQ(store_->decideEnrollRequest("r0001", true, "admin").status().code(), core::ErrorCode::kFailedPrecondition);
  // Another key cannot complete it.
  EXPECT_EQ(store_->enrollFactory(e, cert("02", "other-key")).code(), core::ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(store_->enrollFactory(e, cert("03", "k1")).isOk());
  EXPECT_FALSE(store_->openEnrollRequest("acme-sn1")->has_value());
  EXPECT_TRUE(store_->listEnrollRequests()->empty());
  EXPECT_EQ(store_->decideEnrollRequest("r0001", false, "admin").status().code(), core::ErrorCode::kFailedPrecondition);
}

TEST_F(EnrollmentStoreTest, RequestsExpireAfterTheirDeadline) {
  EnrollRequestRecord r;
  r.id = "r0002";
  r.device = "d1";
  r.pubkey_fp = "k1";
  r.expires_at = kStart + 7 * 86400;
  ASSERT_TRUE(store_->insertEnrollRequest(r).isOk());
  clock_.advance(std::chrono::seconds(7 * 86400));
  EXPECT_FALSE(store_->openEnrollRequest("d1")->has_value());
  EXPECT_TRUE(store_->listEnrollRequests()->empty());
  EXPECT_EQ(store_->decideEnrollRequest("r0002", true, "admin").status().code(), core::ErrorCode::kNotFound);
}

TEST_F(EnrollmentStoreTest, DeviceCertTtlTakesItsOwnValue) {
  DeviceRecord d;
  d.name = "d1";
  d.role = "sensor";
  d.cert_ttl_s = 600;
  ASSERT_TRUE(store_->insertDevice(d).isOk());
  EXPECT_EQ(store_->certTtls("d1")->device_s, 600);
  ASSERT_TRUE(store_->setDeviceCertTtl("d1", 7200).isOk());
  EXPECT_EQ(store_->getDevice("d1")->cert_ttl_s, 7200);
  EXPECT_EQ(store_->certTtls("d1")->manufacturer_s, 0);
  EXPECT_EQ(store_->setDeviceCertTtl("ghost", 60).code(), core::ErrorCode::kNotFound);
}

TEST_F(EnrollmentStoreTest, NewTokenDropsOpenRequests) {
  ASSERT_TRUE(store_->insertDeviceWithToken(DeviceRecord{"d1", "sensor", {}, DeviceState::kPending, 0, "", 0, {}}, "h1",
                                            kStart + 3600)
                  .isOk());
  EnrollRequestRecord r;
  r.id = "r0003";
  r.device = "d1";
  r.pubkey_fp = "k1";
  r.expires_at = kStart + 7 * 86400;
  ASSERT_TRUE(store_->insertEnrollRequest(r).isOk());
  ASSERT_TRUE(store_->decideEnrollRequest("r0003", false, "admin").isOk());
  EXPECT_TRUE(store_->openEnrollRequest("d1")->has_value());  // denied blocks ...
  ASSERT_TRUE(store_->replaceToken("d1", "h2", kStart + 3600).isOk());
  EXPECT_FALSE(store_->openEnrollRequest("d1")->has_value());  // ... until a new token
}

}  // namespace
}  // namespace warden::store
