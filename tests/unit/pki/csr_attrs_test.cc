#include "pki/csr_attrs.h"

#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

std::string hex(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

TEST(CsrAttrs, DerIsTheRfc7030ShapeForP256AndEcdsaSha256) {
  // SEQUENCE { ecdsa-with-SHA256, SEQUENCE { id-ecPublicKey, SET { secp256r1 } } }
  EXPECT_EQ(hex(csrAttrsDer()),
            "3021"
            "06082a8648ce3d040302"
            "3015" "06072a8648ce3d0201" "310a" "06082a8648ce3d030107");
}

TEST(CsrAttrs, BodyParsesBackToWhatTheServerEnforces) {
  auto parsed = parseCsrAttrsBody(csrAttrsBody());
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  ASSERT_EQ(parsed->attributes.size(), 2u);
  EXPECT_EQ(parsed->attributes[0].oid, kOidEcdsaWithSha256);
  EXPECT_FALSE(parsed->attributes[0].is_attribute);
  EXPECT_EQ(parsed->attributes[1].oid, kOidEcPublicKey);
  EXPECT_TRUE(parsed->attributes[1].is_attribute);
  ASSERT_EQ(parsed->attributes[1].values.size(), 1u);
  EXPECT_EQ(parsed->attributes[1].values[0], kOidSecp256r1);
  EXPECT_TRUE(parsed->wantsEcdsaSha256P256());
}

TEST(CsrAttrs, OpensslAsn1parseReadsTheSameStructure) {
  // An independent DER reader: openssl asn1parse.
  std::string der = csrAttrsDer();
  std::string path = ::testing::TempDir() + "/csrattrs.der";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(der.data(), 1, der.size(), f);
  std::fclose(f);
  FILE* pipe = popen(("openssl asn1parse -inform DER -in " + path).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  EXPECT_EQ(pclose(pipe), 0);
  EXPECT_NE(out.find("ecdsa-with-SHA256"), std::string::npos) << out;
  EXPECT_NE(out.find("id-ecPublicKey"), std::string::npos) << out;
  EXPECT_NE(out.find("prime256v1"), std::string::npos) << out;
}

TEST(CsrAttrs, EmptyBodyAndEmptySequenceAskForNothing) {
  auto empty = parseCsrAttrsBody("");
  ASSERT_TRUE(empty.isOk());
  EXPECT_TRUE(empty->attributes.empty());
  EXPECT_FALSE(empty->wantsEcdsaSha256P256());
  auto seq = parseCsrAttrsDer(unhex("3000"));
  ASSERT_TRUE(seq.isOk());
  EXPECT_TRUE(seq->attributes.empty());
}

TEST(CsrAttrs, RefusesMalformedDer) {
  const char* bad[] = {
      "",                          // nothing
      "30",                        // truncated
      "3003060180",                // OID: non-minimal first octet
      "30020601",                  // OID longer than its container
      "30800000",                  // indefinite length
      "3081020600",                // non-minimal length
      "300206003000",              // trailing bytes after the SEQUENCE
      "3003020101",                // INTEGER entry
      "3002300030",                // attribute without values
      "30050603 2a86c8",           // OID: last component unterminated
      "3004060280 01",             // non-minimal OID component
      "300306012a ff",             // trailing junk
      "3004 3002 0600",            // attribute with empty OID and no SET
  };
  for (const char* h : bad) {
    std::string clean;
    for (const char* p = h; *p; ++p) {
      if (*p != ' ') clean.push_back(*p);
    }
    EXPECT_FALSE(parseCsrAttrsDer(unhex(clean)).isOk()) << h;
  }
  EXPECT_FALSE(parseCsrAttrsDer(unhex("3003060188")).isOk());  // unterminated OID component
}

TEST(CsrAttrs, BodyMustBeBase64AndBounded) {
  EXPECT_FALSE(parseCsrAttrsBody("not base64 !!").isOk());
  EXPECT_FALSE(parseCsrAttrsBody(std::string(kMaxCsrAttrsBytes + 4, 'A')).isOk());
}

TEST(CsrAttrs, OidToText) {
  EXPECT_EQ(oidToText(unhex("2a8648ce3d030107")), "1.2.840.10045.3.1.7");
  EXPECT_EQ(oidToText(unhex("550405")), "2.5.4.5");
  EXPECT_EQ(oidToText(""), "");
  EXPECT_EQ(oidToText(unhex("2a86")), "");  // unterminated
}

}  // namespace
}  // namespace warden::pki

namespace warden::pki {
namespace {

TEST(CsrAttrs, ParsesTheRfc7030Example) {
  // RFC 7030 §4.5.2: challengePassword, EC key on P-384, extReq macAddress, ecdsa-with-SHA384.
  auto parsed = parseCsrAttrsBody("MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ\n"
                                  "BgcrBgEBAQEWBggqhkjOPQQDAw==\n");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  ASSERT_EQ(parsed->attributes.size(), 4u);
  EXPECT_EQ(parsed->attributes[0].oid, "1.2.840.113549.1.9.7");
  EXPECT_EQ(parsed->attributes[1].values.at(0), "1.3.132.0.34");
  EXPECT_EQ(parsed->attributes[3].oid, "1.2.840.10045.4.3.3");
  EXPECT_FALSE(parsed->wantsEcdsaSha256P256());
}

}  // namespace
}  // namespace warden::pki
