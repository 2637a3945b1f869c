#include "core/spiffe_id.h"

#include <string>

#include <gtest/gtest.h>

namespace warden::core {
namespace {

TEST(SpiffeId, ParsesADeviceId) {
  auto id = parseSpiffeId("spiffe://example.org/device/sensor-1");
  ASSERT_TRUE(id.isOk()) << id.status().message();
  EXPECT_EQ(id->trust_domain, "example.org");
  EXPECT_EQ(id->kind, PrincipalKind::kDevice);
  EXPECT_EQ(id->name, "sensor-1");
}

TEST(SpiffeId, ParsesUserAndServiceKinds) {
  EXPECT_EQ(parseSpiffeId("spiffe://td/user/admin")->kind, PrincipalKind::kUser);
  EXPECT_EQ(parseSpiffeId("spiffe://td/service/ota")->kind, PrincipalKind::kService);
}

TEST(SpiffeId, ToStringRoundTrips) {
  std::string uri = "spiffe://warden.local/device/v1";
  auto id = parseSpiffeId(uri);
  ASSERT_TRUE(id.isOk());
  EXPECT_EQ(id->toString(), uri);
  EXPECT_EQ(makeSpiffeId("warden.local", PrincipalKind::kDevice, "v1"), uri);
  EXPECT_EQ(*parseSpiffeId(makeSpiffeId("a.b", PrincipalKind::kUser, "admin")),
            (SpiffeId{"a.b", PrincipalKind::kUser, "admin"}));
}

TEST(SpiffeId, KindNames) {
  EXPECT_EQ(principalKindName(PrincipalKind::kDevice), "device");
  EXPECT_EQ(principalKindName(PrincipalKind::kUser), "user");
  EXPECT_EQ(principalKindName(PrincipalKind::kService), "service");
}

TEST(SpiffeId, RejectsOtherSchemes) {
  for (std::string_view s : {"SPIFFE://td/device/a", "https://td/device/a", "spiffe:/td/device/a", "spiffe:td/device/a",
                             "", "spiffe://"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
}

TEST(SpiffeId, RejectsWrongNumberOfPathSegments) {
  for (std::string_view s : {"spiffe://td", "spiffe://td/", "spiffe://td/device", "spiffe://td/device/",
                             "spiffe://td/device/a/b", "spiffe://td/device/a/", "spiffe://td//a"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
}

TEST(SpiffeId, RejectsDotSegments) {
  for (std::string_view s : {"spiffe://td/device/.", "spiffe://td/device/..", "spiffe://td/./a", "spiffe://td/../a"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
}

TEST(SpiffeId, RejectsUnknownKind) {
  EXPECT_FALSE(parseSpiffeId("spiffe://td/robot/a").isOk());
  EXPECT_FALSE(parseSpiffeId("spiffe://td/Device/a").isOk());
}

TEST(SpiffeId, RejectsPortUserInfoQueryAndFragment) {
  for (std::string_view s : {"spiffe://td:443/device/a", "spiffe://u@td/device/a", "spiffe://td/device/a?x=1",
                             "spiffe://td/device/a#f", "spiffe://td/device/a%2fb", "spiffe://td/device/%61"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
}

TEST(SpiffeId, RejectsInvalidTrustDomain) {
  for (std::string_view s : {"spiffe:///device/a", "spiffe://Example.org/device/a", "spiffe://a..b/device/a",
                             "spiffe://-a/device/a", "spiffe://[::1]/device/a"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
}

TEST(SpiffeId, RejectsInvalidName) {
  for (std::string_view s : {"spiffe://td/device/Sensor", "spiffe://td/device/a_b", "spiffe://td/device/-a"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
  EXPECT_FALSE(parseSpiffeId("spiffe://td/device/" + std::string(64, 'a')).isOk());
}

TEST(SpiffeId, RejectsWhitespaceControlAndNonAscii) {
  for (std::string_view s : {"spiffe://td/device/a ", " spiffe://td/device/a", "spiffe://td/device/a\n",
                             "spiffe://td/device/caf\xc3\xa9"}) {
    EXPECT_FALSE(parseSpiffeId(s).isOk()) << s;
  }
  EXPECT_FALSE(parseSpiffeId(std::string("spiffe://td/device/a\0b", 22)).isOk());
}

TEST(SpiffeId, RejectsOverlongUri) {
  EXPECT_FALSE(parseSpiffeId("spiffe://td/device/a" + std::string(2100, 'a')).isOk());
}

TEST(SpiffeId, ErrorsAreInvalidArgument) {
  EXPECT_EQ(parseSpiffeId("nope").status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace warden::core
