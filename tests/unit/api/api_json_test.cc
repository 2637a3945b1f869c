#include "api/api_json.h"

#include <gtest/gtest.h>

namespace warden::api {
namespace {

TEST(ApiJson, ErrorHasCodeAndMessage) {
  auto j = nlohmann::json::parse(errorJson("not_found", "device 'x' does not exist"));
  EXPECT_EQ(j["error"], "not_found");
  EXPECT_EQ(j["message"], "device 'x' does not exist");
}

TEST(ApiJson, DeviceBeforeEnrollmentHasNullCertificate) {
  store::DeviceRecord d;
  d.name = "temp-1";
  d.role = "sensor";
  d.labels = {{"site", "plant-1"}};
  d.state = store::DeviceState::kPending;
  auto j = deviceToJson(d, std::nullopt, false, "warden.local");
  EXPECT_EQ(j["name"], "temp-1");
  EXPECT_EQ(j["spiffe_id"], "spiffe://warden.local/device/temp-1");
  EXPECT_EQ(j["role"], "sensor");
  EXPECT_EQ(j["labels"]["site"], "plant-1");
  EXPECT_EQ(j["state"], "pending");
  EXPECT_TRUE(j["cert_serial"].is_null());
  EXPECT_TRUE(j["cert_not_after"].is_null());
  EXPECT_EQ(j["connected"], false);
  EXPECT_EQ(j["key_store"], nlohmann::json({{"claimed", nullptr}, {"verified", false}}));
  EXPECT_EQ(j.size(), 10u);
  EXPECT_TRUE(j["cert_ttl"].is_null());
}

TEST(ApiJson, DeviceShowsItsKeyStoreClaimUnverified) {
  store::DeviceRecord d;
  d.name = "tpm-1";
  d.key_store_claim = "tpm2";
  auto j = deviceToJson(d, std::nullopt, false, "warden.local");
  EXPECT_EQ(j["key_store"], nlohmann::json({{"claimed", "tpm2"}, {"verified", false}}));
}

TEST(ApiJson, DeviceWithCertificateShowsSerialAndExpiry) {
  store::DeviceRecord d;
  d.name = "v";
  d.role = "valve";
  d.state = store::DeviceState::kActive;
  store::CertRecord c;
  c.serial_hex = "0abc";
  c.not_after = 1800000000;
  auto j = deviceToJson(d, c, true, "td.example");
  EXPECT_EQ(j["cert_serial"], "0abc");
  EXPECT_EQ(j["cert_not_after"], "2027-01-15T08:00:00Z");
  EXPECT_EQ(j["connected"], true);
  EXPECT_TRUE(j["labels"].is_object());
}

TEST(ApiJson, PolicyView) {
  store::PolicyVersion p{3, "rules: []\n", 0, "spiffe://warden.local/user/admin"};
  auto j = policyToJson(p);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["text"], "rules: []\n");
  EXPECT_EQ(j["created_at"], "1970-01-01T00:00:00Z");
  EXPECT_EQ(j["actor"], "spiffe://warden.local/user/admin");
}

}  // namespace
}  // namespace warden::api
