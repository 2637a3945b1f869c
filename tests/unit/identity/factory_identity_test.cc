#include "identity/factory_identity.h"

#include <gtest/gtest.h>

#include "unit/testing/factory_certs.h"

namespace warden::identity {
namespace {

using warden::testing::makeFactoryCa;
using warden::testing::makeIdevid;

TEST(FactoryIdentity, NamesTheDeviceAfterPrefixAndSerialNumber) {
  auto ca = makeFactoryCa("Acme CA");
  auto id = factoryIdentityOf(makeIdevid(ca, "sn0001", "ignored-cn").cert.get(), "acme-");
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  EXPECT_EQ(id->serial_number, "sn0001");
  EXPECT_EQ(id->device_name, "acme-sn0001");
}

TEST(FactoryIdentity, FallsBackToTheCommonName) {
  auto ca = makeFactoryCa("Acme CA");
  auto id = factoryIdentityOf(makeIdevid(ca, "", "sensor-77").cert.get(), "");
  ASSERT_TRUE(id.isOk());
  EXPECT_EQ(id->serial_number, "sensor-77");
  EXPECT_EQ(id->device_name, "sensor-77");
}

TEST(FactoryIdentity, RefusesInvalidNamesAndEmptySubjects) {
  auto ca = makeFactoryCa("Acme CA");
  EXPECT_FALSE(factoryIdentityOf(makeIdevid(ca, "SN-0001").cert.get(), "acme-").isOk());  // uppercase
  EXPECT_FALSE(factoryIdentityOf(makeIdevid(ca, "", "").cert.get(), "").isOk());
  EXPECT_FALSE(factoryIdentityOf(makeIdevid(ca, "", std::string(70, 'a')).cert.get(), "").isOk());  // too long
  auto bad = factoryIdentityOf(makeIdevid(ca, "Upper").cert.get(), "x-");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("x-Upper"), std::string::npos);
  EXPECT_FALSE(factoryIdentityOf(nullptr, "").isOk());
}

TEST(SerialAllowList, OneALineWithCommentsExactAndDeduplicated) {
  auto list = parseSerialAllowList("# lot 42\nsn1\n  sn2  # second\r\n\nsn1\nSN1\n");
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  EXPECT_EQ(*list, (std::vector<std::string>{"sn1", "sn2", "SN1"}));
  EXPECT_TRUE(parseSerialAllowList("").value().empty());
  auto bad = parseSerialAllowList("ok\nhas space\n");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(parseSerialAllowList(std::string(65, 'a')).isOk());
}

TEST(CertTtl, AcceptsMinutesHoursDaysFromOneMinuteToThirtyDays) {
  EXPECT_EQ(parseCertTtl("1m").value(), 60);
  EXPECT_EQ(parseCertTtl("90m").value(), 5400);
  EXPECT_EQ(parseCertTtl("24h").value(), 86400);
  EXPECT_EQ(parseCertTtl("30d").value(), 30 * 86400);
  for (const char* bad : {"", "30s", "0m", "31d", "721h", "1w", "abc", "-1h", "1.5h"}) {
    auto r = parseCertTtl(bad);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_NE(r.status().message().find("from 1m to 30d"), std::string::npos) << bad;
  }
}

TEST(CertTtl, DeviceBeatsManufacturerBeatsFleet) {
  EXPECT_EQ(resolveCertTtl(600, 3600, 86400), 600);
  EXPECT_EQ(resolveCertTtl(0, 3600, 86400), 3600);
  EXPECT_EQ(resolveCertTtl(0, 0, 86400), 86400);
}

}  // namespace
}  // namespace warden::identity
