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

store::CertRecord certWithKey(std::string fp) {
  store::CertRecord c;
  c.serial_hex = "01";
  c.pubkey_fp = std::move(fp);
  c.not_after = 4102444800;
  return c;
}

TEST(ApiJson, KeyInTpmIsVerifiedOnlyForTheCurrentCertificatesKey) {
  store::DeviceRecord d;
  d.name = "tpm-2";
  d.key_store_claim = "tpm2";
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_in_tpm"], "claimed");
  EXPECT_TRUE(keyInTpmToJson(d, certWithKey("aa"))["key_proof"].is_null());
  d.key_proof = {"verified", "aa", "", 1800000000};
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_in_tpm"], "verified");
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_proof"]["result"], "verified");
  EXPECT_EQ(deviceToJson(d, certWithKey("aa"), false, "warden.local")["key_store"],
            nlohmann::json({{"claimed", "tpm2"}, {"verified", true}}));
  // A renewal with a new key: claimed again until proven.
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("bb"))["key_in_tpm"], "claimed");
  EXPECT_EQ(deviceToJson(d, certWithKey("bb"), false, "warden.local")["key_store"]["verified"], false);
  EXPECT_EQ(keyInTpmToJson(d, std::nullopt)["key_in_tpm"], "claimed");
  d.key_proof = {"failed", "aa", "foreign_key", 1800000000};
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_in_tpm"], "failed");
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_proof"]["reason"], "foreign_key");
  d.key_store_claim = "file";
  d.key_proof = {};
  EXPECT_EQ(keyInTpmToJson(d, certWithKey("aa"))["key_in_tpm"], "not_claimed");
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
