#include "keystore/pkcs11_uri.h"

#include <gtest/gtest.h>

namespace warden::keystore {
namespace {

TEST(Pkcs11UriTest, ParsesPathAndQueryAttributes) {
  auto uri = parsePkcs11Uri(
      "pkcs11:token=warden;object=issuing%20ca;type=private;id=%01%02?module-path=/usr/lib/softhsm/"
      "libsofthsm2.so&pin-source=file:/etc/warden/hsm.pin");
  ASSERT_TRUE(uri.isOk()) << uri.status().message();
  EXPECT_EQ(uri->token, "warden");
  EXPECT_EQ(uri->object, "issuing ca");
  EXPECT_EQ(uri->type, "private");
  EXPECT_EQ(uri->id, std::string("\x01\x02", 2));
  EXPECT_EQ(uri->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(uri->pin_source, "/etc/warden/hsm.pin");
}

TEST(Pkcs11UriTest, ParsesRfc7512Example) {
  auto uri = parsePkcs11Uri(
      "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;"
      "object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=");
  ASSERT_TRUE(uri.isOk()) << uri.status().message();
  EXPECT_EQ(uri->token, "The Software PKCS#11 Softtoken");
  EXPECT_EQ(uri->manufacturer, "Snake Oil, Inc.");
  EXPECT_EQ(uri->id.size(), 8u);
}

TEST(Pkcs11UriTest, CanonicalFormRoundTrips) {
  auto uri = parsePkcs11Uri("pkcs11:object=a%3Bb;token=t;slot-id=2?pin-source=file:///run/pin&module-path=/m.so");
  ASSERT_TRUE(uri.isOk()) << uri.status().message();
  EXPECT_EQ(uri->pin_source, "/run/pin");
  std::string text = uri->toString();
  EXPECT_EQ(text, "pkcs11:token=t;slot-id=2;object=a%3Bb?module-path=/m.so&pin-source=file:/run/pin");
  auto again = parsePkcs11Uri(text);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->toString(), text);
  EXPECT_EQ(uri->pathOnly(), "pkcs11:token=t;slot-id=2;object=a%3Bb");
}

TEST(Pkcs11UriTest, RefusesPinValue) {
  auto uri = parsePkcs11Uri("pkcs11:token=a?pin-value=1234");
  ASSERT_FALSE(uri.isOk());
  EXPECT_NE(uri.status().message().find("pin-source=file:"), std::string::npos);
  EXPECT_EQ(uri.status().message().find("1234"), std::string::npos) << "a PIN must never appear in an error";
}

TEST(Pkcs11UriTest, RefusesMalformedUris) {
  for (const char* bad : {
           "pkcs12:token=a", "pkcs11:token=a;token=b", "pkcs11:token=a%2", "pkcs11:token=a%zz", "pkcs11:token",
           "pkcs11:token=a;;object=b", "pkcs11:unknown=1", "pkcs11:type=key", "pkcs11:slot-id=-1",
           "pkcs11:slot-id=123456789012345678901", "pkcs11:token=a b", "pkcs11:token=a?module-path=rel.so",
           "pkcs11:token=a?pin-source=|cat", "pkcs11:token=a?pin-source=file:rel", "pkcs11:token=a?",
           "pkcs11:token=a?pin-source=file:/a/../b", "pkcs11:token=a#frag", "pkcs11:token=a?module-path=/a&module-path=/b",
           "pkcs11:token=a?pin-source=file://host/pin", "pkcs11:token=a?pin-source=file:////pin",
       }) {
    EXPECT_FALSE(parsePkcs11Uri(bad).isOk()) << bad;
  }
}

TEST(Pkcs11UriTest, EnforcesLengthLimits) {
  std::string long_value(kMaxPkcs11ValueLength + 1, 'a');
  EXPECT_FALSE(parsePkcs11Uri("pkcs11:object=" + long_value).isOk());
  EXPECT_TRUE(parsePkcs11Uri("pkcs11:object=" + std::string(kMaxPkcs11ValueLength, 'a')).isOk());
  std::string many = "pkcs11:";
  for (int i = 0; i < 40; ++i) many += "x-v" + std::to_string(i) + "=1;";
  many.pop_back();
  EXPECT_FALSE(parsePkcs11Uri(many).isOk());
  EXPECT_FALSE(parsePkcs11Uri("pkcs11:object=" + std::string(kMaxPkcs11UriLength, 'a')).isOk());
}

TEST(Pkcs11UriTest, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(isPkcs11Uri("PKCS11:token=a"));
  EXPECT_FALSE(isPkcs11Uri("/etc/warden/key.pem"));
  EXPECT_TRUE(parsePkcs11Uri("pkcs11:").isOk());
}

}  // namespace
}  // namespace warden::keystore
